/**
 * dma_fence_array: several fences waited on as one (drivers/dma-buf/dma-fence-array.c,
 * include/linux/dma-fence-array.h).
 *
 * Contract:
 * - An array is an ordinary fence slot (ops 'dma_fence_array', names "dma_fence_array"/"unbound", 32-bit
 *   seqno compare), so any thread can wait on it through the table. Its members live in JavaScript memory
 *   of the thread that created it, the owner, in a registry per FenceTable view. Containers are
 *   kernel-thread objects: the functions exported here must run on the owner (another thread's array is a
 *   KernelBug); the core may call the ops anywhere, and off the owner they answer conservatively.
 * - It signals once all members have (or, with `signalOnAny`, once one has). Creation takes ownership of
 *   the member references; on an error return the caller keeps them. Release drops them.
 * - Errors (kernel-semantics §6.7, §11 C2): the first member error, in the order the members signal,
 *   reaches the array only if signalling was enabled on the array (ENABLE_SIGNAL, set by any thread)
 *   before the array completed. If it completed unenabled, or is found complete through `ops.signaled`
 *   (the lazy path, as FILE_INFO on a never-polled sync_file does), it signals with error 0.
 * - How it completes. The kernel arms its member callbacks only when signalling is enabled, and the lazy
 *   path answers until then. We arm them at creation, without setting the array's ENABLE_SIGNAL, so that a
 *   waiter on another thread (whose enable cannot reach this thread's memory) is still woken; the members
 *   are therefore enabled at creation. The one visible difference: an array that completes before anyone
 *   enabled it signals then, with error 0, where the kernel would still propagate the error if the first
 *   look at it were an enable rather than a poll of `signaled`. That is the rule C2 states.
 * - The kernel's final signal runs from irq_work, after the last member's callback. We signal from a
 *   queue drained by the outermost callback on this thread, before the member's dma_fence_signal returns:
 *   synchronous for the caller, with a flat stack.
 * - Misuse (the kernel's WARNs): no members is reported and refused (-EINVAL); a container member is
 *   reported and accepted, as the kernel does (the caller should have flattened it).
 * - Locks: `enableSignaling` runs under the array's lock and asserts it; the final signal takes the lock
 *   so that reading ENABLE_SIGNAL, storing the error and signalling are one step against an enable.
 */
import { assert } from './assert.js';
import {
  DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
  type DmaFenceCb,
  dmaFenceAddCallback,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceRemoveCallback,
  dmaFenceSetDeadline,
  dmaFenceSetError,
  dmaFenceSignalLocked,
  type FenceHandle,
  type FenceTable,
  registerFenceOps,
  STATE_SIGNALED,
} from './dma-fence.js';
import { dmaFenceChainOps } from './dma-fence-chain.js';
import { EINVAL, type Errno } from './errno.js';

/** `struct dma_fence_array` as seen by callers. */
export interface DmaFenceArray {
  readonly base: FenceHandle;
  readonly fences: readonly FenceHandle[];
  readonly signalOnAny: boolean;
  /** The kernel's num_pending: members still awaited (≤ 0 once complete). */
  readonly numPending: number;
}

interface ArrayState extends DmaFenceArray {
  numPending: number;
  /** The first non-zero member error seen by our callbacks (the kernel's PENDING_ERROR cmpxchg). */
  firstError: number;
  /** Our callback on each member while it is armed, else null. */
  readonly armed: (DmaFenceCb | null)[];
}

interface ArrayRegistry {
  readonly arrays: Map<FenceHandle, ArrayState>;
  /** irq_work: arrays whose last awaited member has signalled. */
  readonly work: FenceHandle[];
  draining: boolean;
}

const registries = new WeakMap<FenceTable, ArrayRegistry>();

function registryOf(t: FenceTable): ArrayRegistry {
  let reg = registries.get(t);
  if (reg === undefined) {
    reg = { arrays: new Map(), work: [], draining: false };
    registries.set(t, reg);
  }
  return reg;
}

export const dmaFenceArrayOps = registerFenceOps('dma_fence_array', {
  getDriverName: () => 'dma_fence_array',
  getTimelineName: () => 'unbound',
  enableSignaling: arrayEnableSignaling,
  signaled: arraySignaled,
  release: arrayRelease,
  setDeadline: arraySetDeadline,
});

/** `dma_fence_is_array`: by ops identity, valid on every thread. */
export function dmaFenceIsArray(t: FenceTable, f: FenceHandle): boolean {
  return t.isLive(f) && t.opsIdOf(f) === dmaFenceArrayOps;
}

