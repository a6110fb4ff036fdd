// dma_fence_unwrap and merge: the behaviours of drivers/dma-buf/st-dma-fence-unwrap.c, with exact orders
// where the kernel test only checks membership, plus dedup, wrap-around seqnos, timestamps of the private
// stub, -ENOMEM and reference counts. Nothing sleeps.
import { describe, expect, it } from 'vitest';
import {
  dmaFenceContextAlloc,
  dmaFenceEnableSwSignaling,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceGetStub,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSetError,
  dmaFenceSignal,
  dmaFenceSignalTimestamp,
  dmaFenceStubHandle,
  type FenceHandle,
  type FenceMisuse,
  FenceTable,
  STATE_SIGNALED,
} from '../../src/kernel/dma-fence.js';
import { dmaFenceArrayCreate, toDmaFenceArray } from '../../src/kernel/dma-fence-array.js';
import { dmaFenceChainInit } from '../../src/kernel/dma-fence-chain.js';
import {
  type DmaFenceUnwrap,
  dmaFenceDedupArray,
  dmaFenceUnwrapFirst,
  dmaFenceUnwrapForEach,
  dmaFenceUnwrapMerge,
  dmaFenceUnwrapNext,
  isContainerFence,
} from '../../src/kernel/dma-fence-unwrap.js';
import { EINVAL, EIO, ENOMEM } from '../../src/kernel/errno.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

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

/** `__mock_fence(context, seqno)`, optionally with a 64-bit seqno compare. */
function mockFenceOn(t: FenceTable, context: number, seqno: number, seqno64 = false): FenceHandle {
  return ok(dmaFenceInit(t, mockOps, context, seqno, { seqno64 }));
}

/** `mock_fence()`: a fresh context, seqno 1, enabled as the kernel test does. */
function mockFence(t: FenceTable): FenceHandle {
  const f = mockFenceOn(t, dmaFenceContextAlloc(t, 1), 1);
  dmaFenceEnableSwSignaling(t, f);
  return f;
}

/** `mock_array(n, ...)`: takes the references it is given. */
function mockArray(t: FenceTable, ...fences: FenceHandle[]): FenceHandle {
  return ok(dmaFenceArrayCreate(t, fences, dmaFenceContextAlloc(t, 1), 1, false));
}

/** `mock_chain(prev, fence)`: takes the references it is given, seqno 1. */
function mockChain(t: FenceTable, prev: FenceHandle | null, fence: FenceHandle): FenceHandle {
  return ok(dmaFenceChainInit(t, prev, fence, 1));
}

function leaves(t: FenceTable, head: FenceHandle): FenceHandle[] {
  return [...dmaFenceUnwrapForEach(t, head)];
}

function finish(t: FenceTable, ...fences: FenceHandle[]): void {
  for (const f of fences) {
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
  }
  expect(t.liveCount).toBe(0);
}

