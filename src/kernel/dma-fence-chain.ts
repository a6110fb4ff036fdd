/**
 * dma_fence_chain: one point of a timeline (drivers/dma-buf/dma-fence-chain.c, include/linux/dma-fence-chain.h).
 *
 * Contract:
 * - A chain node is an ordinary fence slot (ops 'dma_fence_chain', names "dma_fence_chain"/"unbound",
 *   64-bit seqno compare), so any thread can wait on it through the table. Its metadata (prev, fence,
 *   prev_seqno) lives in JavaScript memory of the thread that created it, the owner, in a registry per
 *   FenceTable view. Containers are kernel-thread objects: every function exported here must run on the
 *   owner; calling one with another thread's node is a dmafarm bug (KernelBug). The core may call the ops
 *   on any thread: off the owner they find no node and answer conservatively (not signalled yet / will
 *   signal), because the owner's callbacks complete the node.
 * - A node signals exactly when its own fence and every earlier node's fence have signalled
 *   (signal_backward); `dmaFenceChainWalk` garbage-collects signalled predecessors as the kernel's
 *   cmpxchg loop does. Chains never propagate an error: a node signals with error 0.
 * - How it completes. The kernel arms one callback only once signalling is enabled, on the first
 *   unsignalled contained fence, and re-arms from irq_work. We arm from creation instead, so that a
 *   waiter on another thread (whose enable cannot reach this thread's memory) is still woken. Each node
 *   keeps at most one callback, on the first unsignalled of [its own fence, its prev]; because prev
 *   signals only once everything before it has, this is the same condition as the kernel's, and the work
 *   is O(1) per node in any signalling order (the kernel's per-contained-fence re-arming is O(n²) when
 *   every node is enabled and fences signal backwards). Arming uses dma_fence_add_callback, so the
 *   contained fence is enabled at creation rather than when the chain is enabled.
 * - irq_work: a callback only queues the node; the queue is drained by the outermost callback on this
 *   thread, before the signaller's dma_fence_signal returns. Signalling therefore stays synchronous for
 *   the caller while the stack stays flat however long a chain cascades (the kernel gets the same effect
 *   from irq_work, asynchronously).
 * - Ownership: `dmaFenceChainInit` takes the caller's references on `prev` and `fence` on success (on an
 *   error return the caller keeps them); release drops them, unlinking predecessors it holds the last
 *   reference to one by one, so releasing a long chain never recurses. An armed callback holds its own
 *   reference on its target, and whoever signals a fence holds a reference to it (as in the kernel).
 * - Locks: no fence lock guards the metadata (the kernel uses RCU and cmpxchg); only the owner touches it.
 *   `enableSignaling` is called by the core with the node's lock held and asserts it. Before locking a
 *   fence we check it is unsignalled: the only fence locks this thread can hold while our code runs belong
 *   to signalled fences whose callbacks are running.
 */
import { assert } from './assert.js';
import {
  __dmaFenceIsLater,
  type DmaFenceCb,
  dmaFenceAddCallback,
  dmaFenceContextAlloc,
  dmaFenceGet,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceRemoveCallback,
  dmaFenceSetDeadline,
  dmaFenceSignal,
  type FenceHandle,
  type FenceTable,
  registerFenceOps,
  STATE_SIGNALED,
} from './dma-fence.js';
import { EINVAL, type Errno } from './errno.js';

/** `struct dma_fence_chain` as seen by callers. */
export interface DmaFenceChain {
  readonly base: FenceHandle;
  /** The previous node (or any fence), null at the start or once everything before has signalled. */
  readonly prev: FenceHandle | null;
  /** prev's seqno at init, kept through garbage collection; 0 when the node started a new context. */
  readonly prevSeqno: number;
  /** The contained fence. */
  readonly fence: FenceHandle;
}

interface ChainNode extends DmaFenceChain {
  prev: FenceHandle | null;
  /** The fence our one callback is armed on (we hold a reference on it), or null. */
  armedOn: FenceHandle | null;
  readonly cb: DmaFenceCb;
}

interface ChainRegistry {
  readonly nodes: Map<FenceHandle, ChainNode>;
  /** irq_work: nodes to re-examine, drained by the outermost callback. */
  readonly work: FenceHandle[];
  draining: boolean;
}

const registries = new WeakMap<FenceTable, ChainRegistry>();

