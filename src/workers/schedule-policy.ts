/**
 * Scheduling strategies for the deterministic host: at every scheduling step the sim scheduler hands its
 * policy the devices that can run and runs the one the policy names.
 *
 * Contract:
 * - A policy draws only from the scheduler's own PRNG (passed in at every pick), so a seed and a spec
 *   determine the schedule: `--seed S --schedule pct:3` replays exactly.
 * - `random` (the default) is uniform over the ready devices; it is the scheduler's original choice, draw
 *   for draw, so event hashes of runs made before policies existed are unchanged.
 * - `pct:<d>` is PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS'10): distinct random priorities,
 *   always run the highest-priority ready device, and at d−1 change points drawn uniformly in [1, k] drop
 *   the device that ran last below every other. At most d−1 priority changes per run, so a bug of depth d
 *   is found with probability at least 1/(n·k^(d−1)) per run. k estimates the steps of a run: `pct:<d>:<k>`,
 *   or `PCT_STEPS_DEFAULT` when left out. A step is one call of `pick` (one `schedulerSteps` of a report).
 * - Per-step cost: `random` is one draw; `pct` is one map lookup per ready device.
 */
import type { Prng } from './prng.js';

/** PCT's depth bound: d−1 change points, at most this many. */
export const PCT_DEPTH_MAX = 8;
/** PCT's k (steps of a run) when the spec does not give one. */
export const PCT_STEPS_DEFAULT = 2000;
/** Largest k a spec may give (the scheduler's own step bound is far above any useful k). */
export const PCT_STEPS_MAX = 10_000_000;

export type ScheduleSpec = { kind: 'random' } | { kind: 'pct'; depth: number; steps: number };

export const RANDOM_SCHEDULE: ScheduleSpec = Object.freeze({ kind: 'random' });

/** A spec string that does not parse; the message names the value and what was expected. */
export class ScheduleSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleSpecError';
  }
}

/** 'random' | 'pct:<d>' | 'pct:<d>:<k>' (1 ≤ d ≤ 8, 1 ≤ k). `what` names the option in the error. */
export function parseScheduleSpec(text: string, what = '--schedule'): ScheduleSpec {
  const t = text.trim();
  if (t === 'random') return RANDOM_SCHEDULE;
  const m = /^pct:([^:]*)(?::([^:]*))?$/.exec(t);
  if (m === null) {
    throw new ScheduleSpecError(`${what} must be 'random' or 'pct:<d>' (1 ≤ d ≤ ${PCT_DEPTH_MAX}), got '${text}'`);
  }
  const depth = /^\d+$/.test(m[1] ?? '') ? Number(m[1]) : Number.NaN;
  if (!(depth >= 1 && depth <= PCT_DEPTH_MAX)) {
    throw new ScheduleSpecError(`${what}: the PCT depth in '${text}' must be an integer in 1..${PCT_DEPTH_MAX}`);
  }
  if (m[2] === undefined) return { kind: 'pct', depth, steps: PCT_STEPS_DEFAULT };
  const steps = /^\d+$/.test(m[2]) ? Number(m[2]) : Number.NaN;
  if (!(steps >= 1 && steps <= PCT_STEPS_MAX)) {
    throw new ScheduleSpecError(
      `${what}: the PCT step estimate in '${text}' must be an integer in 1..${PCT_STEPS_MAX}`,
    );
  }
  return { kind: 'pct', depth, steps };
}

/** The spec as a string `parseScheduleSpec` reads back (k is left out when it is the default). */
export function formatScheduleSpec(spec: ScheduleSpec): string {
  if (spec.kind === 'random') return 'random';
  return spec.steps === PCT_STEPS_DEFAULT ? `pct:${spec.depth}` : `pct:${spec.depth}:${spec.steps}`;
}

/** What a policy sees of a device: its name (stable across runs). */
export interface SchedulableTask {
  readonly name: string;
}

export interface SchedulePolicy {
  /** The index in `ready` (never empty) of the device to run next; draws from `prng` only. */
  pick(ready: readonly SchedulableTask[], prng: Prng): number;
}

