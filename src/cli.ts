#!/usr/bin/env node
/**
 * `dmafarm`: the command line. Exit codes: 0 nothing found, 1 findings (or a run that did not match its
 * scenario's expectations), 2 bad input (arguments, scenario files), 127 a dmafarm bug.
 * The first line of every run is its seed; every finding comes with the command that replays it.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { KernelBug } from './kernel/assert.js';
import { Kernel } from './kernel/kernel.js';
import { runKernelDemo } from './workers/kernel-demo.js';
import { createLogger, type Logger } from './workers/log.js';
import { freshSeed } from './workers/prng.js';
import type { HostKind, Report } from './workers/run-scenario.js';
import { runScenario } from './workers/run-scenario.js';
import { ScenarioError } from './workers/scenario.js';
import { builtinScenarioNames, loadScenario } from './workers/scenario-loader.js';

/** Bad input: the message names what was wrong; the process exits 2. */
class UsageError extends Error {}

function formatReport(r: Report, wallMs: number, typed: string): string {
  const frames = Object.values(r.devices)
    .map((d) => ('frames' in d ? Number(d.frames) : 0))
    .reduce((a, b) => Math.max(a, b), 0);
  const head =
    `${r.scenario.padEnd(24)} ${r.ok ? 'ok  ' : 'FAIL'} ${String(frames).padStart(5)} frames  ` +
    `${String(r.findings.length).padStart(3)} findings  ${wallMs.toFixed(0).padStart(6)} ms`;
  const lines = [head];
  const seen = new Set<string>();
  for (const f of r.findings) {
    const key = `${f.rule}|${f.device ?? ''}`;
    if (seen.has(key)) continue; // one line per rule and device; the JSON report has them all
    seen.add(key);
    lines.push(`    ${f.rule}${f.device ? ` [${f.device}]` : ''}: ${f.message}`);
  }
  if (r.unexpected.length) lines.push(`    unexpected findings: ${r.unexpected.join(', ')}`);
  if (r.missing.length) lines.push(`    expected but not found: ${r.missing.join(', ')}`);
  const leaked = r.leaks.pages + r.leaks.buffers + r.leaks.fences;
  if (leaked > 0) lines.push(`    leaked after teardown: ${JSON.stringify(r.leaks)}`);
  // Replay with what the user typed (a file path stays a path), the seed and the deterministic host.
  if (r.findings.length > 0 || !r.ok) lines.push(`    replay: dmafarm run ${typed} --seed ${r.seed} --host sim`);
  return lines.join('\n');
}

async function runCommand(argv: {
  scenarios: string[];
  seed: number | undefined;
  host: HostKind;
  frames: number | undefined;
  json: boolean;
}): Promise<number> {
  const names = argv.scenarios.length > 0 ? argv.scenarios : await builtinScenarioNames();
  const scenarios = [];
  const typed = new Map<object, string>();
  for (const n of names) {
    try {
      const loaded = await loadScenario(n);
      scenarios.push(loaded);
      typed.set(loaded, n);
    } catch (e) {
      if (e instanceof ScenarioError || e instanceof UsageError) throw new UsageError(e.message);
      throw e;
    }
  }
  const seed = argv.seed ?? freshSeed();
  process.stdout.write(`SEED=${seed} host=${argv.host} scenarios=${scenarios.map((s) => s.name).join(',')}\n`);
  const log = createLogger();
  const reports: Report[] = [];
  for (const s of scenarios) {
    const t0 = performance.now();
    const child: Record<string, Logger> = {};
    const report = await runScenario(s, {
      seed,
      host: argv.host,
      ...(argv.frames === undefined ? {} : { frames: argv.frames }),
      // On the worker host every device writes its own lines; on the sim host they come through here.
      ...(argv.host === 'sim'
        ? {
            log: (device: string, message: string, fields?: Record<string, unknown>) => {
              child[device] ??= log.child({ scenario: s.name, device });
              child[device].debug(fields ?? {}, message);
            },
          }
        : {}),
    });
    reports.push(report);
    if (!argv.json) process.stdout.write(`${formatReport(report, performance.now() - t0, typed.get(s) ?? s.name)}\n`);
  }
  const findings = reports.reduce((n, r) => n + r.findings.length, 0);
  const failed = reports.filter((r) => !r.ok);
  if (argv.json) process.stdout.write(`${JSON.stringify({ seed, host: argv.host, reports }, null, 2)}\n`);
  else {
    process.stdout.write(
      `SUMMARY: ${reports.length} scenario(s), ${findings} finding(s), ` +
        `${failed.length === 0 ? 'all as expected' : `${failed.length} not as expected`}\n`,
    );
  }
  return findings > 0 || failed.length > 0 ? 1 : 0;
}