function registryOf(t: FenceTable): ChainRegistry {
  let reg = registries.get(t);
  if (reg === undefined) {
    reg = { nodes: new Map(), work: [], draining: false };
    registries.set(t, reg);
  }
  return reg;
}

export const dmaFenceChainOps = registerFenceOps('dma_fence_chain', {
  getDriverName: () => 'dma_fence_chain',
  getTimelineName: () => 'unbound',
  enableSignaling: chainEnableSignaling,
  signaled: chainSignaled,
  release: chainRelease,
  setDeadline: chainSetDeadline,
});

/** `dma_fence_is_chain`: by ops identity, valid on every thread. */
export function dmaFenceIsChain(t: FenceTable, f: FenceHandle): boolean {
  return t.isLive(f) && t.opsIdOf(f) === dmaFenceChainOps;
}

/** `to_dma_fence_chain`: the node, or null for null, a stale handle or any other kind of fence. */
export function toDmaFenceChain(t: FenceTable, f: FenceHandle | null): DmaFenceChain | null {
  return f === null ? null : (nodeOf(t, f) ?? null);
}

function nodeOf(t: FenceTable, f: FenceHandle): ChainNode | undefined {
  if (!dmaFenceIsChain(t, f)) return undefined;
  const node = registries.get(t)?.nodes.get(f);
  assert(node !== undefined, `dma_fence_chain ${f} used off the thread that created it`);
  return node;
}

/** `dma_fence_chain_contained`: a node's fence, or `f` itself for any other fence. */
export function dmaFenceChainContained(t: FenceTable, f: FenceHandle): FenceHandle {
  return nodeOf(t, f)?.fence ?? f;
}

/**
 * `dma_fence_chain_init(chain, prev, fence, seqno)`: a new node. It reuses prev's context when prev is a
 * chain and `seqno` is later (64-bit compare); otherwise it takes a new context and, after a chain, the
 * larger of the two seqnos. A chain as `fence` is the kernel's WARN: reported, and the node is built
 * anyway. Returns the node (one reference), -ENOMEM when the table is full, -EINVAL for a dead handle.
 */
export function dmaFenceChainInit(
  t: FenceTable,
  prev: FenceHandle | null,
  fence: FenceHandle,
  seqno: number,
): FenceHandle | Errno {
  if (!t.check(fence, 'dma_fence_chain_init')) return -EINVAL;
  if (prev !== null && !t.check(prev, 'dma_fence_chain_init')) return -EINVAL;
  assert(Number.isSafeInteger(seqno) && seqno >= 0, `dma_fence_chain_init: seqno ${seqno}`);
  const prevChain = toDmaFenceChain(t, prev);
  let context: number;
  let prevSeqno = 0;
  if (prev !== null && prevChain !== null && __dmaFenceIsLater(t.flagsOf(prev), seqno, t.seqnoOf(prev))) {
    context = t.contextOf(prev);
    prevSeqno = t.seqnoOf(prev);
  } else {
    context = dmaFenceContextAlloc(t, 1);
    // Make sure the node always has a valid sequence number.
    if (prev !== null && prevChain !== null) seqno = Math.max(t.seqnoOf(prev), seqno);
  }
  const base = dmaFenceInit(t, dmaFenceChainOps, context, seqno, { seqno64: true });
  if (base < 0) return base;
  if (dmaFenceIsChain(t, fence)) {
    t.onMisuse({
      rule: 'fence-chain-contains-chain',
      message: `dma_fence_chain_init: fence ${fence} is itself a chain; chains link only through prev`,
      fence: base,
    });
  }
  const reg = registryOf(t);
  const node: ChainNode = {
    base,
    prev,
    prevSeqno,
    fence,
    armedOn: null,
    cb: { func: (signalled) => chainCallback(t, reg, node, signalled) },
  };
  reg.nodes.set(base, node);
  irqWorkQueue(t, reg, base);
  return base;
}

/** `dma_fence_chain_cb`: drop the armed reference and let irq_work look at the node again. */
function chainCallback(t: FenceTable, reg: ChainRegistry, node: ChainNode, signalled: FenceHandle): void {
  if (node.armedOn !== signalled) return; // disarmed by a release while this callback was already due
  node.armedOn = null;
  dmaFencePut(t, signalled);
  irqWorkQueue(t, reg, node.base);
}

