#!/usr/bin/env node
/**
 * `dmafarm`: the command line. Exit codes: 0 nothing found, 1 findings (or a run that did not match its
 * scenario's expectations), 2 bad input (arguments, scenario files), 127 a dmafarm bug.
 * The first line of every run is its seed; every finding comes with the command that replays it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatFinding } from './detect/report-text.js';
import { KernelBug } from './kernel/assert.js';
import { Kernel } from './kernel/kernel.js';
import {
  ExploreInputError,
  type ExploreResult,
  explore,
  exploreExitCode,
  formatExploreResult,
  mergeResults,
  parseResult,
  parseShard,
} from './workers/explore.js';
import { runKernelDemo } from './workers/kernel-demo.js';
import { createLogger, type Logger } from './workers/log.js';
import { freshSeed } from './workers/prng.js';
import type { HostKind, Report } from './workers/run-scenario.js';
import { runScenario, scenarioKernelOptions } from './workers/run-scenario.js';
import { ScenarioError } from './workers/scenario.js';
import { builtinScenarioNames, loadScenario } from './workers/scenario-loader.js';
import { parseScheduleSpec, type ScheduleSpec, ScheduleSpecError } from './workers/schedule-policy.js';

/** Bad input: the message names what was wrong; the process exits 2. */
class UsageError extends Error {}

function formatReport(r: Report, wallMs: number, typed: string, frames: number | undefined): string {
  const shown = Object.values(r.devices)
    .map((d) => ('frames' in d ? Number(d.frames) : 0))
    .reduce((a, b) => Math.max(a, b), 0);
  const head =
    `${r.scenario.padEnd(24)} ${r.ok ? 'ok  ' : 'FAIL'} ${String(shown).padStart(5)} frames  ` +
    `${String(r.findings.length).padStart(3)} findings  ${wallMs.toFixed(0).padStart(6)} ms`;
  const lines = [head];
  // Replay with what the user typed (a file path stays a path), the seed and the deterministic host.
  const schedule = r.schedule !== undefined && r.schedule !== 'random' ? ` --schedule ${r.schedule}` : '';
  const repro = `dmafarm run ${typed} --seed ${r.seed} --host sim${schedule}${frames === undefined ? '' : ` --frames ${frames}`}`;
  // Findings come deduplicated per site (with a count); two-sided ones print as a TSan-style block.
  for (const f of r.findings) {
    if (f.sides !== undefined) {
      lines.push(...formatFinding(f, repro).map((l) => `    ${l}`));
      continue;
    }
    const times = (f.count ?? 1) > 1 ? ` (${f.count} times)` : '';
    lines.push(`    ${f.rule}${f.device ? ` [${f.device}]` : ''}: ${f.message}${times}`);
  }
  if (r.unexpected.length) lines.push(`    unexpected findings: ${r.unexpected.join(', ')}`);
  if (r.missing.length) lines.push(`    expected but not found: ${r.missing.join(', ')}`);
  const leaked = r.leaks.pages + r.leaks.buffers + r.leaks.fences;
  if (leaked > 0) lines.push(`    leaked after teardown: ${JSON.stringify(r.leaks)}`);
  if (r.findings.length > 0 || !r.ok) lines.push(`    replay: ${repro}`);
  return lines.join('\n');
}

