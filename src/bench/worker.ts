/**
 * Benchmark worker: one side of a ping-pong or one contender for a lock. Compiled to dist/bench and
 * started directly (no TypeScript loader), so start-up cost stays out of the figures.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { dmaFenceSignal, dmaFenceWaitTimeout, FenceTable, MAX_SCHEDULE_TIMEOUT } from '../kernel/dma-fence.js';
import { DmaResv, dmaResvLock, dmaResvUnlock, ResvTable } from '../kernel/dma-resv.js';
import { futexLock, futexUnlock } from '../kernel/futex.js';
import '../kernel/kernel.js'; // registers every fence kind in the kernel thread's order
import './ops.js';

export interface BenchJob {
  kind: 'raw-ping' | 'raw-pong' | 'fence-ping' | 'fence-pong' | 'raw-mutex' | 'resv-lock';
  rounds: number;
  sab: SharedArrayBuffer;
  resvSab?: SharedArrayBuffer;
  fences?: number[];
  resvIndex?: number;
  /** Both sides wait on this word before starting, so thread start-up is not timed. */
  gate: SharedArrayBuffer;
}

const job = workerData as BenchJob;
const gate = new Int32Array(job.gate);

function run(): number {
  const n = job.rounds;
  switch (job.kind) {
    case 'raw-ping': {
      // The baseline, shaped like the fence case: one word per direction, store + notify to hand off,
      // wait on the other word to get it back.
      const w = new Int32Array(job.sab);
      for (let i = 1; i <= n; i++) {
        Atomics.store(w, 0, i);
        Atomics.notify(w, 0);
        while (Atomics.load(w, 1) !== i) Atomics.wait(w, 1, i - 1);
      }
      return n;
    }
    case 'raw-pong': {
      const w = new Int32Array(job.sab);
      for (let i = 1; i <= n; i++) {
        while (Atomics.load(w, 0) !== i) Atomics.wait(w, 0, i - 1);
        Atomics.store(w, 1, i);
        Atomics.notify(w, 1);
      }
      return n;
    }
    case 'fence-ping':
    case 'fence-pong': {
      const t = FenceTable.attach(job.sab);
      const fences = job.fences ?? [];
      const ping = job.kind === 'fence-ping';
      for (let i = 0; i < n; i++) {
        const a = fences[2 * i] ?? -1;
        const b = fences[2 * i + 1] ?? -1;
        if (ping) {
          dmaFenceSignal(t, a);
          dmaFenceWaitTimeout(t, b, true, MAX_SCHEDULE_TIMEOUT);
        } else {
          dmaFenceWaitTimeout(t, a, true, MAX_SCHEDULE_TIMEOUT);
          dmaFenceSignal(t, b);
        }
      }
      return n;
    }
    case 'raw-mutex': {
      const w = new Int32Array(job.sab);
      for (let i = 0; i < n; i++) {
        futexLock(w, 0);
        w[1] = (w[1] ?? 0) + 1;
        futexUnlock(w, 0);
      }
      return n;
    }
    case 'resv-lock': {
      const fences = FenceTable.attach(job.sab);
      const task = { pid: 10_000 + threadId, comm: 'bench', uid: 0, gid: 0 };
      const table = ResvTable.attach(job.resvSab as SharedArrayBuffer, {
        fences,
        current: () => task,
        threadId,
        warn: (rule, message) => parentPort?.postMessage({ warn: `${rule}: ${message}` }),
      });
      const obj = new DmaResv(table, job.resvIndex ?? 0);
      for (let i = 0; i < n; i++) {
        dmaResvLock(obj, null);
        dmaResvUnlock(obj);
      }
      return n;
    }
  }
}

Atomics.add(gate, 1, 1);
Atomics.notify(gate, 1);
Atomics.wait(gate, 0, 0);
const t0 = performance.now();
const rounds = run();
parentPort?.postMessage({ rounds, ms: performance.now() - t0 });