function irqWorkQueue(t: FenceTable, reg: ChainRegistry, base: FenceHandle): void {
  // A node is queued at init and at most once per callback (own fence, then prev): 3 per node per drain.
  assert(reg.work.length < 3 * t.capacity, 'dma_fence_chain irq_work queue overflow');
  reg.work.push(base);
  if (reg.draining) return;
  reg.draining = true;
  try {
    for (let i = 0; i < reg.work.length; i++) chainAdvance(t, reg, reg.work[i] ?? -1);
  } finally {
    reg.work.length = 0;
    reg.draining = false;
  }
}

/**
 * `dma_fence_chain_irq_work` + `dma_fence_chain_enable_signaling`: arm on the first unsignalled of the
 * node's own fence and its prev, or signal the node when both are done.
 */
function chainAdvance(t: FenceTable, reg: ChainRegistry, base: FenceHandle): void {
  const node = reg.nodes.get(base);
  if (node === undefined || node.armedOn !== null) return;
  if (!t.isLive(base)) {
    // The last reference went on a thread that cannot see this node: finish the release here.
    reg.nodes.delete(base);
    chainFreeNode(t, reg, node);
    return;
  }
  if (t.stateOf(base) === STATE_SIGNALED) return; // found complete by ops.signaled, or signalled directly
  if (chainArm(t, node, node.fence)) return;
  if (node.prev !== null && chainArm(t, node, node.prev)) return;
  dmaFenceSignal(t, base);
}

/** True when the callback is now armed on `target`; false when `target` has already signalled. */
function chainArm(t: FenceTable, node: ChainNode, target: FenceHandle): boolean {
  assert(node.armedOn === null, `chain ${node.base}: armed twice`);
  if (t.stateOf(target) === STATE_SIGNALED) return false;
  node.armedOn = dmaFenceGet(t, target);
  if (dmaFenceAddCallback(t, target, node.cb) === 0) return true;
  // -ENOENT: enabling signalled it. Our callback was not queued, so the reference is still ours.
  node.armedOn = null;
  dmaFencePut(t, target);
  return false;
}

function chainDisarm(t: FenceTable, node: ChainNode): void {
  const target = node.armedOn;
  if (target === null) return;
  node.armedOn = null;
  // A signalled target's callbacks are running or have run (perhaps under a lock this thread holds):
  // our callback then sees armedOn cleared and does nothing.
  if (t.stateOf(target) !== STATE_SIGNALED) {
    const removed = dmaFenceRemoveCallback(t, target, node.cb);
    assert(removed, `chain ${node.base}: armed callback missing on ${target}`);
  }
  dmaFencePut(t, target);
}

/** Enabling has nothing to arm: the node has been armed since init (see the contract). */
function chainEnableSignaling(t: FenceTable, f: FenceHandle): boolean {
  t.assertLocked(f);
  assert(t.opsIdOf(f) === dmaFenceChainOps, `fence ${f} is not a chain`);
  return true;
}

/** `dma_fence_chain_signaled`: every contained fence back to the start has signalled. */
function chainSignaled(t: FenceTable, f: FenceHandle): boolean {
  if (registries.get(t)?.nodes.get(f) === undefined) return false; // not ours: the owner completes it
  let steps = 0;
  for (let it: FenceHandle | null = dmaFenceGet(t, f); it !== null; it = dmaFenceChainWalk(t, it)) {
    assert(++steps <= t.capacity, `chain ${f}: walk longer than the table`);
    if (!dmaFenceIsSignaled(t, dmaFenceChainContained(t, it))) {
      dmaFencePut(t, it);
      return false;
    }
  }
  return true;
}

function chainSetDeadline(t: FenceTable, f: FenceHandle, deadlineNs: number): void {
  if (registries.get(t)?.nodes.get(f) === undefined) return;
  let steps = 0;
  for (let it: FenceHandle | null = dmaFenceGet(t, f); it !== null; it = dmaFenceChainWalk(t, it)) {
    assert(++steps <= t.capacity, `chain ${f}: walk longer than the table`);
    dmaFenceSetDeadline(t, dmaFenceChainContained(t, it), deadlineNs);
  }
}

function chainRelease(t: FenceTable, f: FenceHandle): void {
  const reg = registries.get(t);
  const node = reg?.nodes.get(f);
  if (reg === undefined || node === undefined) {
    t.onMisuse({
      rule: 'fence-container-foreign-release',
      message: `dma_fence_chain ${f} released off the thread that created it: its prev and fence are dropped when the owner next sees them signal`,
      fence: f,
    });
    return;
  }
  reg.nodes.delete(f);
  chainFreeNode(t, reg, node);
}