function demoCommand(argv: { seed: number | undefined; json: boolean }): number {
  const seed = argv.seed ?? freshSeed();
  process.stdout.write(`SEED=${seed} job=kernel-demo\n`);
  const report = runKernelDemo(seed);
  if (argv.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    for (const h of report.heaps) {
      process.stdout.write(
        `  ${h.heap.padEnd(20)} ${h.cpuCache.padEnd(9)} ${h.contiguity.padEnd(9)} sg=${String(h.sgEntries).padEnd(3)} ` +
          `with SYNC: ${h.mismatchedBytesWithSync === 0 ? 'device saw every byte' : `${h.mismatchedBytesWithSync} bytes WRONG`}; ` +
          `without SYNC: ${h.staleBytesWithoutSync} stale bytes\n`,
      );
    }
    process.stdout.write(`SUMMARY: kernel-demo ${report.ok ? 'ok' : 'FAILED'} (replay: dmafarm demo --seed ${seed})\n`);
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

async function listCommand(): Promise<number> {
  for (const n of await builtinScenarioNames()) {
    const s = await loadScenario(n);
    process.stdout.write(`${s.name.padEnd(28)} ${s.description}\n`);
  }
  return 0;
}

function checkSeed(seed: unknown): true {
  if (seed !== undefined && (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0)) {
    throw new Error(`--seed must be a non-negative integer, got ${String(seed)}`);
  }
  return true;
}

export async function main(args: string[]): Promise<number> {
  let code = 0;
  await yargs(args)
    .scriptName('dmafarm')
    .strict()
    .command(
      'run [scenarios..]',
      'Run scenarios (default: every built-in one) and report what was found',
      (y) =>
        y
          .positional('scenarios', { type: 'string', array: true, default: [], describe: 'names or .ts/.js files' })
          .option('seed', { type: 'number', describe: 'seed for every random choice (printed first)' })
          .option('host', {
            choices: ['worker', 'sim'] as const,
            default: 'worker' as const,
            describe: 'devices in worker threads, or deterministic on one thread',
          })
          .option('frames', { type: 'number', describe: 'override every scenario frame count' })
          .option('json', { type: 'boolean', default: false, describe: 'print the reports as JSON' })
          .check((a) => {
            checkSeed(a.seed);
            if (a.frames !== undefined && (!Number.isInteger(a.frames) || a.frames < 0 || a.frames > 100_000)) {
              const raw = args[args.indexOf('--frames') + 1] ?? String(a.frames);
              throw new Error(`--frames must be an integer in 0..100000, got '${raw}'`);
            }
            return true;
          }),
      async (a) => {
        code = await runCommand({
          scenarios: a.scenarios as string[],
          seed: a.seed,
          host: a.host,
          frames: a.frames,
          json: a.json,
        });
      },
    )
    .command('list', 'List the built-in scenarios', {}, async () => {
      code = await listCommand();
    })
    .command(
      'demo',
      'The kernel self-demo: every heap, a CPU producer and the vgem importer, with and without SYNC',
      (y) =>
        y
          .option('seed', { type: 'number', describe: 'seed (printed first)' })
          .option('json', { type: 'boolean', default: false })
          .check((a) => checkSeed(a.seed)),
      (a) => {
        code = demoCommand({ seed: a.seed, json: a.json });
      },
    )
    .command(
      'heaps',
      'List the DMA heaps a default kernel registers, with their properties',
      (y) => y.option('json', { type: 'boolean', default: false }),
      (a) => {
        code = heapsCommand({ json: a.json });
      },
    )
    .demandCommand(1, 'name a command: run, list, demo or heaps')
    .fail((msg, err) => {
      if (err && !(err instanceof UsageError) && !msg) throw err;
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
