/**
 * Schedule exploration: run a range of seeds of one scenario on the deterministic host, in a piscina pool
 * of worker threads, and report each distinct finding once with how many seeds hit it, the smallest of
 * them, and the command that replays that seed exactly.
 *
 * Contract:
 * - The seed range is [seedBase, seedBase + runs − 1]. `shard i/n` runs the seeds whose index in the range
 *   is ≡ i−1 (mod n), so n shards of one sweep are disjoint, cover it, and `mergeResults` of their results
 *   equals the unsharded result (findings, counts, first seeds, failed seeds).
 * - The result depends only on the scenario, frames, range, shard and schedule, never on the number of
 *   workers or batch sizes: batches fold order-independently (see explore-worker.ts).
 * - PCT needs k, the steps of a run. Unless given (`pct:<d>:<k>` or `pctSteps`), it is learnt from one
 *   random-schedule run of the range's first seed, the same for every shard. Each finding records the exact
 *   spec its first seed ran under (`pct:3:754`), and its replay command passes it.
 * - `schedulesPerS` is runs per wall second of the sweep itself (pool start-up included; loading the
 *   scenario and learning k are not).
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import runBatch, {
  type BatchResult,
  type BatchTask,
  type ExploreFinding,
  foldFinding,
  type RunError,
  type SchedulePlan,
} from './explore-worker.js';
import { runScenario } from './run-scenario.js';
import { type Scenario, ScenarioError } from './scenario.js';
import { loadScenario } from './scenario-loader.js';
import { PCT_STEPS_MAX, parseScheduleSpec, type ScheduleSpec, ScheduleSpecError } from './schedule-policy.js';

export type { ExploreFinding, RunError } from './explore-worker.js';

/** Bad input to `explore` or `merge`; the message names the option or file. The CLI exits 2. */
export class ExploreInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExploreInputError';
  }
}

/** Seeds are 32-bit (the PRNG seeds from the low 32 bits). */
export const SEED_MAX = 0xffff_ffff;
export const EXPLORE_RUNS_MAX = 100_000_000;
export const EXPLORE_WORKERS_MAX = 256;
export const SEED_BASE_DEFAULT = 1;

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

export interface ExploreOptions {
  /** A built-in scenario name or a scenario file, as the user typed it (the replay command repeats it). */
  scenario: string;
  /** The size of the seed range. */
  runs: number;
  seedBase?: number;
  shard?: Shard | null;
  /** 'random' (default), 'pct:<d>', 'pct:<d>:<k>', or 'mix' (random, pct:2, pct:3 by seed mod 3). */
  schedule?: string;
  /** PCT's k when the spec has none (default: learnt from one run). */
  pctSteps?: number;
  frames?: number;
  /** Worker threads (default min(2, cpus)); 0 or 1 runs inline on this thread. */
  workers?: number;
  /** Seeds per task (default: a few tasks per worker, at most 32 seeds each). */
  batchSize?: number;
  /** Called after each batch with the runs done so far, the runs to do, and the distinct findings so far. */
  onProgress?: (done: number, total: number, findings: number) => void;
}

export interface ExploreResultFinding extends ExploreFinding {
  /** The command that replays `firstSeed` and gives the same report. */
  repro: string;
}

export interface ExploreResult {
  /** The scenario's name. */
  scenario: string;
  /** Runs done (this shard's, or the sum of the merged results'). */
  runs: number;
  /** The sweep's seed range [first, last] (shards of one sweep share it). */
  seeds: [number, number];
  /** 'i/n', or null for a whole sweep. */
  shard: string | null;
  /** The schedule option ('random', 'pct:3', 'mix'). */
  schedule: string;
  /** PCT's k used for specs without one (null when nothing ran under PCT without one). */
  pctSteps: number | null;
  frames: number | null;
  schedulesPerS: number;
  elapsedS: number;
  findings: ExploreResultFinding[];
  /** Seeds whose run did not match the scenario's expectations, ascending. */
  failedSeeds: number[];
  /** Runs that threw (not findings of the scenario; `bug` marks a broken dmafarm invariant). */
  errors: RunError[];
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** 'i/n' with 1 ≤ i ≤ n. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || !(count >= 1 && count <= 1_000_000) || !(index >= 1 && index <= count)) {
    throw new ExploreInputError(`--shard must be 'i/n' with 1 ≤ i ≤ n, got '${text}'`);
  }
  return { index, count };
}

