// A device thread for hb.test.ts: attaches the detector's shared buffer and runs one role. Ordering between
// threads comes only from Atomics on the `turn` word (a stand-in for a fence's signalled state): the writer
// releases its clock to a fence slot and THEN publishes with Atomics.store; the other waits for it with
// Atomics.wait/load and only then acquires. No sleeps.
import { parentPort, workerData } from 'node:worker_threads';
import { HbClock, type HbRace, HbShared, type HbSite } from '../../src/detect/hb.js';

export interface HbWorkerJob {
  module: string;
  sab: SharedArrayBuffer;
  /** turn[0]: whose move it is (a counter). */
  turn: SharedArrayBuffer;
  tid: number;
  resvSlot: number;
  sizeBytes: number;
  /**
   * ping: for each round r, wait for turn 2r, (acquire fence 2r-1), write the buffer, release to fence 2r,
   * publish turn 2r+1. pong: wait for turn 2r+1, (acquire fence 2r), read, write the second half, release to
   * fence 2r+1, publish turn 2r+2. hammer: `rounds` unsynchronised writes and reads of [lo, hi).
   */
  role: 'ping' | 'pong' | 'hammer';
  rounds: number;
  acquire: boolean;
  lo?: number;
  hi?: number;
}

export interface HbWorkerReply {
  races: number;
  kinds: string[];
  first: HbRace | null;
}

const job = workerData as HbWorkerJob;
const clock = new HbClock(HbShared.attach(job.sab), job.tid);
const turn = new Int32Array(job.turn);
let races = 0;
const kinds = new Set<string>();
let first: HbRace | null = null;

function site(op: number, job: number): HbSite {
  return { op, job, timeNs: job * 1000, waitedCtx: -1, waitedSeqno: -1 };
}

function access(lo: number, hi: number, write: boolean, s: HbSite): void {
  for (const r of clock.access(job.resvSlot, lo, hi, write, s)) {
    races++;
    kinds.add(r.kind);
    first ??= r;
  }
}

function waitTurn(n: number): void {
  for (;;) {
    const seen = Atomics.load(turn, 0);
    if (seen === n) return;
    Atomics.wait(turn, 0, seen);
  }
}

function publishTurn(n: number): void {
  Atomics.store(turn, 0, n);
  Atomics.notify(turn, 0);
}

const half = job.sizeBytes / 2;
for (let r = 0; r < job.rounds; r++) {
  switch (job.role) {
    case 'ping':
      waitTurn(2 * r);
      if (job.acquire && r > 0) clock.acquireFence(2 * r - 1);
      access(0, job.sizeBytes, true, site(1, r));
      clock.releaseToFence(2 * r);
      publishTurn(2 * r + 1);
      break;
    case 'pong':
      waitTurn(2 * r + 1);
      if (job.acquire) clock.acquireFence(2 * r);
      access(0, job.sizeBytes, false, site(2, r));
      access(half, job.sizeBytes, true, site(3, r));
      clock.releaseToFence(2 * r + 1);
      publishTurn(2 * r + 2);
      break;
    case 'hammer': {
      const lo = job.lo ?? 0;
      const hi = job.hi ?? job.sizeBytes;
      access(lo, hi, r % 2 === 0, site(4, r));
      // New epochs now and then, so records are rewritten (not just merged) while the other thread runs.
      if (r % 16 === 15) clock.releaseToFence(job.tid);
      break;
    }
  }
}

const reply: HbWorkerReply = { races, kinds: [...kinds].sort(), first };
parentPort?.postMessage(reply);