describe('dma_fence_unwrap (st-dma-fence-unwrap.c)', () => {
  it('sanitycheck: a chain of a one-member array is freed by one put', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    const array = mockArray(t, f);
    const chain = mockChain(t, null, array);
    dmaFencePut(t, chain);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('unwrap_array: the members, in order', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const array = mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2));
    expect(leaves(t, array)).toEqual([f1, f2]);
    finish(t, f1, f2, array);
  });

  it('unwrap_chain: the node’s fence first, then its prev', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const chain = mockChain(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2));
    expect(leaves(t, chain)).toEqual([f2, f1]);
    finish(t, f1, f2, chain);
  });

  it('unwrap_chain_array: one level into the chain, one into the array', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const array = mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2));
    const chain = mockChain(t, null, array);
    expect(leaves(t, chain)).toEqual([f1, f2]);
    finish(t, f1, f2, chain);
  });

  it('a chain of arrays, newest node first; a plain fence yields itself', () => {
    const { t } = table();
    const [f1, f2, f3] = [mockFence(t), mockFence(t), mockFence(t)];
    const c1 = ok(dmaFenceChainInit(t, null, mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2)), 1));
    const c2 = ok(dmaFenceChainInit(t, c1, dmaFenceGet(t, f3), 2));
    expect(leaves(t, c2)).toEqual([f3, f1, f2]);
    expect(leaves(t, f1)).toEqual([f1]);
    expect(t.refCountOf(c2)).toBe(1); // a full iteration leaves no reference behind
    finish(t, f1, f2, f3, c2);
  });

  it('the cursor API ends with null and has dropped its reference by then', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const chain = mockChain(t, null, mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2)));
    const cursor: DmaFenceUnwrap = { chain: null, array: null, index: 0 };
    expect(dmaFenceUnwrapFirst(t, chain, cursor)).toBe(f1);
    expect(t.refCountOf(chain)).toBe(2); // the cursor holds the node while we are inside it
    expect(dmaFenceUnwrapNext(t, cursor)).toBe(f2);
    expect(dmaFenceUnwrapNext(t, cursor)).toBeNull();
    expect(cursor.chain).toBeNull();
    expect(t.refCountOf(chain)).toBe(1);
    finish(t, f1, f2, chain);
  });

  it('leaving the loop early drops the cursor reference (negative twin of the full walk)', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const chain = mockChain(t, null, mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2)));
    for (const leaf of dmaFenceUnwrapForEach(t, chain)) {
      expect(leaf).toBe(f1);
      expect(t.refCountOf(chain)).toBe(2);
      break;
    }
    expect(t.refCountOf(chain)).toBe(1);
    finish(t, f1, f2, chain);
  });

  it('isContainerFence: arrays and chains, not leaves', () => {
    const { t } = table();
    const f = mockFence(t);
    const array = mockArray(t, dmaFenceGet(t, f));
    const chain = mockChain(t, null, dmaFenceGet(t, f));
    expect([isContainerFence(t, array), isContainerFence(t, chain), isContainerFence(t, f)]).toEqual([
      true,
      true,
      false,
    ]);
    finish(t, f, array, chain);
  });
});

