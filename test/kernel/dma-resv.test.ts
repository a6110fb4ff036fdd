// dma_resv: kernel-semantics.md §4 — the behaviours of drivers/dma-buf/st-dma-resv.c per usage, the
// reserve/add/replace rules of dma-resv.c (§4.2, §11 A9), the queries (§4.3), and the Wait-Die ww_mutex
// (§4.4) after kernel/locking/test-ww_mutex.c (aa, abba, stress), with real worker threads where two
// contexts must actually wait for each other. Orderings are forced with Atomics words; nothing sleeps.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  dmaFenceContextAlloc,
  dmaFenceDriverName,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSignal,
  type FenceHandle,
  MAX_SCHEDULE_TIMEOUT,
} from '../../src/kernel/dma-fence.js';
import { dmaFenceArrayCreate, dmaFenceIsArray } from '../../src/kernel/dma-fence-array.js';
import { dmaFenceChainInit } from '../../src/kernel/dma-fence-chain.js';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvDescribe,
  dmaResvFini,
  dmaResvForEachFenceLocked,
  dmaResvGetFences,
  dmaResvGetSingleton,
  dmaResvInit,
  dmaResvIsLocked,
  dmaResvLock,
  dmaResvLockingStamp,
  dmaResvLockSlow,
  dmaResvNumFences,
  dmaResvReplaceFences,
  dmaResvReserveFences,
  dmaResvTestSignaled,
  dmaResvTrylock,
  dmaResvUnlock,
  dmaResvUsageRw,
  dmaResvWaitTimeout,
  dmaResvWaitTimeoutAsync,
  RESV_FENCES_MAX,
  wwAcquireDone,
  wwAcquireFini,
  wwAcquireInit,
} from '../../src/kernel/dma-resv.js';
import { EALREADY, EBUSY, EDEADLK, EINVAL, ENOMEM, isErr } from '../../src/kernel/errno.js';
import { Kernel, type KernelOptions } from '../../src/kernel/kernel.js';
import type { Task } from '../../src/kernel/kernel-core.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

const MiB = 1 << 20;
const USAGES: readonly DmaResvUsage[] = [
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_WRITE,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_BOOKKEEP,
];
const USAGE_NAME = ['KERNEL', 'WRITE', 'READ', 'BOOKKEEP'] as const;

function boot(opts: KernelOptions = {}): Kernel {
  return new Kernel({ memory: { systemBytes: 8 * MiB, cmaBytes: 8 * MiB, carveoutBytes: 8 * MiB }, ...opts });
}

function newResv(k: Kernel): DmaResv {
  const obj = dmaResvInit(k.resvs);
  if (isErr(obj)) throw new Error(`dma_resv_init: ${obj}`);
  return obj;
}

function mockFence(k: Kernel, seqno = 1, context = dmaFenceContextAlloc(k.fences, 1)): FenceHandle {
  const f = dmaFenceInit(k.fences, mockOps, context, seqno);
  if (f < 0) throw new Error(`dma_fence_init: ${f}`);
  return f;
}

function rules(k: Kernel): string[] {
  return k.warnings.map((w) => w.rule);
}

function task(pid: number): Task {
  return { pid, comm: `task${pid}`, uid: 0, gid: 0 };
}

/** Lock, reserve `n`, add each fence with its usage, unlock. */
function addLocked(obj: DmaResv, entries: [FenceHandle, DmaResvUsage][]): void {
  expect(dmaResvLock(obj, null)).toBe(0);
  expect(dmaResvReserveFences(obj, entries.length)).toBe(0);
  for (const [f, u] of entries) expect(dmaResvAddFence(obj, f, u)).toBe(0);
  dmaResvUnlock(obj);
}

function slots(obj: DmaResv): { fence: FenceHandle; usage: DmaResvUsage }[] {
  expect(dmaResvLock(obj, null)).toBe(0);
  const all = dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_BOOKKEEP);
  dmaResvUnlock(obj);
  return all;
}

