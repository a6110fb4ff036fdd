// dma_fence in shared memory: the behaviours of drivers/dma-buf/st-dma-fence.c, each with its "late"
// twin, plus cross-thread tests with real worker threads. Orderings are forced, never hoped for.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../src/kernel/assert.js';
import {
  __dmaFenceIsLater,
  type DmaFenceCb,
  dmaFenceAddCallback,
  dmaFenceAllocatePrivateStub,
  dmaFenceContextAlloc,
  dmaFenceEnableSwSignaling,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceGetStub,
  dmaFenceInit,
  dmaFenceIsLater,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceRemoveCallback,
  dmaFenceSetError,
  dmaFenceSignal,
  dmaFenceSignalTimestamp,
  dmaFenceWaitAnyTimeout,
  dmaFenceWaitAnyTimeoutAsync,
  dmaFenceWaitTimeout,
  dmaFenceWaitTimeoutAsync,
  type FenceMisuse,
  FenceTable,
  MAX_SCHEDULE_TIMEOUT,
  registerFenceOps,
  STATE_SIGNALED,
} from '../../src/kernel/dma-fence.js';
import { EINVAL, EIO, ENOENT, ENOMEM } from '../../src/kernel/errno.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

function table(capacity = 64): { t: FenceTable; misuse: FenceMisuse[] } {
  const misuse: FenceMisuse[] = [];
  let clock = 1000;
  const t = FenceTable.create(capacity, { onMisuse: (m) => misuse.push(m), nowNs: () => clock++ });
  return { t, misuse };
}

function mockFence(t: FenceTable, seqno = 1, context = dmaFenceContextAlloc(t, 1)): number {
  const f = dmaFenceInit(t, mockOps, context, seqno);
  if (f < 0) throw new Error(`dma_fence_init: ${f}`);
  return f;
}

function counter(): DmaFenceCb & { runs: number } {
  const cb = {
    runs: 0,
    func: () => {
      cb.runs++;
    },
  };
  return cb;
}

