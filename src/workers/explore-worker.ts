/**
 * One batch of an exploration: run a list of seeds of one scenario on the deterministic host and fold the
 * reports into a compact partial result (each distinct finding once, with how many seeds hit it and the
 * smallest of them). The default export is the piscina task; `explore` also calls it inline.
 *
 * Contract:
 * - A batch's result depends only on its task (scenario, frames, seeds, schedule plan), never on which
 *   thread ran it or what ran before it there, so any split of a sweep into batches folds to one result.
 * - Findings are the same finding when `findingKey` agrees (rule, device, site). For each, the message,
 *   schedule and event hash kept are those of the smallest seed that hit it.
 * - A run that throws is not a finding of the scenario: it is returned in `errors` (a KernelBug is a
 *   dmafarm bug and is marked so).
 */
import { findingKey, runScenario } from './run-scenario.js';
import type { Scenario } from './scenario.js';
import { loadScenario } from './scenario-loader.js';
import { formatScheduleSpec, type ScheduleSpec } from './schedule-policy.js';

/** How each seed of a sweep is scheduled: one spec for all, or `mix` (random, pct:2, pct:3 by seed). */
export type SchedulePlan = { kind: 'spec'; spec: ScheduleSpec } | { kind: 'mix'; steps: number };

/** The spec seed `seed` runs under: for `mix`, seed mod 3 picks random, pct:2 or pct:3 (k = plan.steps). */
export function scheduleForSeed(plan: SchedulePlan, seed: number): ScheduleSpec {
  if (plan.kind === 'spec') return plan.spec;
  const r = seed % 3;
  return r === 0 ? { kind: 'random' } : { kind: 'pct', depth: r + 1, steps: plan.steps };
}

export interface BatchTask {
  /** A built-in scenario name or a scenario file (absolute path), loaded as `run` loads it. */
  scenario: string;
  frames: number | null;
  seeds: number[];
  plan: SchedulePlan;
}

/** One distinct finding of a sweep (or of a part of it). */
export interface ExploreFinding {
  key: string;
  rule: string;
  device: string | null;
  site: string | null;
  message: string;
  /** Seeds whose run had this finding. */
  count: number;
  firstSeed: number;
  /** The schedule spec `firstSeed` ran under. */
  schedule: string;
  /** The event hash of `firstSeed`'s run: its replay gives the same. */
  eventHash: string;
  /** The scenario expects this rule (it does not make a run fail). */
  expected: boolean;
}

export interface RunError {
  seed: number;
  schedule: string;
  message: string;
  /** A dmafarm invariant broke (KernelBug). */
  bug: boolean;
}

export interface BatchResult {
  runs: number;
  findings: ExploreFinding[];
  /** Seeds whose run did not match the scenario's expectations (or threw), ascending. */
  failedSeeds: number[];
  errors: RunError[];
  /** Scheduler steps summed over the batch's runs. */
  steps: number;
}

/**
 * Fold `f` into `into` (keyed by finding key): counts add, and the smaller first seed brings its message,
 * schedule and hash. Order-independent, so batches and shards fold to the same result in any order.
 */
export function foldFinding(into: Map<string, ExploreFinding>, f: ExploreFinding): void {
  const had = into.get(f.key);
  if (had === undefined) {
    into.set(f.key, { ...f });
    return;
  }
  const count = had.count + f.count;
  if (f.firstSeed < had.firstSeed) into.set(f.key, { ...f, count });
  else had.count = count;
}

const scenarios = new Map<string, Promise<Scenario>>();

function scenarioFor(nameOrPath: string): Promise<Scenario> {
  let s = scenarios.get(nameOrPath);
  if (s === undefined) {
    s = loadScenario(nameOrPath);
    scenarios.set(nameOrPath, s);
  }
  return s;
}

export default async function runBatch(task: BatchTask): Promise<BatchResult> {
  const scenario = await scenarioFor(task.scenario);
  const expected = new Set(scenario.expect.findings);
  const found = new Map<string, ExploreFinding>();
  const failedSeeds: number[] = [];
  const errors: RunError[] = [];
  let steps = 0;
  const seeds = [...task.seeds].sort((a, b) => a - b);
  for (const seed of seeds) {
    const spec = scheduleForSeed(task.plan, seed);
    const schedule = formatScheduleSpec(spec);
    let report: Awaited<ReturnType<typeof runScenario>>;
    try {
      report = await runScenario(scenario, {
        seed,
        host: 'sim',
        schedule: spec,
        ...(task.frames === null ? {} : { frames: task.frames }),
      });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      errors.push({ seed, schedule, message: err.message, bug: err.name === 'KernelBug' });
      failedSeeds.push(seed);
      continue;
    }
    steps += report.schedulerSteps;
    if (!report.ok) failedSeeds.push(seed);
    const seen = new Set<string>();
    for (const f of report.findings) {
      const key = findingKey(f);
      if (seen.has(key)) continue;
      seen.add(key);
      foldFinding(found, {
        key,
        rule: f.rule,
        device: f.device,
        site: f.site ?? null,
        message: f.message,
        count: 1,
        firstSeed: seed,
        schedule,
        eventHash: report.eventHash,
        expected: expected.has(f.rule),
      });
    }
  }
  return { runs: seeds.length, findings: [...found.values()], failedSeeds, errors, steps };
}