describe('dma_resv basics (st-dma-resv.c)', () => {
  it('sanitycheck: init, lock without a context, unlock, fini gives the object back', () => {
    const k = boot();
    const live = k.resvs.liveCount;
    const f = mockFence(k);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
    expect(k.fences.liveCount).toBe(0);
    const obj = newResv(k);
    expect(k.resvs.liveCount).toBe(live + 1);
    expect(dmaResvIsLocked(obj)).toBe(false);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvIsLocked(obj)).toBe(true);
    expect(dmaResvLockingStamp(obj)).toBe(0); // no acquire context
    dmaResvUnlock(obj);
    expect(dmaResvIsLocked(obj)).toBe(false);
    dmaResvFini(obj);
    expect(k.resvs.liveCount).toBe(live);
    expect(k.warnings).toEqual([]);
  });

  it('fini drops the resv reference on every fence it still holds', () => {
    const k = boot();
    const obj = newResv(k);
    const a = mockFence(k);
    const b = mockFence(k);
    addLocked(obj, [
      [a, DMA_RESV_USAGE_WRITE],
      [b, DMA_RESV_USAGE_BOOKKEEP],
    ]);
    expect(k.fences.refCountOf(a)).toBe(2);
    dmaResvFini(obj);
    expect(k.fences.refCountOf(a)).toBe(1);
    expect(k.fences.refCountOf(b)).toBe(1);
    for (const f of [a, b]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
    expect(k.fences.liveCount).toBe(0);
  });

  it.each(USAGES)('test_signaling: usage %s is unsignalled until its fence signals', (usage) => {
    const k = boot();
    const obj = newResv(k);
    const f = mockFence(k);
    addLocked(obj, [[f, usage]]);
    expect(dmaResvTestSignaled(obj, usage)).toBe(false);
    expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_BOOKKEEP)).toBe(false);
    // Queries for a stronger class than the fence's do not see it.
    for (const q of USAGES) if (q < usage) expect(dmaResvTestSignaled(obj, q)).toBe(true);
    expect(dmaFenceSignal(k.fences, f)).toBe(0);
    for (const q of USAGES) expect(dmaResvTestSignaled(obj, q)).toBe(true);
    dmaResvFini(obj);
    dmaFencePut(k.fences, f);
    expect(k.fences.liveCount).toBe(0);
  });

  it('the inclusion rule KERNEL < WRITE < READ < BOOKKEEP, for every query and every fence usage', () => {
    const k = boot();
    const seen: string[] = [];
    for (const usage of USAGES) {
      const obj = newResv(k);
      const f = mockFence(k);
      addLocked(obj, [[f, usage]]);
      for (const q of USAGES) {
        expect(dmaResvLock(obj, null)).toBe(0);
        const locked = dmaResvForEachFenceLocked(obj, q);
        dmaResvUnlock(obj);
        const unlocked = dmaResvGetFences(obj, q);
        for (const e of unlocked) dmaFencePut(k.fences, e.fence);
        const signalled = dmaResvTestSignaled(obj, q);
        if (locked.length > 0) seen.push(`${USAGE_NAME[usage]}<=${USAGE_NAME[q]}`);
        expect(locked).toEqual(usage <= q ? [{ fence: f, usage }] : []);
        expect(unlocked).toEqual(usage <= q ? [{ fence: f, usage }] : []);
        expect(signalled).toBe(usage > q);
      }
      dmaFenceSignal(k.fences, f);
      dmaResvFini(obj);
      dmaFencePut(k.fences, f);
    }
    expect(seen).toEqual([
      'KERNEL<=KERNEL',
      'KERNEL<=WRITE',
      'KERNEL<=READ',
      'KERNEL<=BOOKKEEP',
      'WRITE<=WRITE',
      'WRITE<=READ',
      'WRITE<=BOOKKEEP',
      'READ<=READ',
      'READ<=BOOKKEEP',
      'BOOKKEEP<=BOOKKEEP',
    ]);
    expect(dmaResvUsageRw(true)).toBe(DMA_RESV_USAGE_READ); // a writer waits for readers and writers
    expect(dmaResvUsageRw(false)).toBe(DMA_RESV_USAGE_WRITE); // a reader only for writers
    expect(k.fences.liveCount).toBe(0);
  });

  it('for_each (locked) lists signalled fences too; for_each_unlocked / get_fences only unsignalled', () => {
    const k = boot();
    const obj = newResv(k);
    const a = mockFence(k);
    const b = mockFence(k);
    const c = mockFence(k);
    addLocked(obj, [
      [a, DMA_RESV_USAGE_KERNEL],
      [b, DMA_RESV_USAGE_WRITE],
      [c, DMA_RESV_USAGE_READ],
    ]);
    dmaFenceSignal(k.fences, b);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_READ).map((e) => e.fence)).toEqual([a, b, c]);
    dmaResvUnlock(obj);
    const got = dmaResvGetFences(obj, DMA_RESV_USAGE_READ);
    expect(got).toEqual([
      { fence: a, usage: DMA_RESV_USAGE_KERNEL },
      { fence: c, usage: DMA_RESV_USAGE_READ },
    ]);
    // Each returned fence carries a reference of its own (caller puts it): 1 ours + 1 resv + 1 returned.
    expect(k.fences.refCountOf(a)).toBe(3);
    expect(k.fences.refCountOf(c)).toBe(3);
    expect(k.fences.refCountOf(b)).toBe(2);
    for (const e of got) dmaFencePut(k.fences, e.fence);
    expect(k.fences.refCountOf(a)).toBe(2);
    for (const f of [a, b, c]) dmaFenceSignal(k.fences, f);
    expect(dmaResvGetFences(obj, DMA_RESV_USAGE_BOOKKEEP)).toEqual([]);
    dmaResvFini(obj);
    for (const f of [a, b, c]) dmaFencePut(k.fences, f);
    expect(k.fences.liveCount).toBe(0);
  });

  it('for_each (locked) outside the lock is a lockdep assertion', () => {
    const k = boot();
    const obj = newResv(k);
    dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_READ);
    expect(rules(k)).toEqual(['lockdep-assert-held']);
    dmaResvFini(obj);
  });
});

describe('dma_resv_reserve_fences (§4.2)', () => {
  it('n = 0 is -EINVAL with a warning, and reserves nothing', () => {
    const k = boot();
    const obj = newResv(k);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 0)).toBe(-EINVAL);
    expect(rules(k)).toEqual(['resv-reserve-zero']);
    const f = mockFence(k);
    expect(dmaResvAddFence(obj, f, DMA_RESV_USAGE_READ)).toBe(-EINVAL); // still no slot
    dmaResvUnlock(obj);
    dmaResvFini(obj);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
  });

  it('reserve and add without the lock held are lockdep assertions', () => {
    const k = boot();
    const obj = newResv(k);
    dmaResvReserveFences(obj, 1);
    expect(rules(k)).toEqual(['lockdep-assert-held']);
    const f = mockFence(k);
    dmaResvAddFence(obj, f, DMA_RESV_USAGE_WRITE);
    expect(rules(k)).toEqual(['lockdep-assert-held', 'lockdep-assert-held']);
    dmaResvFini(obj);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
  });

  it('add without a reserved slot is reported (the kernel BUG_ONs) and refused', () => {
    const k = boot();
    const obj = newResv(k);
    const f = mockFence(k);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvAddFence(obj, f, DMA_RESV_USAGE_WRITE)).toBe(-EINVAL);
    expect(rules(k)).toEqual(['resv-add-without-reserve']);
    expect(dmaResvNumFences(obj)).toBe(0);
    expect(k.fences.refCountOf(f)).toBe(1); // no reference was taken
    // One reserved slot is one add; the second add needs another reserve.
    expect(dmaResvReserveFences(obj, 1)).toBe(0);
    expect(dmaResvAddFence(obj, f, DMA_RESV_USAGE_WRITE)).toBe(0);
    expect(k.fences.refCountOf(f)).toBe(2);
    dmaResvUnlock(obj);
    dmaResvFini(obj);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
    expect(k.fences.liveCount).toBe(0);
  });

  it('debug slots (CONFIG_DEBUG_MUTEXES): a reservation does not survive an unlock', () => {
    const k = boot();
    const obj = newResv(k);
    const [a, b] = [mockFence(k), mockFence(k)];
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 2)).toBe(0);
    expect(dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ)).toBe(0);
    dmaResvUnlock(obj);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ)).toBe(-EINVAL);
    expect(rules(k)).toEqual(['resv-add-without-reserve']);
    dmaResvUnlock(obj);
    expect(dmaResvNumFences(obj)).toBe(1);
    dmaResvFini(obj);
    for (const f of [a, b]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
  });

  it('without debug slots a reservation made under one lock is still there under the next', () => {
    const k = boot({ debugResvSlots: false });
    const obj = newResv(k);
    const [a, b] = [mockFence(k), mockFence(k)];
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 2)).toBe(0);
    expect(dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ)).toBe(0);
    dmaResvUnlock(obj);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ)).toBe(0);
    dmaResvUnlock(obj);
    expect(dmaResvNumFences(obj)).toBe(2);
    expect(k.warnings).toEqual([]);
    dmaResvFini(obj);
    for (const f of [a, b]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
  });

  it(`past RESV_FENCES_MAX (${RESV_FENCES_MAX}) reserve is -ENOMEM; dropping signalled fences makes room`, () => {
    const k = boot();
    const obj = newResv(k);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, RESV_FENCES_MAX + 1)).toBe(-ENOMEM);
    expect(dmaResvReserveFences(obj, RESV_FENCES_MAX)).toBe(0);
    const fences = Array.from({ length: RESV_FENCES_MAX }, () => mockFence(k));
    for (const f of fences) expect(dmaResvAddFence(obj, f, DMA_RESV_USAGE_READ)).toBe(0);
    expect(dmaResvReserveFences(obj, 1)).toBe(-ENOMEM);
    expect(dmaResvNumFences(obj)).toBe(RESV_FENCES_MAX);
    // Three signal: growing the list copies only the unsignalled ones and drops the others' references.
    const done = [fences[3], fences[10], fences[40]] as FenceHandle[];
    for (const f of done) dmaFenceSignal(k.fences, f);
    expect(dmaResvReserveFences(obj, 1)).toBe(0);
    expect(dmaResvNumFences(obj)).toBe(RESV_FENCES_MAX - 3);
    for (const f of done) expect(k.fences.refCountOf(f)).toBe(1);
    expect(dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_BOOKKEEP).map((e) => e.fence)).toEqual(
      fences.filter((f) => !done.includes(f)),
    );
    dmaResvUnlock(obj);
    dmaResvFini(obj);
    for (const f of fences) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
    expect(k.fences.liveCount).toBe(0);
  });

  it('no compaction while the list has room: a signalled fence stays listed until the list grows', () => {
    const k = boot();
    const obj = newResv(k);
    const [a, b] = [mockFence(k), mockFence(k)];
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 3)).toBe(0); // first list: max(4, roundup_pow_of_two(3)) = 4
    expect(dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ)).toBe(0);
    expect(dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ)).toBe(0);
    dmaFenceSignal(k.fences, a);
    expect(dmaResvReserveFences(obj, 2)).toBe(0); // 2 + 2 <= 4: no new list
    expect(dmaResvNumFences(obj)).toBe(2);
    expect(dmaResvReserveFences(obj, 3)).toBe(0); // 2 + 3 > 4: a new list, without `a`
    expect(dmaResvNumFences(obj)).toBe(1);
    expect(dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_BOOKKEEP)).toEqual([{ fence: b, usage: DMA_RESV_USAGE_READ }]);
    dmaResvUnlock(obj);
    dmaResvFini(obj);
    for (const f of [a, b]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
    expect(k.fences.liveCount).toBe(0);
  });
});