describe('dma_fence (st-dma-fence.c)', () => {
  it('sanity: a fence is born unsignalled with one reference and freed by the last put', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    expect(dmaFenceIsSignaled(t, f)).toBe(false);
    expect(t.refCountOf(f)).toBe(1);
    expect(t.liveCount).toBe(1);
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('signaling: the first signal returns 0, every later one -EINVAL', () => {
    const { t } = table();
    const f = mockFence(t);
    expect(dmaFenceSignal(t, f)).toBe(0);
    expect(dmaFenceIsSignaled(t, f)).toBe(true);
    expect(dmaFenceSignal(t, f)).toBe(-EINVAL);
    expect(dmaFenceSignalTimestamp(t, f, 5)).toBe(-EINVAL);
    expect(t.timestampOf(f)).not.toBe(5); // the second signal changed nothing
  });

  it('add_callback: the callback runs once, at the signal, FIFO with the others', () => {
    const { t } = table();
    const f = mockFence(t);
    const order: string[] = [];
    expect(dmaFenceAddCallback(t, f, { func: () => order.push('a') })).toBe(0);
    expect(dmaFenceAddCallback(t, f, { func: () => order.push('b') })).toBe(0);
    expect(order).toEqual([]);
    dmaFenceSignal(t, f);
    expect(order).toEqual(['a', 'b']);
    dmaFenceSignal(t, f);
    expect(order).toEqual(['a', 'b']);
  });

  it('late_add_callback: adding to a signalled fence returns -ENOENT and never runs', () => {
    const { t } = table();
    const f = mockFence(t);
    dmaFenceSignal(t, f);
    const cb = counter();
    expect(dmaFenceAddCallback(t, f, cb)).toBe(-ENOENT);
    expect(cb.runs).toBe(0);
    expect(dmaFenceRemoveCallback(t, f, cb)).toBe(false);
  });

  it('rm_callback: a removed callback does not run', () => {
    const { t } = table();
    const f = mockFence(t);
    const cb = counter();
    expect(dmaFenceAddCallback(t, f, cb)).toBe(0);
    expect(dmaFenceRemoveCallback(t, f, cb)).toBe(true);
    dmaFenceSignal(t, f);
    expect(cb.runs).toBe(0);
  });

  it('late_rm_callback: removing after the signal returns false (it already ran)', () => {
    const { t } = table();
    const f = mockFence(t);
    const cb = counter();
    dmaFenceAddCallback(t, f, cb);
    dmaFenceSignal(t, f);
    expect(cb.runs).toBe(1);
    expect(dmaFenceRemoveCallback(t, f, cb)).toBe(false);
  });

  it('add_callback without a function is -EINVAL and reported', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    expect(dmaFenceAddCallback(t, f, { func: undefined as never })).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-callback-missing']);
  });

  it('status: 0 while pending, 1 once signalled', () => {
    const { t } = table();
    const f = mockFence(t);
    expect(dmaFenceGetStatus(t, f)).toBe(0);
    dmaFenceSignal(t, f);
    expect(dmaFenceGetStatus(t, f)).toBe(1);
  });

  it('error: set before the signal, reported as the status', () => {
    const { t } = table();
    const f = mockFence(t);
    expect(dmaFenceSetError(t, f, -EIO)).toBe(0);
    expect(dmaFenceGetStatus(t, f)).toBe(0);
    dmaFenceSignal(t, f);
    expect(dmaFenceGetStatus(t, f)).toBe(-EIO);
  });

  it('error after the signal, or not a negative errno, is refused and reported', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    expect(dmaFenceSetError(t, f, 5)).toBe(-EINVAL);
    expect(dmaFenceSetError(t, f, -5000)).toBe(-EINVAL);
    dmaFenceSignal(t, f);
    expect(dmaFenceSetError(t, f, -EIO)).toBe(-EINVAL);
    expect(dmaFenceGetStatus(t, f)).toBe(1);
    expect(misuse.map((m) => m.rule)).toEqual([
      'fence-error-invalid',
      'fence-error-invalid',
      'fence-error-after-signal',
    ]);
  });

  it('wait: timeout 0 polls (0 pending, 1 signalled); a bounded wait on a pending fence times out with 0', () => {
    const { t } = table();
    const f = mockFence(t);
    expect(dmaFenceWaitTimeout(t, f, false, 0)).toBe(0);
    expect(dmaFenceWaitTimeout(t, f, false, 1_000_000)).toBe(0);
    dmaFenceSignal(t, f);
    expect(dmaFenceWaitTimeout(t, f, false, 0)).toBe(1);
    expect(dmaFenceWaitTimeout(t, f, false, 1_000_000)).toBeGreaterThan(0);
    expect(dmaFenceWaitTimeout(t, f, false, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
  });

  it('wait: a negative timeout is -EINVAL', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    expect(dmaFenceWaitTimeout(t, f, false, -1)).toBe(-EINVAL);
    expect(misuse[0]?.rule).toBe('fence-wait-negative-timeout');
  });

  it('stub: the global stub is signalled on first use, context 0, and never freed', () => {
    const { t } = table();
    const s = dmaFenceGetStub(t);
    expect(dmaFenceIsSignaled(t, s)).toBe(true);
    expect(t.contextOf(s)).toBe(0);
    const ts = t.timestampOf(s);
    expect(dmaFenceGetStub(t)).toBe(s);
    expect(t.timestampOf(s)).toBe(ts); // the time of the first use, not of this call
    dmaFencePut(t, s);
    dmaFencePut(t, s);
    expect(dmaFenceIsSignaled(t, s)).toBe(true);
  });

  it('private stub: a fresh signalled fence with the given timestamp', () => {
    const { t } = table();
    const p = dmaFenceAllocatePrivateStub(t, 4242);
    expect(dmaFenceIsSignaled(t, p)).toBe(true);
    expect(t.timestampOf(p)).toBe(4242);
    expect(p).not.toBe(dmaFenceGetStub(t));
  });

  it('enable_signaling returning false signals at once: add_callback then gets -ENOENT', () => {
    const { t } = table();
    const eager = registerFenceOps('test-eager', {
      getDriverName: () => 'eager',
      getTimelineName: () => 'eager',
      enableSignaling: () => false,
    });
    const f = dmaFenceInit(t, eager, dmaFenceContextAlloc(t, 1), 1);
    const cb = counter();
    expect(dmaFenceAddCallback(t, f, cb)).toBe(-ENOENT);
    expect(cb.runs).toBe(0);
    expect(dmaFenceIsSignaled(t, f)).toBe(true);
    expect(dmaFenceEnableSwSignaling(t, f)).toBe(true);
  });

  it('ops->signaled completes the fence when asked, without enabling signalling', () => {
    const { t } = table();
    let done = false;
    const lazy = registerFenceOps('test-lazy', {
      getDriverName: () => 'lazy',
      getTimelineName: () => 'lazy',
      signaled: () => done,
    });
    const f = dmaFenceInit(t, lazy, dmaFenceContextAlloc(t, 1), 1);
    expect(dmaFenceIsSignaled(t, f)).toBe(false);
    done = true;
    expect(t.stateOf(f)).not.toBe(STATE_SIGNALED);
    expect(dmaFenceIsSignaled(t, f)).toBe(true);
    expect(t.stateOf(f)).toBe(STATE_SIGNALED);
  });

  it('release with callbacks pending: reported, error -EDEADLK, signalled so nobody hangs', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    let seen = 0;
    dmaFenceAddCallback(t, f, { func: (fence) => (seen = t.errorOf(fence)) });
    dmaFencePut(t, f);
    expect(seen).toBe(-35);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-released-with-pending-signals']);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_fence_wait_any_timeout (§6.4)', () => {
  it('no fences or a negative timeout is -EINVAL, reported', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    expect(dmaFenceWaitAnyTimeout(t, [], true, 0).ret).toBe(-EINVAL);
    expect(dmaFenceWaitAnyTimeout(t, [f], true, -1).ret).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-wait-any-bad-args', 'fence-wait-any-bad-args']);
  });

  it('timeout 0 polls: 1 and the index of the first signalled fence, else 0', () => {
    const { t } = table();
    const fs = [mockFence(t), mockFence(t), mockFence(t)];
    expect(dmaFenceWaitAnyTimeout(t, fs, true, 0)).toEqual({ ret: 0, idx: -1 });
    dmaFenceSignal(t, fs[2] ?? -1);
    dmaFenceSignal(t, fs[1] ?? -1);
    expect(dmaFenceWaitAnyTimeout(t, fs, true, 0)).toEqual({ ret: 1, idx: 1 });
  });

  it('a bounded wait with none signalled times out with 0', () => {
    const { t } = table();
    const fs = [mockFence(t), mockFence(t)];
    expect(dmaFenceWaitAnyTimeout(t, fs, true, 1_000_000).ret).toBe(0);
  });

  it('wakes when any one of them is signalled from another thread view', async () => {
    const { t } = table();
    const other = FenceTable.attach(t.sab);
    const fs = [mockFence(t), mockFence(t), mockFence(t)];
    const waiting = dmaFenceWaitAnyTimeoutAsync(t, fs, true, MAX_SCHEDULE_TIMEOUT);
    dmaFenceSignal(other, fs[1] ?? -1);
    expect(await waiting).toEqual({ ret: MAX_SCHEDULE_TIMEOUT, idx: 1 });
  });
});

describe('fence handles and the table', () => {
  it('a stale handle never observes the fence that reuses its slot', () => {
    const { t, misuse } = table();
    const a = mockFence(t);
    dmaFencePut(t, a);
    const b = mockFence(t); // lowest free slot: the one a had
    expect(b % (1 << 20)).toBe(a % (1 << 20));
    expect(b).not.toBe(a);
    expect(dmaFenceSignal(t, a)).toBe(-EINVAL);
    expect(dmaFenceIsSignaled(t, b)).toBe(false);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-stale-handle']);
  });

  it('a put without a held reference is reported and does not free the fence', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    dmaFenceGet(t, f);
    dmaFencePut(t, f);
    dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
    dmaFencePut(t, f);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-stale-handle']);
  });

  it('a full table is -ENOMEM, and a freed slot is usable again', () => {
    const { t } = table(4); // slot 0 is the stub: three fences fit
    const fs = [mockFence(t), mockFence(t), mockFence(t)];
    expect(dmaFenceInit(t, mockOps, 1, 1)).toBe(-ENOMEM);
    dmaFencePut(t, fs[0] ?? -1);
    expect(dmaFenceInit(t, mockOps, 1, 1)).toBeGreaterThan(0);
  });

  it('dma_fence_context_alloc(0) is a WARN: reported, nothing reserved', () => {
    const { t, misuse } = table();
    const next = dmaFenceContextAlloc(t, 0);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-context-alloc-zero']);
    expect(dmaFenceContextAlloc(t, 1)).toBe(next);
  });

  it('contexts are consecutive and never 0', () => {
    const { t } = table();
    const a = dmaFenceContextAlloc(t, 3);
    const b = dmaFenceContextAlloc(t, 1);
    expect(a).toBeGreaterThan(0);
    expect(b).toBe(a + 3);
  });

  it('taking a fence lock twice on one thread is a dmafarm bug, not a hang', () => {
    const { t } = table();
    const f = mockFence(t);
    t.lock(f);
    expect(() => t.lock(f)).toThrow(KernelBug);
    t.unlock(f);
  });
});