/** The seeds a shard runs, ascending. */
export function shardSeeds(seedBase: number, runs: number, shard: Shard | null): number[] {
  const out: number[] = [];
  const [start, step] = shard === null ? [0, 1] : [shard.index - 1, shard.count];
  for (let i = start; i < runs; i += step) out.push(seedBase + i);
  return out;
}

/** Quote a shell word when it needs it. */
function shellWord(w: string): string {
  return /^[\w./@:=+-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
}

/** The command that replays one seed on the deterministic host. */
export function replayCommand(typed: string, seed: number, frames: number | null, schedule: string): string {
  return (
    `node dist/src/cli.js run ${shellWord(typed)} --seed ${seed} --host sim` +
    (frames === null ? '' : ` --frames ${frames}`) +
    (schedule === 'random' ? '' : ` --schedule ${schedule}`)
  );
}

interface Resolved {
  plan: SchedulePlan;
  /** Whether k must be learnt (a PCT spec without one and no pctSteps). */
  learn: boolean;
}

function resolveSchedule(text: string, pctSteps: number | undefined): Resolved {
  const t = text.trim();
  if (t === 'mix') return { plan: { kind: 'mix', steps: pctSteps ?? 0 }, learn: pctSteps === undefined };
  let spec: ScheduleSpec;
  try {
    spec = parseScheduleSpec(t, '--schedule');
  } catch (e) {
    if (e instanceof ScheduleSpecError) {
      throw new ExploreInputError(`--schedule must be 'random', 'pct:<d>' (1 ≤ d ≤ 8) or 'mix', got '${text}'`);
    }
    throw e;
  }
  if (spec.kind === 'pct' && !/^pct:\d+:/.test(t)) {
    return { plan: { kind: 'spec', spec: { ...spec, steps: pctSteps ?? 0 } }, learn: pctSteps === undefined };
  }
  return { plan: { kind: 'spec', spec }, learn: false };
}

function withSteps(plan: SchedulePlan, steps: number): SchedulePlan {
  if (plan.kind === 'mix') return { kind: 'mix', steps };
  return plan.spec.kind === 'pct' ? { kind: 'spec', spec: { ...plan.spec, steps } } : plan;
}

function checkOptions(o: ExploreOptions): void {
  if (!isInt(o.runs) || o.runs < 1 || o.runs > EXPLORE_RUNS_MAX) {
    throw new ExploreInputError(`--runs must be an integer in 1..${EXPLORE_RUNS_MAX}, got '${String(o.runs)}'`);
  }
  const base = o.seedBase ?? SEED_BASE_DEFAULT;
  if (!isInt(base) || base < 0 || base > SEED_MAX) {
    throw new ExploreInputError(`--seed-base must be an integer in 0..${SEED_MAX}, got '${String(o.seedBase)}'`);
  }
  if (base + o.runs - 1 > SEED_MAX) {
    throw new ExploreInputError(`--seed-base ${base} with --runs ${o.runs} goes past the largest seed ${SEED_MAX}`);
  }
  if (o.workers !== undefined && (!isInt(o.workers) || o.workers < 0 || o.workers > EXPLORE_WORKERS_MAX)) {
    throw new ExploreInputError(
      `--workers must be an integer in 0..${EXPLORE_WORKERS_MAX}, got '${String(o.workers)}'`,
    );
  }
  if (o.pctSteps !== undefined && (!isInt(o.pctSteps) || o.pctSteps < 1 || o.pctSteps > PCT_STEPS_MAX)) {
    throw new ExploreInputError(`--pct-steps must be an integer in 1..${PCT_STEPS_MAX}, got '${String(o.pctSteps)}'`);
  }
  if (o.frames !== undefined && (!isInt(o.frames) || o.frames < 0 || o.frames > 100_000)) {
    throw new ExploreInputError(`--frames must be an integer in 0..100000, got '${String(o.frames)}'`);
  }
  if (o.batchSize !== undefined && (!isInt(o.batchSize) || o.batchSize < 1)) {
    throw new ExploreInputError(`batchSize must be a positive integer, got '${String(o.batchSize)}'`);
  }
  if (
    o.shard &&
    (!isInt(o.shard.index) || !isInt(o.shard.count) || o.shard.index < 1 || o.shard.index > o.shard.count)
  ) {
    throw new ExploreInputError(`--shard must be 'i/n' with 1 ≤ i ≤ n, got '${o.shard.index}/${o.shard.count}'`);
  }
}

/** Where the piscina worker starts: compiled JS directly; TypeScript sources through tsx's entry. */
function poolEntry(): { filename: string; task: string; workerData?: { module: string } } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const task = new URL('./explore-worker.ts', here);
    // The entry registers tsx in the worker and imports the task module; each task then names the module
    // itself (piscina imports it by path, and gets the instance the entry already loaded).
    return {
      filename: fileURLToPath(new URL('./ts-worker-entry.mjs', here)),
      task: fileURLToPath(task),
      workerData: { module: task.href },
    };
  }
  const task = fileURLToPath(new URL('./explore-worker.js', here));
  return { filename: task, task };
}