describe('dma_resv_add_fence replacement rules (§4.2, A9)', () => {
  it('a later fence of the same context and usage replaces the slot in place and drops the old reference', () => {
    const k = boot();
    const obj = newResv(k);
    const ctx = dmaFenceContextAlloc(k.fences, 1);
    const f1 = mockFence(k, 1, ctx);
    const f2 = mockFence(k, 2, ctx);
    addLocked(obj, [[f1, DMA_RESV_USAGE_WRITE]]);
    addLocked(obj, [[f2, DMA_RESV_USAGE_WRITE]]);
    expect(slots(obj)).toEqual([{ fence: f2, usage: DMA_RESV_USAGE_WRITE }]);
    expect(k.fences.refCountOf(f1)).toBe(1);
    expect(k.fences.refCountOf(f2)).toBe(2);
    // Adding the same fence again is "later or same": still one slot, still one resv reference.
    addLocked(obj, [[f2, DMA_RESV_USAGE_WRITE]]);
    expect(slots(obj)).toEqual([{ fence: f2, usage: DMA_RESV_USAGE_WRITE }]);
    expect(k.fences.refCountOf(f2)).toBe(2);
    // An earlier fence of that context does not replace the later one: it gets a slot of its own.
    addLocked(obj, [[f1, DMA_RESV_USAGE_WRITE]]);
    expect(slots(obj).map((e) => e.fence)).toEqual([f2, f1]);
    dmaResvFini(obj);
    for (const f of [f1, f2]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
    expect(k.fences.liveCount).toBe(0);
  });

  it('no demotion: WRITE then a later READ of the same context keeps two slots', () => {
    const k = boot();
    const obj = newResv(k);
    const ctx = dmaFenceContextAlloc(k.fences, 1);
    const w = mockFence(k, 1, ctx);
    const r = mockFence(k, 2, ctx);
    addLocked(obj, [[w, DMA_RESV_USAGE_WRITE]]);
    addLocked(obj, [[r, DMA_RESV_USAGE_READ]]);
    expect(slots(obj)).toEqual([
      { fence: w, usage: DMA_RESV_USAGE_WRITE },
      { fence: r, usage: DMA_RESV_USAGE_READ },
    ]);
    // A reader still waits for the write fence.
    const forReaders = dmaResvGetFences(obj, DMA_RESV_USAGE_WRITE);
    for (const e of forReaders) dmaFencePut(k.fences, e.fence);
    expect(forReaders.map((e) => e.fence)).toEqual([w]);
    dmaResvFini(obj);
    for (const f of [w, r]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
  });

  it('promotion: READ then a later WRITE of the same context is one WRITE slot (A9)', () => {
    const k = boot();
    const obj = newResv(k);
    const ctx = dmaFenceContextAlloc(k.fences, 1);
    const r = mockFence(k, 1, ctx);
    const w = mockFence(k, 2, ctx);
    addLocked(obj, [[r, DMA_RESV_USAGE_READ]]);
    addLocked(obj, [[w, DMA_RESV_USAGE_WRITE]]);
    expect(slots(obj)).toEqual([{ fence: w, usage: DMA_RESV_USAGE_WRITE }]);
    expect(k.fences.refCountOf(r)).toBe(1);
    dmaResvFini(obj);
    for (const f of [w, r]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
  });

  it('promotion of the same fence: BOOKKEEP then the same fence as READ is one READ slot; the reverse is two', () => {
    const k = boot();
    const obj = newResv(k);
    const f = mockFence(k);
    addLocked(obj, [[f, DMA_RESV_USAGE_BOOKKEEP]]);
    addLocked(obj, [[f, DMA_RESV_USAGE_READ]]);
    expect(slots(obj)).toEqual([{ fence: f, usage: DMA_RESV_USAGE_READ }]);
    addLocked(obj, [[f, DMA_RESV_USAGE_BOOKKEEP]]); // weaker: not a replacement
    expect(slots(obj)).toEqual([
      { fence: f, usage: DMA_RESV_USAGE_READ },
      { fence: f, usage: DMA_RESV_USAGE_BOOKKEEP },
    ]);
    expect(k.fences.refCountOf(f)).toBe(3);
    dmaResvFini(obj);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
    expect(k.fences.liveCount).toBe(0);
  });

  it('a signalled fence of any context is replaced in place by the next add (no new slot used)', () => {
    const k = boot();
    const obj = newResv(k);
    const [a, b, c] = [mockFence(k), mockFence(k), mockFence(k)];
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 3)).toBe(0);
    expect(dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ)).toBe(0);
    expect(dmaResvAddFence(obj, b, DMA_RESV_USAGE_WRITE)).toBe(0);
    dmaFenceSignal(k.fences, a);
    expect(dmaResvAddFence(obj, c, DMA_RESV_USAGE_BOOKKEEP)).toBe(0);
    expect(dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_BOOKKEEP)).toEqual([
      { fence: c, usage: DMA_RESV_USAGE_BOOKKEEP },
      { fence: b, usage: DMA_RESV_USAGE_WRITE },
    ]);
    dmaResvUnlock(obj);
    expect(k.fences.refCountOf(a)).toBe(1);
    dmaResvFini(obj);
    for (const f of [a, b, c]) {
      dmaFenceSignal(k.fences, f);
      dmaFencePut(k.fences, f);
    }
    expect(k.fences.liveCount).toBe(0);
  });

  it('across locks: debug slots reallocate on every reserve (dropping signalled fences); without, in place (A9)', () => {
    for (const debugResvSlots of [true, false]) {
      const k = boot({ debugResvSlots });
      const obj = newResv(k);
      const [a, b, c] = [mockFence(k, 1), mockFence(k, 2), mockFence(k, 3)];
      addLocked(obj, [[a, DMA_RESV_USAGE_READ]]);
      addLocked(obj, [[b, DMA_RESV_USAGE_READ]]);
      dmaFenceSignal(k.fences, a);
      dmaFenceSignal(k.fences, b);
      addLocked(obj, [[c, DMA_RESV_USAGE_READ]]);
      if (debugResvSlots) {
        // The reserve had to grow the list (max was reset to num at unlock): signalled fences are gone.
        expect(slots(obj).map((e) => e.fence)).toEqual([c]);
        expect(dmaResvDescribe(obj)).toEqual(['read fence:mock mock seq 3 unsignalled']);
      } else {
        // The list had room: c took a's slot in place, and b is still listed as signalled.
        expect(slots(obj).map((e) => e.fence)).toEqual([c, b]);
        expect(dmaResvDescribe(obj)).toEqual([
          'read fence:mock mock seq 3 unsignalled',
          'read fence:mock mock seq 2 signalled',
        ]);
      }
      expect(k.fences.refCountOf(a)).toBe(1);
      dmaResvFini(obj);
      for (const f of [a, b, c]) {
        dmaFenceSignal(k.fences, f);
        dmaFencePut(k.fences, f);
      }
      expect(k.fences.liveCount).toBe(0);
    }
  });

  it('a container fence (array or chain) is refused with a warning; its components are not added', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const [a, b, c] = [mockFence(k), mockFence(k), mockFence(k)];
    const array = dmaFenceArrayCreate(t, [a, b], dmaFenceContextAlloc(t, 1), 1, false);
    const chain = dmaFenceChainInit(t, null, c, 1);
    expect(array).toBeGreaterThanOrEqual(0);
    expect(chain).toBeGreaterThanOrEqual(0);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvReserveFences(obj, 2)).toBe(0);
    expect(dmaResvAddFence(obj, array, DMA_RESV_USAGE_WRITE)).toBe(-EINVAL);
    expect(dmaResvAddFence(obj, chain, DMA_RESV_USAGE_WRITE)).toBe(-EINVAL);
    dmaResvUnlock(obj);
    expect(rules(k)).toEqual(['resv-add-container', 'resv-add-container']);
    expect(dmaResvNumFences(obj)).toBe(0);
    expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_BOOKKEEP)).toBe(true);
    dmaResvFini(obj);
    for (const f of [a, b, c]) dmaFenceSignal(t, f);
    dmaFencePut(t, array);
    dmaFencePut(t, chain);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_resv_replace_fences', () => {
  it('replaces every fence of one context, with the new usage, and leaves other contexts alone', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const ctx = dmaFenceContextAlloc(t, 1);
    const w1 = mockFence(k, 1, ctx);
    const r2 = mockFence(k, 2, ctx);
    const other = mockFence(k);
    const repl = mockFence(k);
    addLocked(obj, [
      [w1, DMA_RESV_USAGE_WRITE],
      [other, DMA_RESV_USAGE_WRITE],
      [r2, DMA_RESV_USAGE_READ], // WRITE → READ is no demotion: w1 keeps its slot
    ]);
    expect(dmaResvNumFences(obj)).toBe(3);
    expect(dmaResvLock(obj, null)).toBe(0);
    dmaResvReplaceFences(obj, ctx, repl, DMA_RESV_USAGE_BOOKKEEP);
    expect(dmaResvForEachFenceLocked(obj, DMA_RESV_USAGE_BOOKKEEP)).toEqual([
      { fence: repl, usage: DMA_RESV_USAGE_BOOKKEEP },
      { fence: other, usage: DMA_RESV_USAGE_WRITE },
      { fence: repl, usage: DMA_RESV_USAGE_BOOKKEEP },
    ]);
    dmaResvUnlock(obj);
    expect(t.refCountOf(w1)).toBe(1);
    expect(t.refCountOf(r2)).toBe(1);
    expect(t.refCountOf(repl)).toBe(3);
    // The replaced fences no longer hold back readers or writers.
    expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_READ)).toBe(false); // `other`
    dmaFenceSignal(t, other);
    expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_READ)).toBe(true);
    expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_BOOKKEEP)).toBe(false); // `repl`
    expect(k.warnings).toEqual([]);
    dmaResvFini(obj);
    for (const f of [w1, r2, other, repl]) {
      dmaFenceSignal(t, f);
      dmaFencePut(t, f);
    }
    expect(t.liveCount).toBe(0);
  });

  it('replace_fences without the lock is a lockdep assertion', () => {
    const k = boot();
    const obj = newResv(k);
    const f = mockFence(k);
    dmaResvReplaceFences(obj, 1, f, DMA_RESV_USAGE_READ);
    expect(rules(k)).toEqual(['lockdep-assert-held']);
    dmaResvFini(obj);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
  });
});