/**
 * `dma_fence_chain_release` without the fence itself: unlink every predecessor we hold the last reference
 * to, so freeing it does not recurse into its own predecessor (a long chain would overflow the stack).
 */
function chainFreeNode(t: FenceTable, reg: ChainRegistry, node: ChainNode): void {
  chainDisarm(t, node);
  let prev = node.prev;
  node.prev = null;
  let steps = 0;
  while (prev !== null) {
    assert(++steps <= t.capacity, `chain ${node.base}: release longer than the table`);
    const prevNode = reg.nodes.get(prev);
    if (prevNode === undefined || t.refCountOf(prev) > 1) break;
    const next = prevNode.prev;
    prevNode.prev = null; // we hold the last reference: its release now stops at itself
    dmaFencePut(t, prev);
    prev = next;
  }
  if (prev !== null) dmaFencePut(t, prev);
  dmaFencePut(t, node.fence);
}

/**
 * `dma_fence_chain_walk(fence)`: drop the reference on `fence` and return a reference on the previous
 * node whose contained fence has not signalled (or a plain prev that has not), or null at the end.
 * Signalled predecessors are unlinked on the way (garbage collection).
 */
export function dmaFenceChainWalk(t: FenceTable, fence: FenceHandle): FenceHandle | null {
  if (!t.check(fence, 'dma_fence_chain_walk')) return null;
  const node = nodeOf(t, fence);
  if (node === undefined) {
    dmaFencePut(t, fence);
    return null;
  }
  let prev: FenceHandle | null = chainGetPrev(t, node);
  let steps = 0;
  for (; prev !== null; prev = chainGetPrev(t, node)) {
    assert(++steps <= t.capacity, `chain ${fence}: walk longer than the table`);
    const prevNode = nodeOf(t, prev);
    let replacement: FenceHandle | null;
    if (prevNode !== undefined) {
      if (!dmaFenceIsSignaled(t, prevNode.fence)) break;
      replacement = chainGetPrev(t, prevNode);
    } else {
      if (!dmaFenceIsSignaled(t, prev)) break;
      replacement = null;
    }
    // The kernel's cmpxchg: dmaFenceIsSignaled above may run callbacks that walked this node already.
    if (node.prev === prev) {
      node.prev = replacement;
      dmaFencePut(t, prev);
    } else if (replacement !== null) {
      dmaFencePut(t, replacement);
    }
    dmaFencePut(t, prev);
  }
  dmaFencePut(t, fence);
  return prev;
}

/** `dma_fence_chain_get_prev`: a new reference on prev, or null. */
function chainGetPrev(t: FenceTable, node: ChainNode): FenceHandle | null {
  return node.prev === null ? null : dmaFenceGet(t, node.prev);
}

/** The `struct dma_fence **pfence` of `dma_fence_chain_find_seqno`. */
export interface DmaFenceRef {
  fence: FenceHandle | null;
}

/**
 * `dma_fence_chain_find_seqno(&fence, seqno)`: move `pfence.fence` to the oldest node that will signal
 * `seqno` (the first, walking back, whose prev_seqno is below it). It consumes the reference it was given
 * and leaves one on the node found, or null if everything up to there has signalled and been collected.
 * `seqno` 0 is a no-op. -EINVAL (no reference consumed) for a non-chain or a seqno not yet reached.
 */
export function dmaFenceChainFindSeqno(t: FenceTable, pfence: DmaFenceRef, seqno: number): number {
  if (!seqno) return 0;
  const head = pfence.fence;
  if (head === null || !t.check(head, 'dma_fence_chain_find_seqno')) return -EINVAL;
  const chain = nodeOf(t, head);
  if (chain === undefined || t.seqnoOf(head) < seqno) return -EINVAL;
  const context = t.contextOf(head);
  let it: FenceHandle | null = dmaFenceGet(t, head);
  let steps = 0;
  for (; it !== null; it = dmaFenceChainWalk(t, it)) {
    assert(++steps <= t.capacity, `chain ${head}: walk longer than the table`);
    const itNode = nodeOf(t, it);
    if (t.contextOf(it) !== context || itNode === undefined || itNode.prevSeqno < seqno) break;
  }
  pfence.fence = it;
  dmaFencePut(t, head);
  return 0;
}