describe('dma_fence_unwrap_merge (st-dma-fence-unwrap.c)', () => {
  it('unwrap_merge: two pending fences become a new wait-all array (new context, seqno 1)', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const f3 = ok(dmaFenceUnwrapMerge(t, f1, f2));
    const array = toDmaFenceArray(t, f3);
    expect(array?.fences).toEqual([f1, f2]);
    expect(array?.signalOnAny).toBe(false);
    expect(t.seqnoOf(f3)).toBe(1);
    expect([t.contextOf(f1), t.contextOf(f2)]).not.toContain(t.contextOf(f3));
    expect([t.refCountOf(f1), t.refCountOf(f2)]).toEqual([2, 2]); // inputs kept, the array holds its own
    dmaFenceSignal(t, f1);
    expect(dmaFenceIsSignaled(t, f3)).toBe(false);
    dmaFenceSignal(t, f2);
    expect(t.stateOf(f3)).toBe(STATE_SIGNALED);
    finish(t, f1, f2, f3);
  });

  it('unwrap_merge_duplicate: a fence merged with itself is that fence', () => {
    const { t } = table();
    const f1 = mockFence(t);
    const f2 = ok(dmaFenceUnwrapMerge(t, f1, f1));
    expect(f2).toBe(f1);
    expect(t.refCountOf(f1)).toBe(2);
    finish(t, f1, f2);
  });

  it('unwrap_merge_seqno: one timeline keeps only its latest fence; order is by context', () => {
    const { t } = table();
    const ctx0 = dmaFenceContextAlloc(t, 1);
    const ctx1 = dmaFenceContextAlloc(t, 1);
    const f1 = mockFenceOn(t, ctx1, 1);
    const f2 = mockFenceOn(t, ctx1, 2);
    const f3 = mockFenceOn(t, ctx0, 1);
    const f4 = ok(dmaFenceUnwrapMerge(t, f1, f2, f3));
    expect(leaves(t, f4)).toEqual([f3, f2]);
    expect(t.refCountOf(f1)).toBe(1); // the dropped duplicate's reference was put
    finish(t, f1, f2, f3, f4);
  });

  it('same timeline only: merging gives the latest fence itself, no array', () => {
    const { t } = table();
    const ctx = dmaFenceContextAlloc(t, 1);
    const [f1, f2] = [mockFenceOn(t, ctx, 1), mockFenceOn(t, ctx, 2)];
    const m = ok(dmaFenceUnwrapMerge(t, f2, f1));
    expect(m).toBe(f2);
    expect(t.liveCount).toBe(2);
    finish(t, f1, f2, m);
  });

  it('unwrap_merge_order: an array with a chain of the same fences reversed comes out in context order', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const a1 = mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2));
    const c1 = mockChain(t, null, dmaFenceGet(t, f1));
    const c2 = mockChain(t, c1, dmaFenceGet(t, f2));
    expect(leaves(t, c2)).toEqual([f2, f1]); // the chain really is reversed
    const a2 = ok(dmaFenceUnwrapMerge(t, a1, c2));
    expect(leaves(t, a2)).toEqual([f1, f2]);
    finish(t, f1, f2, a1, c2, a2);
  });

  it('unwrap_merge_complex: arrays merged, the reversed duplicate and the signalled stub dropped', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const f3 = ok(dmaFenceUnwrapMerge(t, f1, f2));
    const f4 = mockArray(t, dmaFenceGet(t, f2), dmaFenceGet(t, f1));
    const f5 = ok(dmaFenceUnwrapMerge(t, f3, f4, dmaFenceGetStub(t)));
    expect(leaves(t, f5)).toEqual([f1, f2]);
    expect(leaves(t, f5)).not.toContain(dmaFenceStubHandle(t));
    finish(t, f1, f2, f3, f4, f5);
  });

  it('unwrap_merge_complex_seqno: two arrays over two timelines keep the latest of each', () => {
    const { t } = table();
    const ctx0 = dmaFenceContextAlloc(t, 1);
    const ctx1 = dmaFenceContextAlloc(t, 1);
    const f1 = mockFenceOn(t, ctx0, 2);
    const f2 = mockFenceOn(t, ctx1, 1);
    const f3 = mockFenceOn(t, ctx0, 1);
    const f4 = mockFenceOn(t, ctx1, 2);
    const f5 = mockArray(t, dmaFenceGet(t, f1), dmaFenceGet(t, f2));
    const f6 = mockArray(t, dmaFenceGet(t, f3), dmaFenceGet(t, f4));
    const f7 = ok(dmaFenceUnwrapMerge(t, f5, f6));
    expect(leaves(t, f7)).toEqual([f1, f4]);
    finish(t, f1, f2, f3, f4, f5, f6, f7);
  });
});

