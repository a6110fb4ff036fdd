/**
 * dma_fence_unwrap: the leaves of chains of arrays, and merging fences into one
 * (drivers/dma-buf/dma-fence-unwrap.c, include/linux/dma-fence-unwrap.h).
 *
 * Contract:
 * - Unwrapping descends one level into a chain node (its contained fence) and one into an array (its
 *   members), since containers may not nest deeper; a plain fence yields itself. Order: the chain from
 *   the newest node back, each node's array in member order.
 * - A leaf is borrowed, not referenced: it stays valid while the cursor holds the chain node it came from,
 *   i.e. until the next step. Walking a chain garbage-collects signalled predecessors, so a signalled leaf
 *   reached earlier may be freed later in the walk if nothing else holds it.
 * - `dmaFenceUnwrapMerge` never consumes its inputs' references and returns one new reference: a private
 *   stub if nothing is pending, the one pending leaf itself, or a new wait-all array (new context, seqno 1)
 *   of the latest pending leaf per context, sorted by context. -ENOMEM when the table is full.
 * - Like the containers, these run on the thread that owns the containers (the kernel thread). No lock is
 *   taken or needed here.
 */
import { assert } from './assert.js';
import {
  __dmaFenceIsLater,
  dmaFenceAllocatePrivateStub,
  dmaFenceContextAlloc,
  dmaFenceGet,
  dmaFenceIsSignaled,
  dmaFencePut,
  type FenceHandle,
  type FenceTable,
} from './dma-fence.js';
import { dmaFenceArrayCreate, dmaFenceArrayFirst, dmaFenceArrayNext, dmaFenceIsContainer } from './dma-fence-array.js';
import { dmaFenceChainContained, dmaFenceChainWalk } from './dma-fence-chain.js';
import { EINVAL, type Errno } from './errno.js';

/** `struct dma_fence_unwrap`: the cursor. `chain` holds a reference while the iteration runs. */
export interface DmaFenceUnwrap {
  chain: FenceHandle | null;
  array: FenceHandle | null;
  index: number;
}

/** `dma_fence_is_container`, for callers that only know about unwrapping (resv, sync_file). */
export function isContainerFence(t: FenceTable, f: FenceHandle): boolean {
  return dmaFenceIsContainer(t, f);
}

function unwrapArray(t: FenceTable, cursor: DmaFenceUnwrap): FenceHandle | null {
  cursor.array = cursor.chain === null ? null : dmaFenceChainContained(t, cursor.chain);
  cursor.index = 0;
  return dmaFenceArrayFirst(t, cursor.array);
}

/** `dma_fence_unwrap_first(head, cursor)`: the first leaf; the cursor takes a reference on `head`. */
export function dmaFenceUnwrapFirst(t: FenceTable, head: FenceHandle, cursor: DmaFenceUnwrap): FenceHandle | null {
  cursor.chain = dmaFenceGet(t, head);
  return unwrapArray(t, cursor);
}

/** `dma_fence_unwrap_next(cursor)`: the next leaf, or null at the end (the cursor's reference is gone). */
export function dmaFenceUnwrapNext(t: FenceTable, cursor: DmaFenceUnwrap): FenceHandle | null {
  ++cursor.index;
  const leaf = dmaFenceArrayNext(t, cursor.array, cursor.index);
  if (leaf !== null) return leaf;
  cursor.chain = cursor.chain === null ? null : dmaFenceChainWalk(t, cursor.chain);
  return unwrapArray(t, cursor);
}

/**
 * `dma_fence_unwrap_for_each(fence, &cursor, head)` as a generator. Leaving the loop early (break,
 * return, throw) drops the cursor's reference, which the kernel macro leaves to the caller.
 */
export function* dmaFenceUnwrapForEach(t: FenceTable, head: FenceHandle): Generator<FenceHandle, void, undefined> {
  const cursor: DmaFenceUnwrap = { chain: null, array: null, index: 0 };
  try {
    // Bounded by the leaves: each step either advances within an array or moves one node back.
    for (let f = dmaFenceUnwrapFirst(t, head, cursor); f !== null; f = dmaFenceUnwrapNext(t, cursor)) yield f;
  } finally {
    if (cursor.chain !== null) dmaFencePut(t, cursor.chain);
    cursor.chain = null;
  }
}

