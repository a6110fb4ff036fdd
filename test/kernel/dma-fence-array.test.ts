// dma_fence_array: wait-all and wait-any, the error rule of kernel-semantics §11 C2 (an error reaches the
// array only through enabled signalling), ownership of the members, and waiters on another table view.
// Each behaviour has its negative twin; orderings are forced; nothing sleeps.
import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../src/kernel/assert.js';
import {
  type DmaFenceCb,
  dmaFenceAddCallback,
  dmaFenceContextAlloc,
  dmaFenceDriverName,
  dmaFenceEnableSwSignaling,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSetDeadline,
  dmaFenceSetError,
  dmaFenceSignal,
  dmaFenceTimelineName,
  dmaFenceWaitTimeout,
  dmaFenceWaitTimeoutAsync,
  type FenceHandle,
  type FenceMisuse,
  FenceTable,
  MAX_SCHEDULE_TIMEOUT,
  registerFenceOps,
  STATE_SIGNALED,
} from '../../src/kernel/dma-fence.js';
import {
  dmaFenceArrayCreate,
  dmaFenceArrayFirst,
  dmaFenceArrayNext,
  dmaFenceIsArray,
  dmaFenceIsContainer,
  dmaFenceMatchContext,
  toDmaFenceArray,
} from '../../src/kernel/dma-fence-array.js';
import { dmaFenceChainInit } from '../../src/kernel/dma-fence-chain.js';
import { EINVAL, EIO, ENODATA, ENOMEM, ETIME } from '../../src/kernel/errno.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

/** A leaf kind that records deadlines, to see set_deadline fan out. */
const deadlines = new Map<FenceHandle, number>();
const deadlineOps = registerFenceOps('test-array-deadline', {
  getDriverName: () => 'deadline',
  getTimelineName: () => 'deadline',
  setDeadline: (_t, f, ns) => {
    deadlines.set(f, ns);
  },
});

/** A leaf kind that completes only when enabled (its enable_signaling reports "already done"). */
const onEnableOps = registerFenceOps('test-array-done-on-enable', {
  getDriverName: () => 'on-enable',
  getTimelineName: () => 'on-enable',
  enableSignaling: () => false,
});

function table(capacity = 64): { t: FenceTable; misuse: FenceMisuse[] } {
  const misuse: FenceMisuse[] = [];
  let clock = 1000;
  const t = FenceTable.create(capacity, { onMisuse: (m) => misuse.push(m), nowNs: () => clock++ });
  return { t, misuse };
}

function ok(h: number): FenceHandle {
  if (h < 0) throw new Error(`expected a fence, got ${h}`);
  return h;
}

function mockFence(t: FenceTable, ops = mockOps): FenceHandle {
  return ok(dmaFenceInit(t, ops, dmaFenceContextAlloc(t, 1), 1));
}

/** Members with a reference kept by the test, plus an array owning references of its own. */
function arrayOf(t: FenceTable, n: number, signalOnAny = false): { members: FenceHandle[]; array: FenceHandle } {
  const members = Array.from({ length: n }, () => mockFence(t));
  const array = ok(
    dmaFenceArrayCreate(
      t,
      members.map((f) => dmaFenceGet(t, f)),
      dmaFenceContextAlloc(t, 1),
      1,
      signalOnAny,
    ),
  );
  return { members, array };
}

function putAll(t: FenceTable, fences: readonly FenceHandle[]): void {
  for (const f of fences) {
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
  }
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`index ${i} out of range`);
  return x;
}