describe('dma_resv_get_singleton', () => {
  it('no unsignalled fence → null; one → that fence with a new reference', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_BOOKKEEP)).toBeNull();
    const f = mockFence(k);
    const bk = mockFence(k);
    addLocked(obj, [
      [f, DMA_RESV_USAGE_WRITE],
      [bk, DMA_RESV_USAGE_BOOKKEEP],
    ]);
    const one = dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ); // BOOKKEEP is not included
    expect(one).toBe(f);
    expect(t.refCountOf(f)).toBe(3);
    dmaFencePut(t, f);
    expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_KERNEL)).toBeNull();
    dmaFenceSignal(t, f);
    expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ)).toBeNull(); // signalled fences are skipped
    dmaResvFini(obj);
    dmaFenceSignal(t, bk);
    dmaFencePut(t, f);
    dmaFencePut(t, bk);
    expect(t.liveCount).toBe(0);
  });

  it('several → a new dma_fence_array (fresh context, seqno 1) that signals only after all of them', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const [a, b] = [mockFence(k), mockFence(k)];
    addLocked(obj, [
      [a, DMA_RESV_USAGE_WRITE],
      [b, DMA_RESV_USAGE_READ],
    ]);
    const contextBefore = dmaFenceContextAlloc(t, 1);
    const single = dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ);
    if (single === null || isErr(single)) throw new Error(`get_singleton: ${single}`);
    expect(single).not.toBe(a);
    expect(single).not.toBe(b);
    expect(dmaFenceIsArray(t, single)).toBe(true);
    expect(dmaFenceDriverName(t, single)).toBe('dma_fence_array');
    expect(t.contextOf(single)).toBeGreaterThan(contextBefore);
    expect(t.seqnoOf(single)).toBe(1);
    expect(dmaFenceIsSignaled(t, single)).toBe(false);
    dmaFenceSignal(t, a);
    expect(dmaFenceIsSignaled(t, single)).toBe(false);
    dmaFenceSignal(t, b);
    expect(dmaFenceIsSignaled(t, single)).toBe(true);
    dmaFencePut(t, single);
    dmaResvFini(obj);
    dmaFencePut(t, a);
    dmaFencePut(t, b);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_resv_wait_timeout', () => {
  it('timeout 0 polls: 1 when all are signalled, 0 otherwise; only usages ≤ the query count', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_BOOKKEEP, true, 0)).toBe(1);
    const w = mockFence(k);
    const bk = mockFence(k);
    addLocked(obj, [
      [w, DMA_RESV_USAGE_WRITE],
      [bk, DMA_RESV_USAGE_BOOKKEEP],
    ]);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, true, 0)).toBe(0);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_KERNEL, true, 0)).toBe(1);
    dmaFenceSignal(t, w);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, true, 0)).toBe(1);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_BOOKKEEP, true, 0)).toBe(0);
    dmaResvFini(obj);
    dmaFenceSignal(t, bk);
    dmaFencePut(t, w);
    dmaFencePut(t, bk);
  });

  it('a pending fence times out with 0; once signalled the wait returns the time left (> 0)', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const f = mockFence(k);
    addLocked(obj, [[f, DMA_RESV_USAGE_READ]]);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, true, 1e6)).toBe(0);
    // A writer-only wait does not see the read fence.
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_WRITE, true, 1e6)).toBeGreaterThan(0);
    dmaFenceSignal(t, f);
    const left = dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, true, 1e9);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(1e9);
    expect(dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, true, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
    dmaResvFini(obj);
    dmaFencePut(t, f);
  });

  it('the async twin wakes when this same thread signals from the event loop', async () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const [a, b] = [mockFence(k), mockFence(k)];
    addLocked(obj, [
      [a, DMA_RESV_USAGE_WRITE],
      [b, DMA_RESV_USAGE_READ],
    ]);
    const order: string[] = [];
    const waiting = dmaResvWaitTimeoutAsync(obj, DMA_RESV_USAGE_READ, true, MAX_SCHEDULE_TIMEOUT).then((r) => {
      order.push('woke');
      return r;
    });
    setImmediate(() => {
      order.push('signal a');
      dmaFenceSignal(t, a);
      setImmediate(() => {
        order.push('signal b');
        dmaFenceSignal(t, b);
      });
    });
    expect(await waiting).toBe(MAX_SCHEDULE_TIMEOUT);
    expect(order).toEqual(['signal a', 'signal b', 'woke']);
    expect(await dmaResvWaitTimeoutAsync(obj, DMA_RESV_USAGE_READ, true, 5e6)).toBeGreaterThan(0);
    dmaResvFini(obj);
    dmaFencePut(t, a);
    dmaFencePut(t, b);
  });
});

