/**
 * Benchmark worker: the deterministic host's runs per second, in a fresh isolate of its own — as the host
 * runs in use (`run --host sim` in its own process, an exploration pool worker), with no worker-host or
 * benchmark code having shaped V8's feedback for the kernel and runtime functions both hosts share.
 * Three figures: runs 1..cold (V8 still compiling), a warm-up up to `warmupRuns`, then `runs` more (the
 * steady state, what a sweep of thousands of runs per worker spends its time in).
 */
import { parentPort, workerData } from 'node:worker_threads';
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
}

const job = workerData as SimRateJob;
const s = await loadScenario(job.scenario);
const rate = async (firstSeed: number, n: number): Promise<number> => {
  const t0 = performance.now();
  for (let seed = firstSeed; seed < firstSeed + n; seed++) {
    const r = await runScenario(s, { seed, host: 'sim' });
    if (!r.ok) throw new Error(`bench sim scenario did not run clean (seed ${seed})`);
  }
  return n / ((performance.now() - t0) / 1000);
};
const coldSchedulesPerS = await rate(1, job.coldRuns);
await rate(1 + job.coldRuns, job.warmupRuns - job.coldRuns);
const schedulesPerS = await rate(1 + job.warmupRuns, job.runs);
parentPort?.postMessage({ coldSchedulesPerS, schedulesPerS } satisfies SimRate);