describe('dma_fence_array: signalling', () => {
  it('wait-all signals with its last member, not before', () => {
    const { t, misuse } = table();
    const { members, array } = arrayOf(t, 3);
    dmaFenceSignal(t, at(members, 0));
    dmaFenceSignal(t, at(members, 2));
    expect(dmaFenceIsSignaled(t, array)).toBe(false);
    expect(toDmaFenceArray(t, array)?.numPending).toBe(1);
    dmaFenceSignal(t, at(members, 1));
    expect(t.stateOf(array)).toBe(STATE_SIGNALED); // by the member callbacks, nobody polled
    expect(dmaFenceGetStatus(t, array)).toBe(1);
    putAll(t, [...members, array]);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('wait-any signals with the first member to signal; the twin, wait-all, does not', () => {
    const { t } = table();
    const any = arrayOf(t, 3, true);
    const all = arrayOf(t, 3, false);
    dmaFenceSignal(t, at(any.members, 1));
    dmaFenceSignal(t, at(all.members, 1));
    expect(t.stateOf(any.array)).toBe(STATE_SIGNALED);
    expect(dmaFenceIsSignaled(t, all.array)).toBe(false);
    dmaFenceSignal(t, at(any.members, 0)); // later members change nothing
    expect(dmaFenceGetStatus(t, any.array)).toBe(1);
    putAll(t, [...any.members, any.array, ...all.members, all.array]);
    expect(t.liveCount).toBe(0);
  });

  it('a waiter blocked on the array wakes when the last member signals', async () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    const waiter = dmaFenceWaitTimeoutAsync(t, array, false, MAX_SCHEDULE_TIMEOUT);
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceWaitTimeout(t, array, false, 0)).toBe(0);
    dmaFenceSignal(t, at(members, 0));
    expect(await waiter).toBe(MAX_SCHEDULE_TIMEOUT);
    putAll(t, [...members, array]);
  });

  it('members already signalled at creation: the array is born signalled (with error 0)', () => {
    const { t } = table();
    const [a, b] = [mockFence(t), mockFence(t)];
    dmaFenceSetError(t, a, -EIO);
    dmaFenceSignal(t, a);
    dmaFenceSignal(t, b);
    const array = ok(dmaFenceArrayCreate(t, [a, b], dmaFenceContextAlloc(t, 1), 1, false));
    expect(t.stateOf(array)).toBe(STATE_SIGNALED);
    expect(dmaFenceGetStatus(t, array)).toBe(1);
    dmaFencePut(t, array);
    expect(t.liveCount).toBe(0);
  });

  it('wait-any with a signalled first member stops arming, like the kernel enable loop', () => {
    const { t } = table();
    const [a, b] = [mockFence(t), mockFence(t)];
    dmaFenceSignal(t, a);
    const array = ok(dmaFenceArrayCreate(t, [a, dmaFenceGet(t, b)], dmaFenceContextAlloc(t, 1), 1, true));
    expect(t.stateOf(array)).toBe(STATE_SIGNALED);
    expect(t.pendingCallbacks(b)).toBe(0);
    dmaFencePut(t, array);
    putAll(t, [b]);
    expect(t.liveCount).toBe(0);
  });

  it('members are enabled by the array, so one that completes on enable completes it', () => {
    const { t } = table();
    const a = mockFence(t, onEnableOps);
    const array = ok(dmaFenceArrayCreate(t, [a], dmaFenceContextAlloc(t, 1), 1, false));
    expect(t.stateOf(a)).toBe(STATE_SIGNALED);
    expect(t.stateOf(array)).toBe(STATE_SIGNALED);
    dmaFencePut(t, array);
    expect(t.liveCount).toBe(0);
  });

  it('an array as a chain node’s fence: the chain signals when the array does', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    const chain = ok(dmaFenceChainInit(t, null, dmaFenceGet(t, array), 1));
    dmaFenceSignal(t, at(members, 0));
    expect(dmaFenceIsSignaled(t, chain)).toBe(false);
    dmaFenceSignal(t, at(members, 1));
    expect(t.stateOf(chain)).toBe(STATE_SIGNALED);
    putAll(t, [...members, array, chain]);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_fence_array: errors (kernel-semantics §11 C2)', () => {
  it('enabled before the members signal: the first member error reaches the array', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 3);
    expect(dmaFenceEnableSwSignaling(t, array)).toBe(false);
    dmaFenceSetError(t, at(members, 2), -ETIME);
    dmaFenceSignal(t, at(members, 2));
    dmaFenceSetError(t, at(members, 0), -EIO);
    dmaFenceSignal(t, at(members, 0));
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceGetStatus(t, array)).toBe(-ETIME); // first to signal, not first by index
    putAll(t, [...members, array]);
  });

  it('negative twin: never enabled, the array completes with error 0 while the member keeps its error', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    dmaFenceSetError(t, at(members, 0), -EIO);
    dmaFenceSignal(t, at(members, 0));
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceGetStatus(t, array)).toBe(1);
    expect(dmaFenceGetStatus(t, at(members, 0))).toBe(-EIO);
    putAll(t, [...members, array]);
  });

  it('late twin: enabled only after the members signalled, the array already completed with error 0', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    dmaFenceSetError(t, at(members, 1), -EIO);
    dmaFenceSignal(t, at(members, 1));
    dmaFenceSignal(t, at(members, 0));
    expect(dmaFenceEnableSwSignaling(t, array)).toBe(true);
    expect(dmaFenceGetStatus(t, array)).toBe(1);
    putAll(t, [...members, array]);
  });

  it('enabled between the members: an earlier member error still counts (enable_signaling reads it)', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    dmaFenceSetError(t, at(members, 0), -ENODATA);
    dmaFenceSignal(t, at(members, 0));
    const cb: DmaFenceCb = { func: () => {} };
    expect(dmaFenceAddCallback(t, array, cb)).toBe(0); // a callback enables, as poll does
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceGetStatus(t, array)).toBe(-ENODATA);
    putAll(t, [...members, array]);
  });

  it('a poll between the last member callback and the deferred final signal still carries the error', () => {
    const { t } = table();
    const outer = arrayOf(t, 1); // its final signal opens the irq_work drain
    const { members, array } = arrayOf(t, 1);
    const m = at(members, 0);
    dmaFenceEnableSwSignaling(t, array);
    dmaFenceSetError(t, m, -EIO);
    const seen: { state: number; status: number }[] = [];
    // Queued on m after the array's own callback: it runs once num_pending is 0, before the drain
    // reaches the array's final signal.
    dmaFenceAddCallback(t, m, {
      func: () => seen.push({ state: t.stateOf(array), status: dmaFenceGetStatus(t, array) }),
    });
    dmaFenceAddCallback(t, outer.array, { func: () => dmaFenceSignal(t, m) });
    dmaFenceSignal(t, at(outer.members, 0));
    expect(seen).toHaveLength(1);
    expect(seen[0]?.state).not.toBe(STATE_SIGNALED); // the final signal was still queued
    expect(seen[0]?.status).toBe(-EIO); // ops.signaled completed it, with the error
    expect(dmaFenceGetStatus(t, array)).toBe(-EIO);
    putAll(t, [...outer.members, outer.array, ...members, array]);
    expect(t.liveCount).toBe(0);
  });

  it('wait-any, enabled: the error of the member that completes it', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2, true);
    dmaFenceEnableSwSignaling(t, array);
    dmaFenceSetError(t, at(members, 1), -EIO);
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceGetStatus(t, array)).toBe(-EIO);
    putAll(t, [...members, array]);
  });
});