/** Uniform over the ready devices: exactly the scheduler's original choice (no draw when one is ready). */
export const randomPolicy: SchedulePolicy = Object.freeze({
  pick: (ready: readonly SchedulableTask[], prng: Prng): number =>
    ready.length === 1 ? 0 : prng.int(0, ready.length - 1),
});

/**
 * PCT. Priorities are assigned as devices first show up ready: a newcomer takes a uniformly random rank
 * among the devices that still have their initial priority, so the initial priorities are a uniformly
 * random permutation whatever the order devices appear in. Initial priorities are positive; a device
 * dropped at a change point gets a priority below every one given so far (negative, decreasing).
 */
export class PctPolicy implements SchedulePolicy {
  readonly depth: number;
  readonly steps: number;
  private readonly priority = new Map<string, number>();
  /** Devices still at their initial priority, lowest first (their priority is index + 1). */
  private readonly initial: string[] = [];
  /** Change points (1-based step numbers), ascending; drawn at the first pick. */
  private changePoints: number[] | null = null;
  private nextChange = 0;
  private step = 0;
  private lowest = 0;
  private last: string | null = null;

  constructor(depth: number, steps: number) {
    if (!Number.isInteger(depth) || depth < 1 || depth > PCT_DEPTH_MAX) throw new RangeError(`PCT depth ${depth}`);
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`PCT steps ${steps}`);
    this.depth = depth;
    this.steps = steps;
  }

  /** The change points of this run (for tests and logs); empty until the first pick. */
  get changes(): readonly number[] {
    return this.changePoints ?? [];
  }

  private drawChangePoints(prng: Prng): number[] {
    const want = Math.min(this.depth - 1, this.steps);
    const points = new Set<number>();
    // Distinct points: redraw a collision. With want ≤ 7 and want ≤ k this ends quickly; the bound is a
    // backstop (it falls back to the smallest unused points, still deterministic).
    for (let tries = 0; points.size < want && tries < 64 * (want + 1); tries++) points.add(prng.int(1, this.steps));
    for (let p = 1; points.size < want; p++) points.add(p);
    return [...points].sort((a, b) => a - b);
  }

  private admit(name: string, prng: Prng): void {
    const rank = prng.int(0, this.initial.length);
    this.initial.splice(rank, 0, name);
    for (let i = 0; i < this.initial.length; i++) this.priority.set(this.initial[i] as string, i + 1);
  }

  pick(ready: readonly SchedulableTask[], prng: Prng): number {
    if (this.changePoints === null) this.changePoints = this.drawChangePoints(prng);
    this.step++;
    const points = this.changePoints;
    while (this.nextChange < points.length && (points[this.nextChange] as number) <= this.step) {
      this.nextChange++;
      const dropped = this.last;
      if (dropped === null) continue;
      const at = this.initial.indexOf(dropped);
      if (at >= 0) {
        this.initial.splice(at, 1);
        for (let i = 0; i < this.initial.length; i++) this.priority.set(this.initial[i] as string, i + 1);
      }
      this.priority.set(dropped, --this.lowest);
    }
    let best = 0;
    let bestPriority = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < ready.length; i++) {
      const name = (ready[i] as SchedulableTask).name;
      let p = this.priority.get(name);
      if (p === undefined) {
        this.admit(name, prng);
        p = this.priority.get(name) as number;
        // Admitting renumbers the initial priorities: rescan what was already compared.
        best = 0;
        bestPriority = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < i; j++) {
          const q = this.priority.get((ready[j] as SchedulableTask).name) as number;
          if (q > bestPriority) {
            bestPriority = q;
            best = j;
          }
        }
      }
      if (p > bestPriority) {
        bestPriority = p;
        best = i;
      }
    }
    this.last = (ready[best] as SchedulableTask).name;
    return best;
  }
}

/** A fresh policy for one run (PCT keeps per-run state; `random` has none). */
export function createPolicy(spec: ScheduleSpec): SchedulePolicy {
  return spec.kind === 'random' ? randomPolicy : new PctPolicy(spec.depth, spec.steps);
}
