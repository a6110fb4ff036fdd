#!/usr/bin/env node
import yargs from 'yargs';
/**
 * `dmafarm`: the command line. Exit codes: 0 nothing found, 1 findings, 2 bad input, 127 a dmafarm bug.
 * The first line of every run is its seed.
 */
import { hideBin } from 'yargs/helpers';
import { KernelBug } from './kernel/assert.js';
import { Kernel } from './kernel/kernel.js';
import { runKernelDemo } from './workers/kernel-demo.js';
import { createLogger } from './workers/log.js';
import { freshSeed } from './workers/prng.js';

export const BUILTIN_JOBS = ['kernel-demo'] as const;

function runCommand(argv: { jobs: string[]; seed: number | undefined; json: boolean }): number {
  const unknown = argv.jobs.filter((j) => !(BUILTIN_JOBS as readonly string[]).includes(j));
  if (unknown.length > 0) {
    process.stderr.write(
      `dmafarm run: unknown scenario '${unknown[0]}' (available: ${BUILTIN_JOBS.join(', ')}; ` +
        'scenario files arrive with the device farm)\n',
    );
    return 2;
  }
  const seed = argv.seed ?? freshSeed();
  process.stdout.write(`SEED=${seed} jobs=${BUILTIN_JOBS.join(',')}\n`);
  const log = createLogger();
  log.info({ seed }, 'kernel-demo: every heap, with and without DMA_BUF_IOCTL_SYNC');
  const report = runKernelDemo(seed);
  if (argv.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const rows = report.heaps.map(
      (h) =>
        `  ${h.heap.padEnd(20)} ${h.cpuCache.padEnd(9)} ${h.contiguity.padEnd(9)} sg=${String(h.sgEntries).padEnd(3)} ` +
        `with SYNC: ${h.mismatchedBytesWithSync === 0 ? 'device saw every byte' : `${h.mismatchedBytesWithSync} bytes WRONG`}; ` +
        `without SYNC: ${h.staleBytesWithoutSync} stale bytes`,
    );
    process.stdout.write(`heap                   cache     layout\n${rows.join('\n')}\n`);
    process.stdout.write(`pages leaked: ${report.leakedPages}; kernel warnings: ${report.warnings}\n`);
    process.stdout.write(`SUMMARY: kernel-demo ${report.ok ? 'ok' : 'FAILED'} (replay: dmafarm run --seed ${seed})\n`);
  }
  if (!report.ok) throw new KernelBug(`kernel-demo self-check failed (seed ${seed})`);
  return report.warnings > 0 ? 1 : 0;
}

function heapsCommand(argv: { json: boolean }): number {
  const k = new Kernel();
  const heaps = k.heaps.all().map((h) => ({ name: h.name, path: `/dev/dma_heap/${h.name}`, ...h.properties }));
  if (argv.json) process.stdout.write(`${JSON.stringify(heaps, null, 2)}\n`);
  else {
    for (const h of heaps) {
      process.stdout.write(
        `${h.name.padEnd(20)} ${h.backing.padEnd(9)} ${h.contiguity.padEnd(9)} ${h.cpuCache.padEnd(9)} ` +
          `${(h.capacityBytes >> 20).toString().padStart(5)} MiB  restriction=${h.restriction.kind}\n`,
      );
    }
  }
  return 0;
}

export async function main(args: string[]): Promise<number> {
  let code = 0;
  await yargs(args)
    .scriptName('dmafarm')
    .strict()
    .command(
      'run [jobs..]',
      'Run jobs (default: every built-in one) and report what was found',
      (y) =>
        y
          .positional('jobs', { type: 'string', array: true, default: [...BUILTIN_JOBS], describe: 'jobs to run' })
          .option('seed', { type: 'number', describe: 'seed for every random choice (printed first)' })
          .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
          .check((a) => {
            if (a.seed !== undefined && (!Number.isSafeInteger(a.seed) || a.seed < 0)) {
              throw new Error(`--seed must be a non-negative integer, got ${String(a.seed)}`);
            }
            return true;
          }),
      (a) => {
        code = runCommand({ jobs: a.jobs as string[], seed: a.seed, json: a.json });
      },
    )
    .command('list', 'List the built-in jobs', {}, () => {
      process.stdout.write(`${BUILTIN_JOBS.join('\n')}\n`);
    })
    .command(
      'heaps',
      'List the DMA heaps a default kernel registers, with their properties',
      (y) => y.option('json', { type: 'boolean', default: false }),
      (a) => {
        code = heapsCommand({ json: a.json });
      },
    )
    .demandCommand(1, 'name a command: run, list or heaps')
    .fail((msg, err) => {
      if (err instanceof KernelBug) throw err;
      process.stderr.write(`dmafarm: ${msg ?? err?.message}\nTry 'dmafarm --help'.\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();
  return code;
}

main(hideBin(process.argv)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = err instanceof KernelBug ? 127 : 1;
  },
);