describe('dma_resv_describe', () => {
  it('one line per kernel/write/read fence in slot order; BOOKKEEP is hidden', () => {
    const k = boot();
    const t = k.fences;
    const obj = newResv(k);
    const kf = mockFence(k, 3);
    const wf = mockFence(k, 7);
    const rf = mockFence(k, 0x1_0000_0001); // a 64-bit seqno prints whole
    const bf = mockFence(k, 9);
    addLocked(obj, [
      [kf, DMA_RESV_USAGE_KERNEL],
      [wf, DMA_RESV_USAGE_WRITE],
      [bf, DMA_RESV_USAGE_BOOKKEEP],
      [rf, DMA_RESV_USAGE_READ],
    ]);
    dmaFenceSignal(t, wf);
    expect(dmaResvDescribe(obj)).toEqual([
      'kernel fence:mock mock seq 3 unsignalled',
      'write fence:mock mock seq 7 signalled',
      'read fence:mock mock seq 4294967297 unsignalled',
    ]);
    dmaResvFini(obj);
    for (const f of [kf, wf, rf, bf]) {
      dmaFenceSignal(t, f);
      dmaFencePut(t, f);
    }
    expect(t.liveCount).toBe(0);
  });
});

describe('ww_mutex on one thread (test-ww_mutex.c)', () => {
  it('test_aa: relocking with the same context is -EALREADY; trylock on a lock we hold fails', () => {
    const k = boot();
    const obj = newResv(k);
    const ctx = wwAcquireInit(k.resvs);
    expect(dmaResvLock(obj, ctx)).toBe(0);
    expect(ctx.acquired).toBe(1);
    expect(dmaResvLockingStamp(obj)).toBe(ctx.stamp);
    expect(dmaResvTrylock(obj)).toBe(false);
    expect(dmaResvLock(obj, ctx)).toBe(-EALREADY);
    expect(ctx.acquired).toBe(1);
    dmaResvUnlock(obj);
    expect(ctx.acquired).toBe(0);
    expect(dmaResvIsLocked(obj)).toBe(false);
    wwAcquireFini(k.resvs, ctx);
    expect(k.warnings).toEqual([]);
    dmaResvFini(obj);
  });

  it('acquire contexts get increasing stamps (smaller is older)', () => {
    const k = boot();
    const a = wwAcquireInit(k.resvs);
    const b = wwAcquireInit(k.resvs);
    expect(b.stamp).toBeGreaterThan(a.stamp);
    wwAcquireFini(k.resvs, a);
    wwAcquireFini(k.resvs, b);
  });

  it('trylock takes a free lock for the current task and fails on a held one, without warnings', () => {
    const k = boot();
    const obj = newResv(k);
    const p1 = task(101);
    const p2 = task(102);
    expect(k.runAs(p1, () => dmaResvTrylock(obj))).toBe(true);
    expect(dmaResvLockingStamp(obj)).toBe(0);
    expect(k.runAs(p2, () => dmaResvTrylock(obj))).toBe(false);
    expect(k.runAs(p1, () => dmaResvTrylock(obj))).toBe(false);
    k.runAs(p1, () => dmaResvUnlock(obj));
    expect(k.runAs(p2, () => dmaResvTrylock(obj))).toBe(true);
    k.runAs(p2, () => dmaResvUnlock(obj));
    expect(k.warnings).toEqual([]);
    dmaResvFini(obj);
  });

  it('a task locking twice without a context (or with another one) is the recursive self-deadlock', () => {
    const k = boot();
    const obj = newResv(k);
    expect(dmaResvLock(obj, null)).toBe(0);
    expect(dmaResvLock(obj, null)).toBe(-EDEADLK);
    expect(rules(k)).toEqual(['ww-mutex-recursive']);
    const ctx = wwAcquireInit(k.resvs);
    expect(dmaResvLock(obj, ctx)).toBe(-EDEADLK);
    expect(rules(k)).toEqual(['ww-mutex-recursive', 'ww-mutex-recursive']);
    expect(ctx.acquired).toBe(0);
    dmaResvUnlock(obj);
    wwAcquireFini(k.resvs, ctx);
    expect(rules(k)).toHaveLength(2);
    dmaResvFini(obj);
  });

  it('Wait-Die: a younger context holding a lock dies (-EDEADLK) on a lock an older context holds', () => {
    const k = boot();
    const [x, y] = [newResv(k), newResv(k)];
    const older = wwAcquireInit(k.resvs, task(201));
    const younger = wwAcquireInit(k.resvs, task(202));
    expect(k.runAs(older.task, () => dmaResvLock(x, older))).toBe(0);
    expect(k.runAs(younger.task, () => dmaResvLock(y, younger))).toBe(0);
    expect(k.runAs(younger.task, () => dmaResvLock(x, younger))).toBe(-EDEADLK);
    expect(younger.contended).toBe(x);
    expect(younger.acquired).toBe(1); // dying releases nothing: that is the caller's job
    expect(k.warnings).toEqual([]);
    k.runAs(younger.task, () => dmaResvUnlock(y));
    k.runAs(older.task, () => dmaResvUnlock(x));
    wwAcquireFini(k.resvs, older);
    wwAcquireFini(k.resvs, younger);
    dmaResvFini(x);
    dmaResvFini(y);
  });

  it('after -EDEADLK: back off, lock_slow the contended lock (0, contention cleared), then the rest', () => {
    const k = boot();
    const [x, y] = [newResv(k), newResv(k)];
    const older = wwAcquireInit(k.resvs, task(211));
    const younger = wwAcquireInit(k.resvs, task(212));
    const asY = <T>(fn: () => T): T => k.runAs(younger.task, fn);
    expect(k.runAs(older.task, () => dmaResvLock(x, older))).toBe(0);
    expect(asY(() => dmaResvLock(y, younger))).toBe(0);
    expect(asY(() => dmaResvLock(x, younger))).toBe(-EDEADLK);
    asY(() => dmaResvUnlock(y)); // back off: drop everything
    expect(younger.acquired).toBe(0);
    k.runAs(older.task, () => dmaResvUnlock(x)); // on one thread the older one must finish first
    wwAcquireFini(k.resvs, older);
    expect(asY(() => dmaResvLockSlow(x, younger))).toBe(0);
    expect(younger.contended).toBeNull();
    expect(asY(() => dmaResvLock(y, younger))).toBe(0);
    expect(asY(() => dmaResvLock(x, younger))).toBe(-EALREADY);
    expect(younger.acquired).toBe(2);
    wwAcquireDone(younger);
    asY(() => dmaResvUnlock(x));
    asY(() => dmaResvUnlock(y));
    wwAcquireFini(k.resvs, younger);
    expect(k.warnings).toEqual([]);
    dmaResvFini(x);
    dmaResvFini(y);
  });

  it('locking on after -EDEADLK without backing off is reported (ww-mutex-no-backoff)', () => {
    const k = boot();
    const [x, y, z] = [newResv(k), newResv(k), newResv(k)];
    const older = wwAcquireInit(k.resvs, task(221));
    const younger = wwAcquireInit(k.resvs, task(222));
    const asY = <T>(fn: () => T): T => k.runAs(younger.task, fn);
    expect(k.runAs(older.task, () => dmaResvLock(x, older))).toBe(0);
    expect(asY(() => dmaResvLock(y, younger))).toBe(0);
    expect(asY(() => dmaResvLock(x, younger))).toBe(-EDEADLK);
    expect(k.warnings).toEqual([]);
    expect(asY(() => dmaResvLock(z, younger))).toBe(0);
    expect(rules(k)).toEqual(['ww-mutex-no-backoff']);
    asY(() => dmaResvUnlock(z));
    asY(() => dmaResvUnlock(y));
    k.runAs(older.task, () => dmaResvUnlock(x));
    wwAcquireFini(k.resvs, older);
    wwAcquireFini(k.resvs, younger);
    expect(rules(k)).toEqual(['ww-mutex-no-backoff']);
    for (const o of [x, y, z]) dmaResvFini(o);
  });

  it('lock_slow with locks still held, or on a lock other than the contended one, is reported', () => {
    const k = boot();
    const [x, y, z] = [newResv(k), newResv(k), newResv(k)];
    const ctx = wwAcquireInit(k.resvs);
    expect(dmaResvLock(y, ctx)).toBe(0);
    expect(dmaResvLockSlow(x, ctx)).toBe(0);
    expect(rules(k)).toEqual(['ww-mutex-slow-with-locks-held']);
    dmaResvUnlock(x);
    dmaResvUnlock(y);
    wwAcquireFini(k.resvs, ctx);
    // Die on x, back off, then lock_slow z instead of x.
    const older = wwAcquireInit(k.resvs, task(231));
    const younger = wwAcquireInit(k.resvs, task(232));
    const asY = <T>(fn: () => T): T => k.runAs(younger.task, fn);
    expect(k.runAs(older.task, () => dmaResvLock(x, older))).toBe(0);
    expect(asY(() => dmaResvLock(y, younger))).toBe(0);
    expect(asY(() => dmaResvLock(x, younger))).toBe(-EDEADLK);
    asY(() => dmaResvUnlock(y));
    expect(asY(() => dmaResvLockSlow(z, younger))).toBe(0);
    expect(rules(k)).toEqual(['ww-mutex-slow-with-locks-held', 'ww-mutex-slow-wrong-lock']);
    asY(() => dmaResvUnlock(z));
    k.runAs(older.task, () => dmaResvUnlock(x));
    wwAcquireFini(k.resvs, older);
    wwAcquireFini(k.resvs, younger);
    for (const o of [x, y, z]) dmaResvFini(o);
  });

  it('ww_acquire_fini with locks still held is reported; after the unlocks it is not', () => {
    const k = boot();
    const obj = newResv(k);
    const ctx = wwAcquireInit(k.resvs);
    expect(dmaResvLock(obj, ctx)).toBe(0);
    wwAcquireFini(k.resvs, ctx);
    expect(rules(k)).toEqual(['ww-acquire-fini-held']);
    dmaResvUnlock(obj);
    const ctx2 = wwAcquireInit(k.resvs);
    expect(dmaResvLock(obj, ctx2)).toBe(0);
    dmaResvUnlock(obj);
    wwAcquireFini(k.resvs, ctx2);
    expect(rules(k)).toEqual(['ww-acquire-fini-held']);
    dmaResvFini(obj);
  });

  it('a lock after ww_acquire_done is reported', () => {
    const k = boot();
    const [x, y] = [newResv(k), newResv(k)];
    const ctx = wwAcquireInit(k.resvs);
    expect(dmaResvLock(x, ctx)).toBe(0);
    wwAcquireDone(ctx);
    expect(k.warnings).toEqual([]);
    expect(dmaResvLock(y, ctx)).toBe(0);
    expect(rules(k)).toEqual(['ww-acquire-after-done']);
    dmaResvUnlock(x);
    dmaResvUnlock(y);
    wwAcquireFini(k.resvs, ctx);
    dmaResvFini(x);
    dmaResvFini(y);
  });

  it('two tasks of one thread contending: -EBUSY and a warning instead of a sleep that would hang', () => {
    const k = boot();
    const obj = newResv(k);
    const p1 = task(241);
    const p2 = task(242);
    expect(k.runAs(p1, () => dmaResvLock(obj, null))).toBe(0);
    expect(k.runAs(p2, () => dmaResvLock(obj, null))).toBe(-EBUSY);
    expect(rules(k)).toEqual(['ww-mutex-same-thread-contention']);
    // A context that holds nothing never dies, so it would sleep too: the same -EBUSY.
    const ctx = wwAcquireInit(k.resvs, p2);
    expect(k.runAs(p2, () => dmaResvLock(obj, ctx))).toBe(-EBUSY);
    expect(ctx.acquired).toBe(0);
    expect(rules(k)).toEqual(['ww-mutex-same-thread-contention', 'ww-mutex-same-thread-contention']);
    k.runAs(p1, () => dmaResvUnlock(obj));
    expect(k.runAs(p2, () => dmaResvLock(obj, ctx))).toBe(0);
    k.runAs(p2, () => dmaResvUnlock(obj));
    wwAcquireFini(k.resvs, ctx);
    expect(rules(k)).toHaveLength(2);
    dmaResvFini(obj);
  });

  it('unlock by a task that does not hold the lock, or of an unlocked resv, is reported', () => {
    const k = boot();
    const obj = newResv(k);
    dmaResvUnlock(obj);
    expect(rules(k)).toEqual(['ww-mutex-unlock-unlocked']);
    expect(k.runAs(task(251), () => dmaResvLock(obj, null))).toBe(0);
    k.runAs(task(252), () => dmaResvUnlock(obj));
    expect(rules(k)).toEqual(['ww-mutex-unlock-unlocked', 'ww-mutex-unlock-foreign']);
    dmaResvFini(obj);
  });
});