describe('callback watchers (regression)', () => {
  it('a callback on a reused slot, signalled from another thread view, still runs', async () => {
    const { t } = table(4);
    const other = FenceTable.attach(t.sab); // stands in for a device worker's view
    const x = mockFence(t);
    const cbx = counter();
    expect(dmaFenceAddCallback(t, x, cbx)).toBe(0); // starts this thread's watcher on x
    expect(dmaFenceRemoveCallback(t, x, cbx)).toBe(true);
    dmaFencePut(t, x); // freed unsignalled
    const y = mockFence(t);
    expect(y % (1 << 20)).toBe(x % (1 << 20)); // same slot, new generation
    const ran = new Promise<number>((resolve) => {
      expect(dmaFenceAddCallback(t, y, { func: (f) => resolve(f) })).toBe(0);
    });
    dmaFenceSignal(other, y);
    expect(await ran).toBe(y); // before the fix this never resolved (the test timed out)
    expect(cbx.runs).toBe(0);
  });
});

describe('waiter count across slot reuse (regression)', () => {
  it('a watcher left from a freed fence does not make the next fence in its slot skip its wakeup', async () => {
    const { t } = table(4);
    const other = FenceTable.attach(t.sab);
    const x = mockFence(t);
    const cb = counter();
    expect(dmaFenceAddCallback(t, x, cb)).toBe(0); // a watcher registers as a waiter on x's slot
    expect(dmaFenceRemoveCallback(t, x, cb)).toBe(true);
    dmaFencePut(t, x); // freed unsignalled: the watcher retires later and subtracts its count
    const y = mockFence(t);
    expect(y % (1 << 20)).toBe(x % (1 << 20));
    const woke = dmaFenceWaitTimeoutAsync(t, y, true, MAX_SCHEDULE_TIMEOUT); // registers as a waiter now
    // Force the bad order: the stale watcher retires (subtracting its count) before the signal.
    while (t.watcherCount > 0) await new Promise((r) => setImmediate(r));
    dmaFenceSignal(other, y);
    expect(await woke).toBe(MAX_SCHEDULE_TIMEOUT); // before the fix this hung until the test timeout
  });
});