describe('dma_fence_unwrap_merge: signalled leaves, wrap-around, errors', () => {
  it('a signalled leaf is dropped: one pending leaf left is returned itself', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    dmaFenceSignal(t, f2);
    const m = ok(dmaFenceUnwrapMerge(t, f1, f2));
    expect(m).toBe(f1);
    expect(t.refCountOf(f1)).toBe(2);
    finish(t, f1, f2, m);
  });

  it('nothing pending: a new private stub carrying the latest signal time (not the global stub)', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    dmaFenceSignalTimestamp(t, f1, 9_000);
    dmaFenceSignalTimestamp(t, f2, 5_000);
    const array = mockArray(t, dmaFenceGet(t, f2));
    const m = ok(dmaFenceUnwrapMerge(t, f1, array));
    expect(m).not.toBe(dmaFenceStubHandle(t));
    expect([t.contextOf(m), t.seqnoOf(m)]).toEqual([0, 0]);
    expect(dmaFenceGetStatus(t, m)).toBe(1);
    expect(t.timestampOf(m)).toBe(9_000);
    expect(t.refCountOf(array)).toBe(1); // the merge did not consume its inputs
    finish(t, f1, f2, array, m);
  });

  it('no inputs at all: a private stub at time 0', () => {
    const { t } = table();
    const m = ok(dmaFenceUnwrapMerge(t));
    expect(dmaFenceIsSignaled(t, m)).toBe(true);
    expect(t.timestampOf(m)).toBe(0);
    dmaFencePut(t, m);
    expect(t.liveCount).toBe(0);
  });

  it('seqnos wrap: on a 32-bit timeline seqno 1 is later than 0xfffffffe and is the one kept', () => {
    const { t } = table();
    const ctx = dmaFenceContextAlloc(t, 1);
    const [old, wrapped] = [mockFenceOn(t, ctx, 0xfffffffe), mockFenceOn(t, ctx, 1)];
    const other = mockFence(t);
    const m32 = ok(dmaFenceUnwrapMerge(t, old, wrapped, other));
    expect(leaves(t, m32)).toEqual(t.contextOf(other) < ctx ? [other, wrapped] : [wrapped, other]);
    // Negative twin: with a 64-bit compare, 2^32 + 1 beats 2 even though its low 32 bits are smaller.
    const ctx64 = dmaFenceContextAlloc(t, 1);
    const [big, small] = [mockFenceOn(t, ctx64, 2 ** 32 + 1, true), mockFenceOn(t, ctx64, 2, true)];
    const m64 = ok(dmaFenceUnwrapMerge(t, small, big));
    expect(m64).toBe(big);
    finish(t, old, wrapped, other, big, small, m32, m64);
  });

  it('dedup_array: sorts by context, keeps the latest per context, puts the rest', () => {
    const { t } = table();
    const [c1, c2] = [dmaFenceContextAlloc(t, 1), dmaFenceContextAlloc(t, 1)];
    const a = mockFenceOn(t, c2, 1);
    const b = mockFenceOn(t, c1, 1);
    const c = mockFenceOn(t, c2, 3);
    const d = mockFenceOn(t, c1, 2);
    const fences = [a, b, c, d].map((f) => dmaFenceGet(t, f));
    expect(dmaFenceDedupArray(t, fences)).toBe(2);
    expect(fences).toEqual([d, c]);
    expect([a, b, c, d].map((f) => t.refCountOf(f))).toEqual([1, 1, 2, 2]);
    for (const f of fences) dmaFencePut(t, f);
    finish(t, a, b, c, d);
  });

  it('merge does not enable or inherit errors by itself: an unpolled merged array reports 1 (C2)', () => {
    const { t } = table();
    const [f1, f2] = [mockFence(t), mockFence(t)];
    const m = ok(dmaFenceUnwrapMerge(t, f1, f2));
    dmaFenceSetError(t, f1, -EIO);
    dmaFenceSignal(t, f1);
    dmaFenceSignal(t, f2);
    expect(dmaFenceGetStatus(t, m)).toBe(1);
    expect(leaves(t, m).map((f) => dmaFenceGetStatus(t, f))).toEqual([-EIO, 1]);
    finish(t, f1, f2, m);
  });

  it('a full table is -ENOMEM and every reference taken is given back', () => {
    const { t } = table(3); // the stub and two fences
    const [f1, f2] = [mockFence(t), mockFence(t)];
    expect(dmaFenceUnwrapMerge(t, f1, f2)).toBe(-ENOMEM);
    expect([t.refCountOf(f1), t.refCountOf(f2)]).toEqual([1, 1]);
    dmaFenceSignal(t, f1);
    dmaFenceSignal(t, f2);
    expect(dmaFenceUnwrapMerge(t, f1, f2)).toBe(-ENOMEM); // no room for the private stub either
    expect([t.refCountOf(f1), t.refCountOf(f2)]).toEqual([1, 1]);
    finish(t, f1, f2);
  });

  it('a released input is -EINVAL, reported, and nothing is taken', () => {
    const { t, misuse } = table();
    const [f1, dead] = [mockFence(t), mockFence(t)];
    dmaFencePut(t, dead);
    expect(dmaFenceUnwrapMerge(t, f1, dead)).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-stale-handle']);
    expect(t.refCountOf(f1)).toBe(1);
    finish(t, f1);
  });
});