/** Batch results folded into one as they arrive; the result does not depend on their order. */
class Fold {
  runs = 0;
  steps = 0;
  readonly findings = new Map<string, ExploreFinding>();
  private readonly failed: number[] = [];
  private readonly errors: RunError[] = [];

  add(p: BatchResult): void {
    this.runs += p.runs;
    this.steps += p.steps;
    for (const f of p.findings) foldFinding(this.findings, f);
    for (const s of p.failedSeeds) this.failed.push(s);
    for (const e of p.errors) this.errors.push(e);
  }

  result(): BatchResult {
    return {
      runs: this.runs,
      steps: this.steps,
      findings: sortFindings([...this.findings.values()]),
      failedSeeds: [...new Set(this.failed)].sort((a, b) => a - b),
      errors: [...this.errors].sort((a, b) => a.seed - b.seed),
    };
  }
}

/** How many seeds of a range of `runs` a shard runs. */
export function shardSize(runs: number, shard: Shard | null): number {
  return shard === null ? runs : Math.max(0, Math.ceil((runs - (shard.index - 1)) / shard.count));
}

/** A shard's seeds in batches of `size`, as tasks, made one at a time (a sweep may be millions of seeds). */
function* batches<T>(
  seedBase: number,
  runs: number,
  shard: Shard | null,
  size: number,
  task: (seeds: number[]) => T,
): Generator<T> {
  const [start, step] = shard === null ? [0, 1] : [shard.index - 1, shard.count];
  let seeds: number[] = [];
  for (let i = start; i < runs; i += step) {
    seeds.push(seedBase + i);
    if (seeds.length === size) {
      yield task(seeds);
      seeds = [];
    }
  }
  if (seeds.length > 0) yield task(seeds);
}

/**
 * Run `work` over `items` with at most `width` at a time, pulling items as lanes free up. The first failure
 * stops the lanes from taking more and is thrown (the others' failures are absorbed by Promise.all).
 */