describe('seqno ordering', () => {
  it('32-bit wrap compare at the boundary (kernel-semantics §11 A8)', () => {
    expect(__dmaFenceIsLater(0, 0x8000_0000, 0)).toBe(false);
    expect(__dmaFenceIsLater(0, 0x7fff_ffff, 0)).toBe(true);
    expect(__dmaFenceIsLater(0, 2, 0xffff_fffe)).toBe(true); // wrapped: 2 is 4 after 0xfffffffe
    expect(__dmaFenceIsLater(0, 5, 5)).toBe(false);
    expect(__dmaFenceIsLater(0, 2 ** 32 + 1, 1)).toBe(false); // only the low 32 bits count
  });

  it('64-bit fences compare the whole value', () => {
    expect(__dmaFenceIsLater(1, 2 ** 32 + 1, 1)).toBe(true);
    expect(__dmaFenceIsLater(1, 0x8000_0000, 0)).toBe(true);
  });

  it('is_later across contexts is false and reported', () => {
    const { t, misuse } = table();
    const a = mockFence(t, 2);
    const b = mockFence(t, 1);
    const c = dmaFenceInit(t, mockOps, t.contextOf(a), 1);
    expect(dmaFenceIsLater(t, a, c)).toBe(true);
    expect(dmaFenceIsLater(t, c, a)).toBe(false);
    expect(dmaFenceIsLater(t, a, b)).toBe(false);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-compare-across-contexts']);
  });
});

// --- real threads ----------------------------------------------------------------------------

const entry = join(import.meta.dirname, '../fixtures/ts-worker-entry.mjs');
const fenceWorker = join(import.meta.dirname, '../fixtures/fence-worker.ts');

interface WorkerReply {
  threadId: number;
  result: unknown;
}