/** `fence_cmp`: context ascending, then the later seqno first. */
function fenceCmp(t: FenceTable, a: FenceHandle, b: FenceHandle): number {
  const ca = t.contextOf(a);
  const cb = t.contextOf(b);
  if (ca !== cb) return ca < cb ? -1 : 1;
  if (__dmaFenceIsLater(t.flagsOf(b), t.seqnoOf(b), t.seqnoOf(a))) return 1;
  if (__dmaFenceIsLater(t.flagsOf(a), t.seqnoOf(a), t.seqnoOf(b))) return -1;
  return 0;
}

/**
 * `dma_fence_dedup_array(fences, num)`: sort by context (later seqno first within one), keep the latest
 * fence per context and put the references on the others. `fences` is rewritten in place and truncated;
 * returns the new count.
 */
export function dmaFenceDedupArray(t: FenceTable, fences: FenceHandle[]): number {
  fences.sort((a, b) => fenceCmp(t, a, b));
  let j = 0;
  for (let i = 1; i < fences.length; i++) {
    const f = fences[i] ?? -1;
    if (t.contextOf(f) === t.contextOf(fences[j] ?? -1)) dmaFencePut(t, f);
    else fences[++j] = f;
  }
  fences.length = fences.length === 0 ? 0 : j + 1;
  return fences.length;
}

/** Pass over every leaf: references on the pending ones (when `out` is given), the latest signal time. */
function collectPending(
  t: FenceTable,
  fences: readonly FenceHandle[],
  out: FenceHandle[] | null,
): { count: number; last: FenceHandle | null; timestampNs: number } {
  let count = 0;
  let last: FenceHandle | null = null;
  let timestampNs = 0;
  for (const head of fences) {
    for (const leaf of dmaFenceUnwrapForEach(t, head)) {
      if (dmaFenceIsSignaled(t, leaf)) {
        timestampNs = Math.max(timestampNs, t.timestampOf(leaf));
        continue;
      }
      count++;
      if (out !== null) {
        out.push(dmaFenceGet(t, leaf));
      } else {
        if (last !== null) dmaFencePut(t, last);
        last = dmaFenceGet(t, leaf);
      }
    }
  }
  return { count, last, timestampNs };
}

/**
 * `dma_fence_unwrap_merge(f1, f2, ...)`: one fence that signals when every input has. Pending leaves are
 * counted first; none → a private stub carrying the latest signal time; one → that leaf. Otherwise they
 * are collected again (some may have signalled meanwhile), deduplicated per context and wrapped in an
 * array. Returns a new reference, -ENOMEM when the table is full, -EINVAL (reported) for a dead input.
 */
export function dmaFenceUnwrapMerge(t: FenceTable, ...fences: FenceHandle[]): FenceHandle | Errno {
  for (const f of fences) if (!t.check(f, 'dma_fence_unwrap_merge')) return -EINVAL;
  const first = collectPending(t, fences, null);
  if (first.count === 0) return dmaFenceAllocatePrivateStub(t, first.timestampNs);
  if (first.count === 1) {
    assert(first.last !== null, 'merge: one pending leaf but no reference on it');
    return first.last;
  }
  if (first.last !== null) dmaFencePut(t, first.last);

  const array: FenceHandle[] = [];
  const second = collectPending(t, fences, array);
  assert(array.length === second.count, 'merge: pending leaves and references disagree');
  const timestampNs = Math.max(first.timestampNs, second.timestampNs);
  if (array.length === 0) return dmaFenceAllocatePrivateStub(t, timestampNs);
  const count = dmaFenceDedupArray(t, array);
  if (count === 1) {
    const only = array[0];
    assert(only !== undefined, 'merge: dedup kept one fence but the array is empty');
    return only;
  }
  const result = dmaFenceArrayCreate(t, array, dmaFenceContextAlloc(t, 1), 1, false);
  if (result < 0) for (const f of array) dmaFencePut(t, f);
  return result;
}