/** `dma_fence_is_container`: an array or a chain. */
export function dmaFenceIsContainer(t: FenceTable, f: FenceHandle): boolean {
  return t.isLive(f) && (t.opsIdOf(f) === dmaFenceArrayOps || t.opsIdOf(f) === dmaFenceChainOps);
}

/** `to_dma_fence_array`: the array, or null for null, a stale handle or any other kind of fence. */
export function toDmaFenceArray(t: FenceTable, f: FenceHandle | null): DmaFenceArray | null {
  return f === null ? null : (stateOf(t, f) ?? null);
}

function stateOf(t: FenceTable, f: FenceHandle): ArrayState | undefined {
  if (!dmaFenceIsArray(t, f)) return undefined;
  const state = registries.get(t)?.arrays.get(f);
  assert(state !== undefined, `dma_fence_array ${f} used off the thread that created it`);
  return state;
}

/**
 * `dma_fence_array_create(num, fences, context, seqno, signal_on_any)`: a new array owning the member
 * references, -ENOMEM when the table is full, -EINVAL (reported) with no members or a dead handle.
 */
export function dmaFenceArrayCreate(
  t: FenceTable,
  fences: readonly FenceHandle[],
  context: number,
  seqno: number,
  signalOnAny: boolean,
): FenceHandle | Errno {
  if (fences.length === 0) {
    t.onMisuse({ rule: 'fence-array-empty', message: 'dma_fence_array_create with no fences', fence: -1 });
    return -EINVAL;
  }
  for (const f of fences) if (!t.check(f, 'dma_fence_array_create')) return -EINVAL;
  const base = dmaFenceInit(t, dmaFenceArrayOps, context, seqno);
  if (base < 0) return base;
  for (const f of fences) {
    if (!dmaFenceIsContainer(t, f)) continue;
    t.onMisuse({
      rule: 'fence-array-contains-container',
      message: `dma_fence_array_create: member ${f} is itself a container; flatten it first`,
      fence: base,
    });
  }
  const reg = registryOf(t);
  const state: ArrayState = {
    base,
    fences: Object.freeze(fences.slice()),
    signalOnAny,
    numPending: signalOnAny ? 1 : fences.length,
    firstError: 0,
    armed: fences.map(() => null),
  };
  reg.arrays.set(base, state);
  arrayArm(t, reg, state);
  return base;
}

/** The kernel's enable_signaling loop, run at creation; like it, it stops once the array is complete. */
function arrayArm(t: FenceTable, reg: ArrayRegistry, state: ArrayState): void {
  for (let i = 0; i < state.fences.length && state.numPending > 0; i++) {
    const member = state.fences[i] ?? -1;
    const cb: DmaFenceCb = { func: () => arrayCallback(t, reg, state, i) };
    state.armed[i] = cb;
    if (t.stateOf(member) !== STATE_SIGNALED && dmaFenceAddCallback(t, member, cb) === 0) continue;
    state.armed[i] = null;
    arrayMemberDone(t, reg, state, member);
  }
}

/** `dma_fence_array_cb_func`. */
function arrayCallback(t: FenceTable, reg: ArrayRegistry, state: ArrayState, i: number): void {
  if (reg.arrays.get(state.base) !== state || state.armed[i] === null) return; // released meanwhile
  state.armed[i] = null;
  if (!t.isLive(state.base)) {
    // The last reference went on a thread that cannot see the members: finish the release here.
    reg.arrays.delete(state.base);
    arrayFreeState(t, state);
    return;
  }
  arrayMemberDone(t, reg, state, state.fences[i] ?? -1);
}

function arrayMemberDone(t: FenceTable, reg: ArrayRegistry, state: ArrayState, member: FenceHandle): void {
  assert(t.stateOf(member) === STATE_SIGNALED, `array ${state.base}: member ${member} counted unsignalled`);
  const err = t.errorOf(member);
  if (err !== 0 && state.firstError === 0) state.firstError = err;
  state.numPending--;
  if (state.numPending === 0) irqWorkQueue(t, reg, state.base);
}

function irqWorkQueue(t: FenceTable, reg: ArrayRegistry, base: FenceHandle): void {
  // An array is queued once, when num_pending reaches 0.
  assert(reg.work.length < t.capacity, 'dma_fence_array irq_work queue overflow');
  reg.work.push(base);
  if (reg.draining) return;
  reg.draining = true;
  try {
    for (let i = 0; i < reg.work.length; i++) arrayFinish(t, reg, reg.work[i] ?? -1);
  } finally {
    reg.work.length = 0;
    reg.draining = false;
  }
}