function spawn(job: Record<string, unknown>): { worker: Worker; reply: Promise<WorkerReply> } {
  const worker = new Worker(entry, { workerData: { module: fenceWorker, ...job } });
  const reply = new Promise<WorkerReply>((resolve, reject) => {
    worker.on('message', (m: WorkerReply & { misuse?: FenceMisuse }) => {
      if (m.misuse) reject(new Error(`worker misuse: ${m.misuse.rule} ${m.misuse.message}`));
      else resolve(m);
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited ${code}`));
    });
  });
  return { worker, reply };
}

describe('dma_fence across threads', () => {
  it('every waiter in every thread wakes when another thread signals (no lost wakeup)', async () => {
    const { t } = table(256);
    const fences = Array.from({ length: 64 }, () => mockFence(t));
    const waiters = [1, 2, 3].map(() => spawn({ sab: t.sab, role: 'waiter', fences }));
    const signaller = spawn({ sab: t.sab, role: 'signaller', fences });
    const s = await signaller.reply;
    expect(s.result).toEqual(fences.map(() => 0));
    for (const w of waiters) {
      const r = await w.reply;
      expect((r.result as number[]).every((x) => x === MAX_SCHEDULE_TIMEOUT)).toBe(true);
      expect(r.threadId).not.toBe(s.threadId);
    }
  });

  it('a token passed round a ring of threads through fences arrives every round', async () => {
    const { t } = table(1024);
    const threads = 3;
    const rounds = 100;
    // edge[r][i]: round r, from thread i-1 to thread i.
    const edge = Array.from({ length: rounds + 1 }, () => Array.from({ length: threads }, () => mockFence(t)));
    const jobs = Array.from({ length: threads }, (_, i) => {
      const ins: number[] = [];
      const outs: number[] = [];
      for (let r = 0; r < rounds; r++) {
        ins.push(edge[r]?.[i] ?? -1);
        outs.push(i + 1 < threads ? (edge[r]?.[i + 1] ?? -1) : (edge[r + 1]?.[0] ?? -1));
      }
      return spawn({ sab: t.sab, role: 'relay', fences: ins, out: outs });
    });
    dmaFenceSignal(t, edge[0]?.[0] ?? -1);
    const last = edge[rounds]?.[0] ?? -1;
    expect(await dmaFenceWaitTimeoutAsync(t, last, true, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
    for (const j of jobs) {
      const r = (await j.reply).result as number[];
      expect(r.filter((_, k) => k % 2 === 0).every((x) => x === MAX_SCHEDULE_TIMEOUT)).toBe(true);
      expect(r.filter((_, k) => k % 2 === 1).every((x) => x === 0)).toBe(true);
    }
  });

  it('add_callback racing a remote signal: either -ENOENT and no run, or 0 and exactly one run', async () => {
    const { t } = table(1024);
    const fences = Array.from({ length: 500 }, () => mockFence(t));
    const racer = spawn({ sab: t.sab, role: 'callback-racer', fences });
    const signaller = spawn({ sab: t.sab, role: 'signaller', fences });
    await signaller.reply;
    const { results, counts } = (await racer.reply).result as { results: number[]; counts: number[] };
    results.forEach((r, i) => {
      if (r === -ENOENT) expect(counts[i]).toBe(0);
      else {
        expect(r).toBe(0);
        expect(counts[i]).toBe(1);
      }
    });
  });

  it('both orders of signal and add_callback, forced (st-dma-fence race passes)', async () => {
    const { t } = table(64);
    // Pass 1: signal first (this thread), then the worker adds: every add must be -ENOENT.
    const early = Array.from({ length: 8 }, () => mockFence(t));
    for (const f of early) dmaFenceSignal(t, f);
    const r1 = (await spawn({ sab: t.sab, role: 'callback-racer', fences: early }).reply).result as {
      results: number[];
      counts: number[];
    };
    expect(r1.results).toEqual(early.map(() => -ENOENT));
    expect(r1.counts).toEqual(early.map(() => 0));
    // Pass 2: this thread adds first, then a worker signals: each callback must run exactly once, here.
    const late = Array.from({ length: 8 }, () => mockFence(t));
    const cbs = late.map(() => counter());
    const ran = late.map(
      (f, i) =>
        new Promise<void>((resolve) => {
          const c = cbs[i] as DmaFenceCb & { runs: number };
          expect(
            dmaFenceAddCallback(t, f, {
              func: (fence, cb) => {
                c.func(fence, cb);
                resolve();
              },
            }),
          ).toBe(0);
        }),
    );
    const signaller = spawn({ sab: t.sab, role: 'signaller', fences: late });
    expect((await signaller.reply).result).toEqual(late.map(() => 0));
    // The remote signal reaches this thread's callbacks through its watcher; a hang here fails by timeout.
    await Promise.all(ran);
    expect(cbs.map((c) => c.runs)).toEqual(late.map(() => 1));
  });
});