// --- real threads ----------------------------------------------------------------------------

const entry = join(import.meta.dirname, '../fixtures/ts-worker-entry.mjs');
const resvWorker = join(import.meta.dirname, '../fixtures/resv-worker.ts');
// Control words shared with resv-worker.ts (same numbers as there).
const CTL_PHASE = 0;
const CTL_STATE = 1;
const CTL_GO = 2;
const STATE_READY = 1;
const STATE_DONE = 3;
/** Word 1 of a resv object counts the sleepers on its lock word (dma-resv.ts R_LOCK_WAITERS). */
const R_LOCK_WAITERS = 1;

interface Spawned {
  worker: Worker;
  reply: Promise<{ threadId: number; result: unknown }>;
  warnings: string[];
}

function spawn(k: Kernel, ctlSab: SharedArrayBuffer, job: Record<string, unknown>): Spawned {
  const worker = new Worker(entry, {
    workerData: { module: resvWorker, fencesSab: k.fences.sab, resvSab: k.resvs.sab, ctlSab, ...job },
  });
  const warnings: string[] = [];
  const reply = new Promise<{ threadId: number; result: unknown }>((resolve, reject) => {
    worker.on('message', (m: { warn?: string; message?: string; threadId: number; result: unknown }) => {
      if (m.warn !== undefined) warnings.push(`${m.warn}: ${m.message}`);
      else resolve(m);
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited ${code}`));
    });
  });
  return { worker, reply, warnings };
}

/** Await (without blocking the event loop) until ctl[index] satisfies `pred`. */
async function ctlUntil(ctl: Int32Array, index: number, pred: (v: number) => boolean): Promise<void> {
  for (;;) {
    const v = Atomics.load(ctl, index);
    if (pred(v)) return;
    await Atomics.waitAsync(ctl, index, v).value;
  }
}

/**
 * Spin until a thread is asleep (or about to sleep) on `obj`'s lock, or the worker finished instead.
 * This is an Atomics handoff, not a sleep: the counter is raised by the waiter itself right before its
 * Atomics.wait, so seeing it proves the worker chose to wait rather than die.
 */
function spinUntilWaiter(obj: DmaResv, ctl: Int32Array): boolean {
  const deadline = performance.now() + 20_000; // a guard against a broken model, not a synchronisation
  for (;;) {
    if (Atomics.load(obj.w, R_LOCK_WAITERS) > 0) return true;
    if (Atomics.load(ctl, CTL_STATE) === STATE_DONE) return false;
    if (performance.now() > deadline) throw new Error('worker neither waited nor finished');
  }
}

/**
 * Fail fast (instead of at the test timeout) when the workers never finish: Wait-Die is deadlock-free,
 * so a run that hangs is a deadlock in the model. A guard, not a synchronisation: it never decides an
 * ordering, it only bounds how long a broken run takes to report.
 */
async function withWatchdog<T>(work: Promise<T>, spawned: Spawned[], ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      for (const s of spawned) void s.worker.terminate();
      reject(new Error(`deadlock: the workers did not finish within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

describe('ww_mutex Wait-Die across real threads', () => {
  it('abba: the older context waits for the younger holder; the younger dies, backs off, lock_slow waits', async () => {
    const k = boot();
    const [x, y] = [newResv(k), newResv(k)];
    const ctlSab = new SharedArrayBuffer(16);
    const ctl = new Int32Array(ctlSab);
    // The worker's context is created first, so it is the older one. It takes x, then asks for y.
    const w = spawn(k, ctlSab, { role: 'older-waits', pid: 1000, first: x.index, second: y.index });
    await ctlUntil(ctl, CTL_STATE, (v) => v === STATE_READY);
    const younger = wwAcquireInit(k.resvs);
    expect(dmaResvLock(y, younger)).toBe(0);
    Atomics.store(ctl, CTL_PHASE, 1);
    Atomics.notify(ctl, CTL_PHASE);
    // The older context is now asleep on y (held by us, younger): Wait-Die never makes it die.
    expect(spinUntilWaiter(y, ctl)).toBe(true);
    // We hold y and want x, held by the older context: we die.
    expect(dmaResvLock(x, younger)).toBe(-EDEADLK);
    expect(younger.contended).toBe(x);
    // Back off; only then may the older one get y.
    Atomics.store(ctl, CTL_PHASE, 2);
    dmaResvUnlock(y);
    // lock_slow sleeps until the worker lets go of x; it never dies.
    expect(dmaResvLockSlow(x, younger)).toBe(0);
    expect(dmaResvLock(y, younger)).toBe(0);
    dmaResvUnlock(x);
    dmaResvUnlock(y);
    wwAcquireFini(k.resvs, younger);
    const r = (await w.reply).result as {
      stamp: number;
      firstRet: number;
      secondRet: number;
      phaseSeen: number;
      acquiredAfter: number;
    };
    expect(r.stamp).toBeLessThan(younger.stamp);
    expect(r).toMatchObject({ firstRet: 0, secondRet: 0, phaseSeen: 2, acquiredAfter: 0 });
    expect(w.warnings).toEqual([]);
    expect(k.warnings).toEqual([]);
    dmaResvFini(x);
    dmaResvFini(y);
  });

  it.each([
    ['a younger context holding nothing', true],
    ['a plain lock without context', false],
  ])('%s waits for another thread’s holder instead of failing', async (_name, useCtx) => {
    const k = boot();
    const x = newResv(k);
    const ctlSab = new SharedArrayBuffer(16);
    const ctl = new Int32Array(ctlSab);
    const older = wwAcquireInit(k.resvs);
    expect(dmaResvLock(x, older)).toBe(0);
    const w = spawn(k, ctlSab, { role: 'lock-one', pid: 1100, target: x.index, useCtx });
    await ctlUntil(ctl, CTL_STATE, (v) => v >= STATE_READY);
    expect(spinUntilWaiter(x, ctl)).toBe(true);
    Atomics.store(ctl, CTL_PHASE, 2);
    dmaResvUnlock(x);
    wwAcquireFini(k.resvs, older);
    const r = (await w.reply).result as { stamp: number; ret: number; phaseSeen: number };
    expect(r.ret).toBe(0);
    expect(r.phaseSeen).toBe(2);
    if (useCtx) expect(r.stamp).toBeGreaterThan(older.stamp);
    expect(w.warnings).toEqual([]);
    expect(k.warnings).toEqual([]);
    expect(dmaResvIsLocked(x)).toBe(false);
    dmaResvFini(x);
  });

  it('stress: 4 workers lock random overlapping sets of 3 of 5 resvs; exclusion holds, nothing deadlocks', async () => {
    const k = boot();
    const objs = Array.from({ length: 5 }, () => newResv(k));
    const ctlSab = new SharedArrayBuffer(16);
    const ctl = new Int32Array(ctlSab);
    const countersSab = new SharedArrayBuffer(4 * objs.length);
    const holdersSab = new SharedArrayBuffer(4 * objs.length);
    const workers = 4;
    const iterations = 4000;
    const bumps = 50;
    const spawned = Array.from({ length: workers }, (_, i) =>
      spawn(k, ctlSab, {
        role: 'stress',
        pid: 1200 + i,
        id: i + 1,
        resvs: objs.map((o) => o.index),
        perIteration: 3,
        iterations,
        bumps,
        seed: 0x5eed + i * 7919,
        countersSab,
        holdersSab,
      }),
    );
    // Start them together, so their lock sets really overlap in time.
    await ctlUntil(ctl, CTL_STATE, (v) => v === workers);
    Atomics.store(ctl, CTL_GO, 1);
    Atomics.notify(ctl, CTL_GO);
    const results = (await withWatchdog(Promise.all(spawned.map((s) => s.reply)), spawned, 15_000)).map(
      (r) =>
        r.result as { chosen: number[]; edeadlk: number; slowOk: number; violations: number; unexpected: number[] },
    );
    const counters = new Int32Array(countersSab);
    const expected = objs.map((_, i) => results.reduce((n, r) => n + (r.chosen[i] ?? 0), 0) * bumps);
    expect([...counters]).toEqual(expected);
    expect(expected.reduce((a, b) => a + b, 0)).toBe(workers * iterations * 3 * bumps);
    for (const r of results) {
      expect(r.violations).toBe(0);
      expect(r.unexpected).toEqual([]);
      // Every death was followed by a successful lock_slow of the contended lock.
      expect(r.slowOk).toBe(r.edeadlk);
    }
    // The overlap was real: some contexts had to die and back off.
    expect(results.reduce((n, r) => n + r.edeadlk, 0)).toBeGreaterThan(0);
    expect(spawned.flatMap((s) => s.warnings)).toEqual([]);
    expect(k.warnings).toEqual([]);
    for (const o of objs) expect(dmaResvIsLocked(o)).toBe(false);
    for (const o of objs) dmaResvFini(o);
  });
});