async function runCommand(argv: {
  scenarios: string[];
  seed: number | undefined;
  host: HostKind;
  frames: number | undefined;
  json: boolean;
  schedule?: ScheduleSpec | undefined;
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
      ...(argv.schedule === undefined ? {} : { schedule: argv.schedule }),
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
    if (!argv.json)
      process.stdout.write(`${formatReport(report, performance.now() - t0, typed.get(s) ?? s.name, argv.frames)}\n`);
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

/** The option's text as typed (for messages about a value yargs already turned into a number). */
function typedValue(args: string[], option: string, parsed: unknown): string {
  const at = args.indexOf(option);
  if (at >= 0 && args[at + 1] !== undefined) return args[at + 1] as string;
  const eq = args.find((x) => x.startsWith(`${option}=`));
  return eq !== undefined ? eq.slice(option.length + 1) : String(parsed);
}

/** A single-line progress counter on stderr, only when stderr is a terminal. */
function progressLine(): { update: (done: number, total: number, findings: number) => void; end: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, end: () => {} };
  const t0 = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total, findings) {
      const now = performance.now();
      if (done < total && now - last < 100) return;
      last = now;
      shown = true;
      const rate = done / Math.max(1e-3, (now - t0) / 1000);
      process.stderr.write(
        `\rexplore: ${done}/${total} runs (${Math.floor((100 * done) / total)}%), ` +
          `${findings} distinct finding(s), ${rate.toFixed(0)} schedules/s\x1b[K`,
      );
    },
    end() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

function writeResult(r: ExploreResult, json: boolean, out: string | undefined): void {
  const text = `${JSON.stringify(r, null, 2)}\n`;
  if (out !== undefined) {
    try {
      writeFileSync(out, text);
    } catch (e) {
      throw new UsageError(`--out ${out}: ${(e as Error).message}`);
    }
  }
  process.stdout.write(json ? text : `${formatExploreResult(r)}\n`);
}

async function exploreCommand(
  args: string[],
  argv: {
    scenario: string;
    runs: number;
    workers: number | undefined;
    shard: string | undefined;
    seedBase: number;
    schedule: string;
    pctSteps: number | undefined;
    frames: number | undefined;
    json: boolean;
    out: string | undefined;
  },
): Promise<number> {
  const num = (option: string, v: number | undefined): number | undefined => {
    // yargs turns '--runs abc' into NaN: name the option with what was typed.
    if (v !== undefined && !Number.isSafeInteger(v)) {
      throw new UsageError(`${option} must be an integer, got '${typedValue(args, option, v)}'`);
    }
    return v;
  };
  const progress = progressLine();
  let result: ExploreResult;
  try {
    result = await explore({
      scenario: argv.scenario,
      runs: num('--runs', argv.runs) as number,
      seedBase: num('--seed-base', argv.seedBase) as number,
      schedule: argv.schedule,
      shard: argv.shard === undefined ? null : parseShard(argv.shard),
      ...(num('--workers', argv.workers) === undefined ? {} : { workers: argv.workers }),
      ...(num('--pct-steps', argv.pctSteps) === undefined ? {} : { pctSteps: argv.pctSteps }),
      ...(num('--frames', argv.frames) === undefined ? {} : { frames: argv.frames }),
      onProgress: progress.update,
    });
  } catch (e) {
    if (e instanceof ExploreInputError || e instanceof ScheduleSpecError) throw new UsageError(e.message);
    throw e;
  } finally {
    progress.end();
  }
  writeResult(result, argv.json, argv.out);
  return exploreExitCode(result);
}

function mergeCommand(argv: { files: string[]; json: boolean; out: string | undefined }): number {
  const results = argv.files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`merge: cannot read ${file}: ${(e as Error).message}`);
    }
    try {
      return parseResult(text, file);
    } catch (e) {
      if (e instanceof ExploreInputError) throw new UsageError(`merge: ${e.message}`);
      throw e;
    }
  });
  let merged: ExploreResult;
  try {
    merged = mergeResults(results, argv.files);
  } catch (e) {
    if (e instanceof ExploreInputError) throw new UsageError(e.message);
    throw e;
  }
  writeResult(merged, argv.json, argv.out);
  return exploreExitCode(merged);
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

