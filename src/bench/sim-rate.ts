/**
 * Benchmark worker: the deterministic host's runs per second, in a fresh isolate of its own — as the host
 * runs in use (`run --host sim` in its own process, an exploration pool worker), with no worker-host or
 * benchmark code having shaped V8's feedback for the kernel and runtime functions both hosts share.
 * Three figures: runs 1..cold (V8 still compiling), a warm-up up to `warmupRuns`, then `runs` more (the
 * steady state, what a sweep of thousands of runs per worker spends its time in).
 *
 * Beside them, the baseline this machine gives at this moment: a bare schedule of as many steps as a run
 * takes — five async tasks parking on a promise each, the one that parks resuming a random other, nothing
 * else — so `schedulesPerS / bareSchedulesPerS` is what the farm's work per step costs, and stays
 * comparable when the machine's speed drifts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Prng } from '../workers/prng.js';
import { runScenario } from '../workers/run-scenario.js';
import { loadScenario } from '../workers/scenario-loader.js';

export interface SimRateJob {
  scenario: string;
  coldRuns: number;
  warmupRuns: number;
  runs: number;
}

export interface SimRate {
  coldSchedulesPerS: number;
  schedulesPerS: number;
  /** Scheduler steps per run of the scenario (the mean over the measured runs). */
  stepsPerRun: number;
  /** Bare schedules of `stepsPerRun` steps per second (see the header). */
  bareSchedulesPerS: number;
}

const job = workerData as SimRateJob;
const s = await loadScenario(job.scenario);
let steps = 0;
const rate = async (firstSeed: number, n: number): Promise<number> => {
  steps = 0;
  const t0 = performance.now();
  for (let seed = firstSeed; seed < firstSeed + n; seed++) {
    const r = await runScenario(s, { seed, host: 'sim' });
    if (!r.ok) throw new Error(`bench sim scenario did not run clean (seed ${seed})`);
    steps += r.schedulerSteps;
  }
  return n / ((performance.now() - t0) / 1000);
};

/** One bare schedule: `tasks` tasks, `stepsTotal` resumptions, each step a random parked task. */
function bareSchedule(stepsTotal: number, tasks: number, prng: Prng): Promise<void> {
  return new Promise<void>((finished) => {
    const resume: ((() => void) | null)[] = new Array(tasks).fill(null);
    let left = stepsTotal;
    let running = tasks;
    const dispatch = (): void => {
      const parked: number[] = [];
      for (let i = 0; i < tasks; i++) if (resume[i] !== null) parked.push(i);
      if (parked.length === 0) return;
      const i = parked[parked.length === 1 ? 0 : prng.int(0, parked.length - 1)] as number;
      const r = resume[i] as () => void;
      resume[i] = null;
      r();
    };
    const body = async (i: number): Promise<void> => {
      while (left-- > 0) {
        await new Promise<void>((r) => {
          resume[i] = r;
          dispatch();
        });
      }
      running--;
      if (running === 0) finished();
      else dispatch();
    };
    for (let i = 0; i < tasks; i++) void body(i);
  });
}

async function bareRate(stepsPerRun: number, n: number): Promise<number> {
  const prng = new Prng(1);
  for (let i = 0; i < n; i++) await bareSchedule(stepsPerRun, 5, prng); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await bareSchedule(stepsPerRun, 5, prng);
  return n / ((performance.now() - t0) / 1000);
}

const coldSchedulesPerS = await rate(1, job.coldRuns);
await rate(1 + job.coldRuns, job.warmupRuns - job.coldRuns);
const schedulesPerS = await rate(1 + job.warmupRuns, job.runs);
const stepsPerRun = Math.round(steps / job.runs);
const bareSchedulesPerS = await bareRate(stepsPerRun, job.runs);
parentPort?.postMessage({ coldSchedulesPerS, schedulesPerS, stepsPerRun, bareSchedulesPerS } satisfies SimRate);