async function lanes<T>(items: Iterable<T>, width: number, work: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let stopped = false;
  const lane = async (): Promise<void> => {
    for (let next = it.next(); !stopped && !next.done; next = it.next()) {
      try {
        await work(next.value);
      } catch (e) {
        stopped = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
}

function sortFindings<T extends ExploreFinding>(fs: T[]): T[] {
  return fs.sort((a, b) => a.firstSeed - b.firstSeed || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Load the scenario as `run` does; a bad name or file is an ExploreInputError naming it. */
async function loadForExplore(typed: string): Promise<Scenario> {
  try {
    return await loadScenario(typed);
  } catch (e) {
    if (e instanceof ScenarioError) throw new ExploreInputError(e.message);
    throw e;
  }
}

export async function explore(o: ExploreOptions): Promise<ExploreResult> {
  checkOptions(o);
  const seedBase = o.seedBase ?? SEED_BASE_DEFAULT;
  const shard = o.shard ?? null;
  const scheduleText = o.schedule ?? 'random';
  const resolved = resolveSchedule(scheduleText, o.pctSteps);
  const frames = o.frames ?? null;
  const scenario = await loadForExplore(o.scenario);
  // Workers load the scenario themselves: by name, or by absolute path (the same file whatever their cwd).
  const looksLikePath = /[\\/]/.test(o.scenario) || /\.[cm]?[jt]s$/.test(o.scenario);
  const where = looksLikePath && !isAbsolute(o.scenario) ? resolve(process.cwd(), o.scenario) : o.scenario;

  let plan = resolved.plan;
  if (resolved.learn) {
    const r = await runScenario(scenario, { seed: seedBase, host: 'sim', ...(frames === null ? {} : { frames }) });
    plan = withSteps(plan, Math.max(1, r.schedulerSteps));
  }
  const pctSteps = plan.kind === 'mix' ? plan.steps : plan.spec.kind === 'pct' ? plan.spec.steps : null;

  const count = shardSize(o.runs, shard);
  const requested = o.workers ?? Math.min(2, availableParallelism());
  const workers = Math.max(1, Math.min(requested, count));
  const batchSize = o.batchSize ?? Math.max(1, Math.min(32, Math.ceil(count / (workers * 4))));
  const tasks = batches(seedBase, o.runs, shard, batchSize, (seeds) => ({ scenario: where, frames, seeds, plan }));

  const started = performance.now();
  const total = new Fold();
  const collect = (r: BatchResult): void => {
    total.add(r);
    o.onProgress?.(total.runs, count, total.findings.size);
  };
  if (requested <= 1) {
    for (const t of tasks) collect(await runBatch(t));
  } else {
    const { Piscina } = await import('piscina');
    const entry = poolEntry();
    const pool = new Piscina<BatchTask, BatchResult>({
      filename: entry.filename,
      ...(entry.workerData ? { workerData: entry.workerData } : {}),
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: 1_000,
    });
    try {
      // Two tasks in flight per worker (one running, one queued), generated as they are needed.
      await lanes(tasks, workers * 2, async (t) => collect(await pool.run(t, { filename: entry.task })));
    } finally {
      await pool.destroy();
    }
  }
  const elapsedS = (performance.now() - started) / 1000;
  const result = total.result();
  return {
    scenario: scenario.name,
    runs: result.runs,
    seeds: [seedBase, seedBase + o.runs - 1],
    shard: shard === null ? null : `${shard.index}/${shard.count}`,
    schedule: scheduleText.trim(),
    pctSteps,
    frames,
    schedulesPerS: rate(result.runs, elapsedS),
    elapsedS: round3(elapsedS),
    findings: result.findings.map((f) => ({ ...f, repro: replayCommand(o.scenario, f.firstSeed, frames, f.schedule) })),
    failedSeeds: result.failedSeeds,
    errors: result.errors,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function rate(runs: number, seconds: number): number {
  return seconds > 0 ? Math.round((runs / seconds) * 10) / 10 : 0;
}

/** 0 nothing beyond what the scenario expects, 1 findings (or failed runs), 127 a dmafarm invariant broke. */
export function exploreExitCode(r: ExploreResult): number {
  if (r.errors.some((e) => e.bug)) return 127;
  return r.failedSeeds.length > 0 || r.errors.length > 0 ? 1 : 0;
}

/** A value read from a results file: an ExploreInputError naming the file and field when it is wrong. */
function checkResult(x: unknown, file: string): ExploreResult {
  const bad = (what: string): never => {
    throw new ExploreInputError(`${file}: not an explore result (--json output): ${what}`);
  };
  if (typeof x !== 'object' || x === null) return bad('expected a JSON object');
  const r = x as Record<string, unknown>;
  if (typeof r.scenario !== 'string') bad("'scenario' must be a string");
  if (!isInt(r.runs) || (r.runs as number) < 0) bad("'runs' must be a non-negative integer");
  if (!Array.isArray(r.seeds) || r.seeds.length !== 2 || !r.seeds.every(isInt)) bad("'seeds' must be [first, last]");
  if (!Array.isArray(r.findings)) bad("'findings' must be an array");
  if (!Array.isArray(r.failedSeeds) || !r.failedSeeds.every(isInt)) bad("'failedSeeds' must be an array of seeds");
  for (const [i, f] of (r.findings as unknown[]).entries()) {
    const g = f as Record<string, unknown> | null;
    if (typeof g?.key !== 'string' || !isInt(g.count) || !isInt(g.firstSeed) || typeof g.rule !== 'string') {
      bad(`findings.${i} needs key, rule, count and firstSeed`);
    }
  }
  return {
    scenario: r.scenario as string,
    runs: r.runs as number,
    seeds: r.seeds as [number, number],
    shard: typeof r.shard === 'string' ? r.shard : null,
    schedule: typeof r.schedule === 'string' ? r.schedule : 'random',
    pctSteps: isInt(r.pctSteps) ? r.pctSteps : null,
    frames: isInt(r.frames) ? r.frames : null,
    schedulesPerS: typeof r.schedulesPerS === 'number' ? r.schedulesPerS : 0,
    elapsedS: typeof r.elapsedS === 'number' ? r.elapsedS : 0,
    findings: r.findings as ExploreResultFinding[],
    failedSeeds: r.failedSeeds as number[],
    errors: Array.isArray(r.errors) ? (r.errors as RunError[]) : [],
  };
}

/** Parse one results file's text (`file` names it in errors). */
export function parseResult(text: string, file: string): ExploreResult {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw new ExploreInputError(`${file}: not JSON: ${(e as Error).message}`);
  }
  return checkResult(x, file);
}

/**
 * Combine explore results (the shards of one sweep, or several sweeps of one scenario): runs and counts
 * add, each finding keeps its smallest first seed (with that seed's message, schedule, hash and replay
 * command), failed seeds are united. They must be of the same scenario and frame count, and no sweep part
 * may come twice. `names` label the inputs in errors.
 */
export function mergeResults(results: readonly ExploreResult[], names?: readonly string[]): ExploreResult {
  const label = (i: number): string => names?.[i] ?? `input ${i + 1}`;
  const first = results[0];
  if (first === undefined) throw new ExploreInputError('merge: give at least one result file');
  const parts = new Set<string>();
  results.forEach((r, i) => {
    if (r.scenario !== first.scenario) {
      throw new ExploreInputError(
        `merge: ${label(i)} is scenario '${r.scenario}' but ${label(0)} is '${first.scenario}': results of different scenarios do not merge`,
      );
    }
    if (r.frames !== first.frames) {
      throw new ExploreInputError(
        `merge: ${label(i)} ran ${r.frames ?? 'the default'} frames but ${label(0)} ran ${first.frames ?? 'the default'}`,
      );
    }
    const part = `${r.seeds[0]}..${r.seeds[1]} ${r.shard ?? 'all'} ${r.schedule} ${r.pctSteps}`;
    if (parts.has(part)) throw new ExploreInputError(`merge: ${label(i)} repeats a sweep part already given (${part})`);
    parts.add(part);
  });
  const found = new Map<string, ExploreResultFinding>();
  for (const r of results) for (const f of r.findings) foldFinding(found as Map<string, ExploreFinding>, f);
  const runs = results.reduce((n, r) => n + r.runs, 0);
  const elapsedS = results.reduce((n, r) => n + r.elapsedS, 0);
  const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];
  const schedules = uniq(results.map((r) => r.schedule));
  const steps = uniq(results.map((r) => r.pctSteps));
  const sameRange = results.every((r) => r.seeds[0] === first.seeds[0] && r.seeds[1] === first.seeds[1]);
  // The shards of one range, each once: the merge is the whole sweep again.
  const shards = results.map((r) => r.shard);
  const n = Number(first.shard?.split('/')[1] ?? Number.NaN);
  const whole =
    sameRange &&
    shards.every((s) => s !== null && Number(s.split('/')[1]) === n) &&
    uniq(shards).length === n &&
    results.length === n;
  return {
    scenario: first.scenario,
    runs,
    seeds: [Math.min(...results.map((r) => r.seeds[0])), Math.max(...results.map((r) => r.seeds[1]))],
    shard:
      results.length === 1
        ? first.shard
        : whole || shards.every((s) => s === null)
          ? null
          : shards.map((s) => s ?? 'all').join(','),
    schedule: schedules.join(','),
    pctSteps: steps.length === 1 ? (steps[0] ?? null) : null,
    frames: first.frames,
    schedulesPerS: rate(runs, elapsedS),
    elapsedS: round3(elapsedS),
    findings: sortFindings([...found.values()]),
    failedSeeds: uniq(results.flatMap((r) => r.failedSeeds)).sort((a, b) => a - b),
    errors: results.flatMap((r) => r.errors).sort((a, b) => a.seed - b.seed),
  };
}

/** The text summary `explore` and `merge` print. */
export function formatExploreResult(r: ExploreResult): string {
  const lines: string[] = [];
  const range = `${r.seeds[0]}..${r.seeds[1]}`;
  lines.push(
    `EXPLORE scenario=${r.scenario} seeds=${range}${r.shard ? ` shard=${r.shard}` : ''} runs=${r.runs} ` +
      `schedule=${r.schedule}${r.pctSteps !== null ? ` pct-steps=${r.pctSteps}` : ''}` +
      `${r.frames !== null ? ` frames=${r.frames}` : ''}`,
  );
  for (const f of r.findings) {
    lines.push(
      `  ${f.rule}${f.device ? ` [${f.device}]` : ''}${f.site ? ` at ${f.site}` : ''}${f.expected ? ' (expected)' : ''}: ${f.message}`,
    );
    lines.push(`    seeds: ${f.count} of ${r.runs}, first ${f.firstSeed} (schedule ${f.schedule})`);
    lines.push(`    repro: ${f.repro}`);
  }
  for (const e of r.errors.slice(0, 10)) {
    lines.push(`  ${e.bug ? 'dmafarm bug' : 'run failed'} at seed ${e.seed} (schedule ${e.schedule}): ${e.message}`);
  }
  if (r.errors.length > 10) lines.push(`  … and ${r.errors.length - 10} more failed runs`);
  const unexpected = r.findings.filter((f) => !f.expected).length;
  lines.push(
    `SUMMARY: ${r.runs} run(s) in ${r.elapsedS.toFixed(2)} s (${r.schedulesPerS} schedules/s), ` +
      `${r.findings.length} distinct finding(s)${unexpected < r.findings.length ? ` (${unexpected} unexpected)` : ''}, ` +
      `${r.failedSeeds.length === 0 ? 'every run as expected' : `${r.failedSeeds.length} seed(s) not as expected`}`,
  );
  return lines.join('\n');
}