async function heapsCommand(argv: { scenario: string | undefined; json: boolean }): Promise<number> {
  let k: Kernel;
  if (argv.scenario === undefined) k = new Kernel();
  else {
    try {
      k = new Kernel(scenarioKernelOptions(await loadScenario(argv.scenario)));
    } catch (e) {
      if (e instanceof ScenarioError || e instanceof UsageError) throw new UsageError(e.message);
      throw e;
    }
  }
  const heaps = k.heaps.all().map((h) => ({ name: h.name, path: `/dev/dma_heap/${h.name}`, ...h.properties }));
  if (argv.json) process.stdout.write(`${JSON.stringify(heaps, null, 2)}\n`);
  else {
    for (const h of heaps) {
      const r = h.restriction;
      const restriction =
        r.kind === 'protected' ? `protected (${r.useCase}; firewall: ${r.firewall.join(', ')})` : r.kind;
      process.stdout.write(
        `${h.name.padEnd(28)} ${h.backing.padEnd(16)} ${h.contiguity.padEnd(9)} ${h.cpuCache.padEnd(9)} ` +
          `${(h.capacityBytes / (1 << 20)).toFixed(1).padStart(7)} MiB  restriction=${restriction}\n`,
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
          .option('schedule', {
            type: 'string',
            describe: "sim host: 'random' (default) or 'pct:<d>' (PCT, depth 1..8; 'pct:<d>:<k>' with k steps)",
          })
          .check((a) => {
            checkSeed(a.seed);
            if (a.schedule !== undefined) {
              const spec = parseScheduleSpec(String(a.schedule));
              if (spec.kind !== 'random' && a.host !== 'sim') throw new Error('--schedule needs --host sim');
            }
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
          schedule: a.schedule === undefined ? undefined : parseScheduleSpec(String(a.schedule)),
        });
      },
    )
    .command(
      'explore <scenario>',
      'Run many seeds of one scenario on the deterministic host and report each distinct finding once',
      (y) =>
        y
          .positional('scenario', { type: 'string', demandOption: true, describe: 'a name or a .ts/.js file' })
          .option('runs', { type: 'number', demandOption: true, describe: 'how many seeds (the range size)' })
          .option('workers', { type: 'number', describe: 'worker threads (default min(2, cpus); 0 or 1: inline)' })
          .option('shard', { type: 'string', describe: "'i/n': only the seeds whose index is i-1 mod n" })
          .option('seed-base', { type: 'number', default: 1, describe: 'the first seed of the range' })
          .option('schedule', {
            type: 'string',
            default: 'random',
            describe: "'random', 'pct:<d>' (PCT, depth 1..8), or 'mix' (random, pct:2, pct:3 by seed)",
          })
          .option('pct-steps', {
            type: 'number',
            describe: "PCT's k, the steps of a run (default: learnt from one run)",
          })
          .option('frames', { type: 'number', describe: 'override the scenario frame count' })
          .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' })
          .option('out', { type: 'string', describe: 'also write the JSON result to this file' }),
      async (a) => {
        code = await exploreCommand(args, {
          scenario: String(a.scenario),
          runs: a.runs,
          workers: a.workers,
          shard: a.shard,
          seedBase: a['seed-base'],
          schedule: a.schedule,
          pctSteps: a['pct-steps'],
          frames: a.frames,
          json: a.json,
          out: a.out,
        });
      },
    )
    .command(
      'merge <files..>',
      'Combine explore --json results (e.g. the shards of one sweep) into one',
      (y) =>
        y
          .positional('files', { type: 'string', array: true, demandOption: true, describe: 'explore --json outputs' })
          .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' })
          .option('out', { type: 'string', describe: 'also write the JSON result to this file' }),
      async (a) => {
        code = mergeCommand({ files: (a.files ?? []) as string[], json: a.json, out: a.out });
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
      'heaps [scenario]',
      "List the DMA heaps a kernel registers, with their properties: a default kernel's, or a scenario's",
      (y) =>
        y
          .positional('scenario', {
            type: 'string',
            describe: 'a name or a .ts/.js file (its kernel: protected heaps, vram)',
          })
          .option('json', { type: 'boolean', default: false }),
      async (a) => {
        code = await heapsCommand({ scenario: a.scenario, json: a.json });
      },
    )
    .demandCommand(1, 'name a command: run, explore, merge, list, demo or heaps')
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