describe('dma_fence_array: creation and accessors', () => {
  it('names, context, seqno, first/next and match_context', () => {
    const { t } = table();
    const ctx = dmaFenceContextAlloc(t, 1);
    const [a, b] = [ok(dmaFenceInit(t, mockOps, ctx, 1)), ok(dmaFenceInit(t, mockOps, ctx, 2))];
    const c = mockFence(t);
    const same = ok(dmaFenceArrayCreate(t, [dmaFenceGet(t, a), dmaFenceGet(t, b)], 77, 5, false));
    const mixed = ok(dmaFenceArrayCreate(t, [dmaFenceGet(t, a), dmaFenceGet(t, c)], 78, 6, false));
    expect(dmaFenceDriverName(t, same)).toBe('dma_fence_array');
    expect(dmaFenceTimelineName(t, same)).toBe('unbound');
    expect([t.contextOf(same), t.seqnoOf(same)]).toEqual([77, 5]);
    expect(dmaFenceIsArray(t, same)).toBe(true);
    expect(dmaFenceIsArray(t, a)).toBe(false);
    expect(dmaFenceIsContainer(t, same)).toBe(true);
    expect(dmaFenceIsContainer(t, a)).toBe(false);
    expect(dmaFenceArrayFirst(t, same)).toBe(a);
    expect(dmaFenceArrayNext(t, same, 1)).toBe(b);
    expect(dmaFenceArrayNext(t, same, 2)).toBeNull();
    expect(dmaFenceArrayFirst(t, a)).toBe(a); // a plain fence is its own first
    expect(dmaFenceArrayNext(t, a, 1)).toBeNull();
    expect(dmaFenceArrayFirst(t, null)).toBeNull();
    expect(toDmaFenceArray(t, a)).toBeNull();
    expect(dmaFenceMatchContext(t, same, ctx)).toBe(true);
    expect(dmaFenceMatchContext(t, mixed, ctx)).toBe(false);
    expect(dmaFenceMatchContext(t, a, ctx)).toBe(true);
    expect(dmaFenceMatchContext(t, c, ctx)).toBe(false);
    putAll(t, [a, b, c, same, mixed]);
    expect(t.liveCount).toBe(0);
  });

  it('no members is the kernel WARN: reported and refused with -EINVAL', () => {
    const { t, misuse } = table();
    expect(dmaFenceArrayCreate(t, [], 1, 1, false)).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-array-empty']);
    expect(t.liveCount).toBe(0);
  });

  it('a container member is the kernel WARN: reported, and the array is built anyway', () => {
    const { t, misuse } = table();
    const inner = arrayOf(t, 1);
    const outer = ok(dmaFenceArrayCreate(t, [dmaFenceGet(t, inner.array)], 9, 1, false));
    expect(misuse.map((m) => m.rule)).toEqual(['fence-array-contains-container']);
    dmaFenceSignal(t, at(inner.members, 0));
    expect(t.stateOf(outer)).toBe(STATE_SIGNALED);
    putAll(t, [...inner.members, inner.array, outer]);
    expect(t.liveCount).toBe(0);
  });

  it('a released member is refused with -EINVAL and the other references stay with the caller', () => {
    const { t, misuse } = table();
    const [a, dead] = [mockFence(t), mockFence(t)];
    dmaFencePut(t, dead);
    expect(dmaFenceArrayCreate(t, [a, dead], 1, 1, false)).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-stale-handle']);
    expect(t.refCountOf(a)).toBe(1);
    putAll(t, [a]);
    expect(t.liveCount).toBe(0);
  });

  it('a full table is -ENOMEM: no callback armed, the caller keeps every reference', () => {
    const { t } = table(3);
    const [a, b] = [mockFence(t), mockFence(t)];
    expect(dmaFenceArrayCreate(t, [a, b], 1, 1, false)).toBe(-ENOMEM);
    expect([t.refCountOf(a), t.refCountOf(b)]).toEqual([1, 1]);
    expect([t.pendingCallbacks(a), t.pendingCallbacks(b)]).toEqual([0, 0]);
    putAll(t, [a, b]);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_fence_array: ownership', () => {
  it('the array owns its members: the last put of the array frees them (signalled)', () => {
    const { t, misuse } = table();
    const members = [mockFence(t), mockFence(t), mockFence(t)];
    const array = ok(dmaFenceArrayCreate(t, members, dmaFenceContextAlloc(t, 1), 1, false));
    for (const f of members) dmaFenceSignal(t, f);
    expect(t.liveCount).toBe(4);
    dmaFencePut(t, array);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('released while its members are pending: callbacks removed, members freed without a WARN', () => {
    const { t, misuse } = table();
    const members = [mockFence(t), mockFence(t)];
    const array = ok(dmaFenceArrayCreate(t, members, dmaFenceContextAlloc(t, 1), 1, false));
    expect(members.map((f) => t.pendingCallbacks(f))).toEqual([1, 1]);
    dmaFencePut(t, array);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]); // no "released with pending signals"
  });

  it('negative twin: a member the caller still holds survives the array, with no callback left on it', () => {
    const { t } = table();
    const { members, array } = arrayOf(t, 2);
    dmaFencePut(t, array);
    expect(members.map((f) => t.refCountOf(f))).toEqual([1, 1]);
    expect(members.map((f) => t.pendingCallbacks(f))).toEqual([0, 0]);
    putAll(t, members);
    expect(t.liveCount).toBe(0);
  });

  it('a member callback that drops the last array reference, ahead of the array’s: no double put', () => {
    const { t, misuse } = table();
    const [a, b] = [mockFence(t), mockFence(t)];
    let array = -1;
    dmaFenceAddCallback(t, a, { func: () => dmaFencePut(t, array) }); // queued before the array's
    array = ok(dmaFenceArrayCreate(t, [dmaFenceGet(t, a), dmaFenceGet(t, b)], 1, 1, false));
    dmaFenceSignal(t, a);
    expect(t.isLive(array)).toBe(false);
    expect([t.refCountOf(a), t.refCountOf(b)]).toEqual([1, 1]);
    expect(t.pendingCallbacks(b)).toBe(0);
    putAll(t, [a, b]);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('set_deadline reaches every member', () => {
    const { t } = table();
    deadlines.clear();
    const members = [mockFence(t, deadlineOps), mockFence(t, deadlineOps)];
    const array = ok(dmaFenceArrayCreate(t, members.slice(), 1, 1, false));
    dmaFenceSetDeadline(t, array, 4242);
    expect(members.map((f) => deadlines.get(f))).toEqual([4242, 4242]);
    putAll(t, [array]);
  });
});

describe('dma_fence_array across table views (another thread)', () => {
  function second(t: FenceTable): { v: FenceTable; misuse: FenceMisuse[] } {
    const misuse: FenceMisuse[] = [];
    return { v: FenceTable.attach(t.sab, { onMisuse: (m) => misuse.push(m) }), misuse };
  }

  /** A promise that resolves once the owner's callbacks on `f` have run (ours is queued last). */
  function ownerRan(t: FenceTable, f: FenceHandle): Promise<void> {
    return new Promise((resolve) => {
      dmaFenceAddCallback(t, f, { func: () => resolve() });
    });
  }

  it('a waiter on another view (whose enable cannot arm anything) wakes when the owner completes it', async () => {
    const { t } = table();
    const { v, misuse } = second(t);
    const { members, array } = arrayOf(t, 2);
    expect(dmaFenceIsSignaled(v, array)).toBe(false);
    const waiter = dmaFenceWaitTimeoutAsync(v, array, false, MAX_SCHEDULE_TIMEOUT);
    dmaFenceSignal(t, at(members, 0));
    dmaFenceSignal(t, at(members, 1));
    expect(await waiter).toBe(MAX_SCHEDULE_TIMEOUT);
    expect(misuse).toEqual([]);
    putAll(t, [...members, array]);
  });

  it('enabled on another view: the error still reaches the array (ENABLE_SIGNAL is shared)', async () => {
    const { t } = table();
    const { v } = second(t);
    const { members, array } = arrayOf(t, 2);
    dmaFenceEnableSwSignaling(v, array);
    dmaFenceSetError(t, at(members, 0), -EIO);
    dmaFenceSignal(t, at(members, 0));
    dmaFenceSignal(t, at(members, 1));
    expect(dmaFenceGetStatus(v, array)).toBe(-EIO);
    putAll(t, [...members, array]);
  });

  it('lazy path, not enabled: members done elsewhere, the owner polls it complete with error 0', async () => {
    const { t } = table();
    const { v } = second(t);
    const { members, array } = arrayOf(t, 2);
    const ran = ownerRan(t, at(members, 1));
    dmaFenceSetError(v, at(members, 0), -EIO);
    dmaFenceSignal(v, at(members, 0));
    dmaFenceSignal(v, at(members, 1));
    expect(t.stateOf(array)).not.toBe(STATE_SIGNALED); // the owner's callbacks have not run yet
    expect(dmaFenceGetStatus(t, array)).toBe(1); // ops.signaled looked at the members: C2
    await ran;
    expect(dmaFenceGetStatus(t, array)).toBe(1);
    putAll(t, [...members, array]);
    expect(t.liveCount).toBe(0);
  });

  it('lazy path, enabled: it waits for the callbacks (num_pending), then carries the error', async () => {
    const { t } = table();
    const { v } = second(t);
    const { members, array } = arrayOf(t, 2);
    dmaFenceEnableSwSignaling(t, array);
    const ran = ownerRan(t, at(members, 1));
    dmaFenceSetError(v, at(members, 0), -EIO);
    dmaFenceSignal(v, at(members, 0));
    dmaFenceSignal(v, at(members, 1));
    expect(dmaFenceIsSignaled(t, array)).toBe(false); // enabled: only the count of callbacks counts
    await ran;
    expect(dmaFenceGetStatus(t, array)).toBe(-EIO);
    putAll(t, [...members, array]);
  });

  it('the last put on another view is reported; the owner drops the members when they signal', () => {
    const { t, misuse } = table();
    const { v, misuse: vMisuse } = second(t);
    const { members, array } = arrayOf(t, 2);
    dmaFencePut(v, array);
    expect(vMisuse.map((m) => m.rule)).toEqual(['fence-container-foreign-release']);
    expect(t.isLive(array)).toBe(false);
    expect(members.map((f) => t.refCountOf(f))).toEqual([2, 2]);
    dmaFenceSignal(t, at(members, 0)); // the orphan's first callback: it releases everything
    expect(members.map((f) => t.refCountOf(f))).toEqual([1, 1]);
    expect(t.pendingCallbacks(at(members, 1))).toBe(0);
    putAll(t, members);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('the kernel-side API on a view that does not own the array is a dmafarm bug', () => {
    const { t } = table();
    const { v } = second(t);
    const { members, array } = arrayOf(t, 1);
    expect(() => toDmaFenceArray(v, array)).toThrow(KernelBug);
    expect(() => dmaFenceArrayFirst(v, array)).toThrow(KernelBug);
    expect(dmaFenceIsArray(v, array)).toBe(true); // identity by ops works anywhere
    putAll(t, [...members, array]);
  });
});