/** `irq_dma_fence_array_work`. */
function arrayFinish(t: FenceTable, reg: ArrayRegistry, base: FenceHandle): void {
  const state = reg.arrays.get(base);
  // Already signalled (found complete through ops.signaled): never lock it, its lock may be ours.
  if (state === undefined || t.stateOf(base) === STATE_SIGNALED) return;
  t.lock(base);
  try {
    arraySignalLocked(t, state);
  } finally {
    t.unlock(base);
  }
}

function arraySignalLocked(t: FenceTable, state: ArrayState): void {
  t.assertLocked(state.base);
  assert(state.numPending <= 0, `array ${state.base}: signalled with ${state.numPending} members pending`);
  if (t.stateOf(state.base) === STATE_SIGNALED) return;
  const enabled = (t.flagsOf(state.base) & (1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT)) !== 0;
  if (enabled && state.firstError !== 0) t.setErrorLocked(state.base, state.firstError);
  dmaFenceSignalLocked(t, state.base);
}

/** Enabling has nothing to arm: the member callbacks have been armed since creation (see the contract). */
function arrayEnableSignaling(t: FenceTable, f: FenceHandle): boolean {
  t.assertLocked(f);
  assert(t.opsIdOf(f) === dmaFenceArrayOps, `fence ${f} is not an array`);
  return true;
}

/** `dma_fence_array_signaled`. */
function arraySignaled(t: FenceTable, f: FenceHandle): boolean {
  const state = registries.get(t)?.arrays.get(f);
  if (state === undefined) return false; // not ours: the owner completes it
  if (t.flagsOf(f) & (1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT)) {
    if (state.numPending > 0) return false;
    // Complete and enabled: the core signals as soon as we return, so the error must be in place.
    if (state.firstError !== 0 && t.stateOf(f) !== STATE_SIGNALED) dmaFenceSetError(t, f, state.firstError);
    return true;
  }
  // Not enabled: look at the members themselves; the error stays 0 (C2).
  let pending = state.signalOnAny ? 1 : state.fences.length;
  for (const member of state.fences) if (dmaFenceIsSignaled(t, member) && --pending === 0) return true;
  return false;
}

function arraySetDeadline(t: FenceTable, f: FenceHandle, deadlineNs: number): void {
  const state = registries.get(t)?.arrays.get(f);
  if (state === undefined) return;
  for (const member of state.fences) dmaFenceSetDeadline(t, member, deadlineNs);
}

function arrayRelease(t: FenceTable, f: FenceHandle): void {
  const reg = registries.get(t);
  const state = reg?.arrays.get(f);
  if (reg === undefined || state === undefined) {
    t.onMisuse({
      rule: 'fence-container-foreign-release',
      message: `dma_fence_array ${f} released off the thread that created it: its members are dropped when the owner next sees one signal`,
      fence: f,
    });
    return;
  }
  reg.arrays.delete(f);
  arrayFreeState(t, state);
}

/** `dma_fence_array_release` without the fence itself: disarm, then drop every member reference. */
function arrayFreeState(t: FenceTable, state: ArrayState): void {
  state.fences.forEach((member, i) => {
    const cb = state.armed[i];
    if (cb === null || cb === undefined) return;
    state.armed[i] = null;
    // A signalled member's callbacks are running or have run (perhaps under a lock this thread holds);
    // ours then finds the array gone and does nothing.
    if (t.stateOf(member) !== STATE_SIGNALED) {
      const removed = dmaFenceRemoveCallback(t, member, cb);
      assert(removed, `array ${state.base}: armed callback missing on ${member}`);
    }
  });
  for (const member of state.fences) dmaFencePut(t, member);
}

/** `dma_fence_match_context`: every member (or the fence itself) is on `context`. */
export function dmaFenceMatchContext(t: FenceTable, f: FenceHandle, context: number): boolean {
  const array = toDmaFenceArray(t, f);
  if (array === null) return t.contextOf(f) === context;
  return array.fences.every((member) => t.contextOf(member) === context);
}

/** `dma_fence_array_first(head)`: the first member, `head` itself for any other fence, null for null. */
export function dmaFenceArrayFirst(t: FenceTable, head: FenceHandle | null): FenceHandle | null {
  if (head === null) return null;
  const array = toDmaFenceArray(t, head);
  if (array === null) return head;
  return array.fences[0] ?? null;
}

/** `dma_fence_array_next(head, index)`: the member at `index`, or null past the end or for a non-array. */
export function dmaFenceArrayNext(t: FenceTable, head: FenceHandle | null, index: number): FenceHandle | null {
  const array = toDmaFenceArray(t, head);
  if (array === null || index >= array.fences.length) return null;
  return array.fences[index] ?? null;
}
