// dma_fence_chain: the behaviours of drivers/dma-buf/st-dma-fence-chain.c, each with a negative twin, plus
// what the port adds (context reuse, release without recursion, waiters on another table view, a release
// on the wrong view). Orderings are forced; nothing sleeps.
import fastCheck from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../src/kernel/assert.js';
import {
  DMA_FENCE_FLAG_SEQNO64_BIT,
  type DmaFenceCb,
  dmaFenceAddCallback,
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
  type DmaFenceRef,
  dmaFenceChainContained,
  dmaFenceChainFindSeqno,
  dmaFenceChainInit,
  dmaFenceChainWalk,
  dmaFenceIsChain,
  toDmaFenceChain,
} from '../../src/kernel/dma-fence-chain.js';
import { EINVAL, EIO, ENOMEM } from '../../src/kernel/errno.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

/** A leaf kind that records deadlines (dma_fence_set_deadline must reach every contained fence). */
const deadlines = new Map<FenceHandle, number>();
const deadlineOps = registerFenceOps('test-chain-deadline', {
  getDriverName: () => 'deadline',
  getTimelineName: () => 'deadline',
  setDeadline: (_t, f, ns) => {
    deadlines.set(f, ns);
  },
});

const CHAIN_SZ = 4 << 10;

function table(capacity = 512): { t: FenceTable; misuse: FenceMisuse[] } {
  const misuse: FenceMisuse[] = [];
  let clock = 1000;
  const t = FenceTable.create(capacity, { onMisuse: (m) => misuse.push(m), nowNs: () => clock++ });
  return { t, misuse };
}

function ok(h: number): FenceHandle {
  if (h < 0) throw new Error(`expected a fence, got ${h}`);
  return h;
}

/** st-dma-fence-chain.c mock_fence(): context 0, seqno 0. */
function mockFence(t: FenceTable, ops = mockOps): FenceHandle {
  return ok(dmaFenceInit(t, ops, 0, 0));
}

/** mock_chain(prev, fence, seqno): the chain takes references of its own. */
function mockChain(t: FenceTable, prev: FenceHandle | null, fence: FenceHandle, seqno: number): FenceHandle {
  return ok(dmaFenceChainInit(t, prev === null ? null : dmaFenceGet(t, prev), dmaFenceGet(t, fence), seqno));
}

interface FenceChains {
  fences: FenceHandle[];
  chains: FenceHandle[];
  tail: FenceHandle;
}

/** fence_chains_init: `count` nodes, each enabled, seqno from `seqnoFn`. */
function fenceChainsInit(t: FenceTable, count: number, seqnoFn = (i: number) => i + 1): FenceChains {
  const fences: FenceHandle[] = [];
  const chains: FenceHandle[] = [];
  let tail: FenceHandle | null = null;
  for (let i = 0; i < count; i++) {
    fences.push(mockFence(t));
    tail = mockChain(t, tail, fences[i] as FenceHandle, seqnoFn(i));
    chains.push(tail);
    dmaFenceEnableSwSignaling(t, tail);
  }
  return { fences, chains, tail: tail as FenceHandle };
}

/** fence_chains_fini, then the leak check the C selftest cannot make. */
function fenceChainsFini(t: FenceTable, fc: FenceChains): void {
  for (const f of fc.fences) {
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
  }
  for (const c of fc.chains) dmaFencePut(t, c);
  expect(t.liveCount).toBe(0);
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`index ${i} out of range`);
  return x;
}

/** mulberry32: a seeded, replayable order for the "random" tests. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32;
  };
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = xs.slice();
  const rand = prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('dma_fence_chain (st-dma-fence-chain.c)', () => {
  it('sanitycheck: a one-node chain signals with its fence and frees everything', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    const chain = mockChain(t, null, f, 1);
    dmaFenceEnableSwSignaling(t, chain);
    expect(dmaFenceIsSignaled(t, chain)).toBe(false);
    dmaFenceSignal(t, f);
    expect(t.stateOf(chain)).toBe(STATE_SIGNALED);
    expect(dmaFenceGetStatus(t, chain)).toBe(1);
    dmaFencePut(t, f);
    dmaFencePut(t, chain);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('find_seqno: every seqno finds its own node, itself, and its predecessor; the future is -EINVAL', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 64);
    const ref: DmaFenceRef = { fence: dmaFenceGet(t, fc.tail) };
    expect(dmaFenceChainFindSeqno(t, ref, 0)).toBe(0);
    expect(ref.fence).toBe(fc.tail); // seqno 0 is a no-op
    dmaFencePut(t, fc.tail);
    for (let i = 0; i < fc.chains.length; i++) {
      ref.fence = dmaFenceGet(t, fc.tail);
      expect(dmaFenceChainFindSeqno(t, ref, i + 1)).toBe(0);
      expect(ref.fence).toBe(at(fc.chains, i));
      dmaFencePut(t, ref.fence as FenceHandle);

      dmaFenceGet(t, ref.fence as FenceHandle);
      expect(dmaFenceChainFindSeqno(t, ref, i + 1)).toBe(0); // finding self
      expect(ref.fence).toBe(at(fc.chains, i));
      dmaFencePut(t, ref.fence as FenceHandle);

      dmaFenceGet(t, ref.fence as FenceHandle);
      const refs = t.refCountOf(at(fc.chains, i));
      expect(dmaFenceChainFindSeqno(t, ref, i + 2)).toBe(-EINVAL); // a future fence
      expect(ref.fence).toBe(at(fc.chains, i));
      expect(t.refCountOf(at(fc.chains, i))).toBe(refs); // -EINVAL consumed nothing
      dmaFencePut(t, ref.fence as FenceHandle);

      dmaFenceGet(t, ref.fence as FenceHandle);
      expect(dmaFenceChainFindSeqno(t, ref, i)).toBe(0);
      if (i > 0) expect(ref.fence).toBe(at(fc.chains, i - 1));
      dmaFencePut(t, ref.fence as FenceHandle);
    }
    fenceChainsFini(t, fc);
  });

  it('find_signaled: seqno 1 after its fence signalled is either node 0 or nothing left to wait for', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 2);
    dmaFenceSignal(t, at(fc.fences, 0));
    const ref: DmaFenceRef = { fence: dmaFenceGet(t, fc.tail) };
    expect(dmaFenceChainFindSeqno(t, ref, 1)).toBe(0);
    // The walk collected node 0 (its fence signalled), so there is nothing left to wait on.
    expect(ref.fence).toBeNull();
    expect(toDmaFenceChain(t, fc.tail)?.prev).toBeNull();
    fenceChainsFini(t, fc);
  });

  it('find_signaled, negative twin: with node 0 pending, seqno 1 finds node 0 and collects nothing', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 2);
    const ref: DmaFenceRef = { fence: dmaFenceGet(t, fc.tail) };
    expect(dmaFenceChainFindSeqno(t, ref, 1)).toBe(0);
    expect(ref.fence).toBe(at(fc.chains, 0));
    dmaFencePut(t, ref.fence as FenceHandle);
    expect(toDmaFenceChain(t, fc.tail)?.prev).toBe(at(fc.chains, 0));
    fenceChainsFini(t, fc);
  });

  it('find_out_of_order: 2 signalled in 1-2-3 still waits for 1 (node 2 is collected on the way)', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 3);
    dmaFenceSignal(t, at(fc.fences, 1));
    expect(dmaFenceIsSignaled(t, at(fc.chains, 1))).toBe(false);
    const ref: DmaFenceRef = { fence: dmaFenceGet(t, fc.tail) };
    expect(dmaFenceChainFindSeqno(t, ref, 2)).toBe(0);
    expect(ref.fence).toBe(at(fc.chains, 0));
    dmaFencePut(t, ref.fence as FenceHandle);
    expect(toDmaFenceChain(t, fc.tail)?.prev).toBe(at(fc.chains, 0));
    expect(toDmaFenceChain(t, fc.tail)?.prevSeqno).toBe(2); // kept through garbage collection
    fenceChainsFini(t, fc);
  });

  it('find_gap: with seqnos 2, 4, 6, … an odd seqno finds the node above it', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 64, (i) => 2 * i + 2);
    for (let i = 0; i < fc.chains.length; i++) {
      const ref: DmaFenceRef = { fence: dmaFenceGet(t, fc.tail) };
      expect(dmaFenceChainFindSeqno(t, ref, 2 * i + 1)).toBe(0);
      expect(ref.fence).toBe(at(fc.chains, i));
      dmaFencePut(t, ref.fence as FenceHandle);
      dmaFenceGet(t, ref.fence as FenceHandle);
      expect(dmaFenceChainFindSeqno(t, ref, 2 * i + 2)).toBe(0);
      expect(ref.fence).toBe(at(fc.chains, i));
      dmaFencePut(t, ref.fence as FenceHandle);
    }
    fenceChainsFini(t, fc);
  });

  it('find_seqno refuses a non-chain, no fence, and a seqno beyond the tail, consuming nothing', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    const chain = mockChain(t, null, f, 5);
    expect(dmaFenceChainFindSeqno(t, { fence: f }, 1)).toBe(-EINVAL);
    expect(dmaFenceChainFindSeqno(t, { fence: null }, 1)).toBe(-EINVAL);
    const ref: DmaFenceRef = { fence: chain };
    expect(dmaFenceChainFindSeqno(t, ref, 6)).toBe(-EINVAL);
    expect(ref.fence).toBe(chain);
    expect(t.refCountOf(chain)).toBe(1);
    expect(t.refCountOf(f)).toBe(3);
    expect(misuse).toEqual([]); // an unreached seqno is an answer, not a misuse
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
    dmaFencePut(t, chain);
    expect(t.liveCount).toBe(0);
  });

  it('find_race (sequential): whatever was signalled, waiting on the node found covers every seqno up to it', () => {
    const n = 16;
    fastCheck.assert(
      fastCheck.property(
        fastCheck.array(
          fastCheck.tuple(fastCheck.integer({ min: 1, max: n }), fastCheck.integer({ min: 0, max: n - 2 })),
          { maxLength: 40 },
        ),
        (steps) => {
          const { t } = table(64);
          const chains = fenceChainsInit(t, n);
          for (const [seqno, toSignal] of steps) {
            const ref: DmaFenceRef = { fence: dmaFenceGet(t, chains.tail) };
            expect(dmaFenceChainFindSeqno(t, ref, seqno)).toBe(0);
            const found = ref.fence;
            // Everything after the node found, up to seqno, has signalled already.
            const covered = found === null ? 0 : t.seqnoOf(found);
            for (let s = covered + 1; s <= seqno; s++) expect(t.stateOf(at(chains.fences, s - 1))).toBe(STATE_SIGNALED);
            if (found !== null) {
              expect(toDmaFenceChain(t, found)?.prevSeqno).toBeLessThan(seqno);
              if (t.seqnoOf(found) === seqno) {
                expect(dmaFenceChainFindSeqno(t, ref, seqno)).toBe(0); // we can find ourselves
                expect(ref.fence).toBe(found);
              }
              dmaFencePut(t, ref.fence as FenceHandle);
            }
            dmaFenceSignal(t, at(chains.fences, toSignal));
          }
          fenceChainsFini(t, chains);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('signal_forward: each node signals with its fence, and not one node early', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 64);
    for (let i = 0; i < fc.chains.length; i++) {
      dmaFenceSignal(t, at(fc.fences, i));
      expect(t.stateOf(at(fc.chains, i))).toBe(STATE_SIGNALED); // by its callback, not by polling
      expect(dmaFenceIsSignaled(t, at(fc.chains, i))).toBe(true);
      if (i + 1 < fc.chains.length) expect(dmaFenceIsSignaled(t, at(fc.chains, i + 1))).toBe(false);
    }
    fenceChainsFini(t, fc);
  });

  it('signal_backward: no node signals until the first fence does, then all of them do', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 64);
    for (let i = fc.chains.length - 1; i > 0; i--) {
      dmaFenceSignal(t, at(fc.fences, i));
      expect(dmaFenceIsSignaled(t, at(fc.chains, i))).toBe(false);
    }
    expect(fc.chains.every((c) => t.stateOf(c) !== STATE_SIGNALED)).toBe(true);
    dmaFenceSignal(t, at(fc.fences, 0));
    // The cascade through every node's callback, with nobody polling.
    expect(fc.chains.every((c) => t.stateOf(c) === STATE_SIGNALED)).toBe(true);
    fenceChainsFini(t, fc);
  });

  it('signalling order is irrelevant: node i is signalled iff fences 0..i are (any subset, any order)', () => {
    const n = 12;
    fastCheck.assert(
      fastCheck.property(fastCheck.shuffledSubarray([...Array(n).keys()]), (order) => {
        const { t } = table(64);
        const chains = fenceChainsInit(t, n);
        const done = new Set<number>();
        for (const i of order) {
          dmaFenceSignal(t, at(chains.fences, i));
          done.add(i);
          for (let k = 0; k < n; k++) {
            const want = [...Array(k + 1).keys()].every((j) => done.has(j));
            expect(t.stateOf(at(chains.chains, k)) === STATE_SIGNALED).toBe(want);
          }
        }
        fenceChainsFini(t, chains);
      }),
      { numRuns: 100 },
    );
  });

  async function waitWhileSignalling(order: 'forward' | 'backward' | 'random'): Promise<void> {
    const { t } = table(2 * CHAIN_SZ + 8);
    const fc = fenceChainsInit(t, CHAIN_SZ);
    const waiter = dmaFenceWaitTimeoutAsync(t, fc.tail, false, MAX_SCHEDULE_TIMEOUT); // asleep before any signal
    let fences = fc.fences.slice();
    if (order === 'backward') fences.reverse();
    if (order === 'random') fences = shuffled(fences, 0x5eed);
    for (const f of fences.slice(0, -1)) dmaFenceSignal(t, f);
    expect(dmaFenceWaitTimeout(t, fc.tail, false, 0)).toBe(0); // the twin: one fence short is not done
    dmaFenceSignal(t, at(fences, fences.length - 1));
    expect(await waiter).toBe(MAX_SCHEDULE_TIMEOUT);
    expect(fc.chains.every((c) => t.stateOf(c) === STATE_SIGNALED)).toBe(true);
    fenceChainsFini(t, fc);
  }

  it('wait_forward: a waiter on the tail of 4096 nodes wakes once the last fence signals', async () => {
    await waitWhileSignalling('forward');
  });

  it('wait_backward: the same, signalling from the newest fence back', async () => {
    await waitWhileSignalling('backward');
  });

  it('wait_random: the same, in a shuffled order (seed 0x5eed)', async () => {
    await waitWhileSignalling('random');
  });
});

describe('dma_fence_chain_init', () => {
  it('a later seqno after a chain reuses its context and records prev_seqno', () => {
    const { t } = table();
    const [a, b] = [mockFence(t), mockFence(t)];
    const c1 = mockChain(t, null, a, 1);
    const c2 = mockChain(t, c1, b, 2);
    expect(t.contextOf(c2)).toBe(t.contextOf(c1));
    expect(t.seqnoOf(c2)).toBe(2);
    expect(toDmaFenceChain(t, c2)?.prevSeqno).toBe(1);
    expect(toDmaFenceChain(t, c1)?.prevSeqno).toBe(0);
    expect(t.flagsOf(c2) & (1 << DMA_FENCE_FLAG_SEQNO64_BIT)).not.toBe(0);
    expect(dmaFenceDriverName(t, c2)).toBe('dma_fence_chain');
    expect(dmaFenceTimelineName(t, c2)).toBe('unbound');
    for (const f of [a, b]) dmaFenceSignal(t, f);
    for (const f of [a, b, c1, c2]) dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
  });

  it('negative twin: an earlier (or equal) seqno takes a new context and keeps the larger seqno', () => {
    const { t } = table();
    const [a, b, c] = [mockFence(t), mockFence(t), mockFence(t)];
    const c1 = mockChain(t, null, a, 5);
    const c2 = mockChain(t, c1, b, 3);
    const c3 = mockChain(t, c1, c, 5);
    for (const x of [c2, c3]) {
      expect(t.contextOf(x)).not.toBe(t.contextOf(c1));
      expect(t.seqnoOf(x)).toBe(5);
      expect(toDmaFenceChain(t, x)?.prevSeqno).toBe(0);
    }
    for (const f of [a, b, c]) dmaFenceSignal(t, f);
    for (const f of [a, b, c, c1, c2, c3]) dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
  });

  it('seqnos compare in 64 bits: 2^32 is later than 1 (a 32-bit compare would say it is earlier)', () => {
    const { t } = table();
    const [a, b] = [mockFence(t), mockFence(t)];
    const c1 = mockChain(t, null, a, 2);
    const c2 = mockChain(t, c1, b, 2 ** 32 + 1);
    expect(t.contextOf(c2)).toBe(t.contextOf(c1));
    expect(t.seqnoOf(c2)).toBe(2 ** 32 + 1);
    for (const f of [a, b]) dmaFenceSignal(t, f);
    for (const f of [a, b, c1, c2]) dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
  });

  it('a plain fence as prev starts a new context, and the node also waits for that prev', () => {
    const { t } = table();
    const [prev, f] = [mockFence(t), mockFence(t)];
    const c = mockChain(t, prev, f, 7);
    expect(t.contextOf(c)).not.toBe(0);
    expect(t.seqnoOf(c)).toBe(7);
    expect(toDmaFenceChain(t, c)?.prevSeqno).toBe(0);
    dmaFenceSignal(t, f);
    expect(dmaFenceIsSignaled(t, c)).toBe(false);
    dmaFenceSignal(t, prev);
    expect(t.stateOf(c)).toBe(STATE_SIGNALED);
    for (const x of [prev, f, c]) dmaFencePut(t, x);
    expect(t.liveCount).toBe(0);
  });

  it('a chain as the contained fence is the kernel WARN: reported, and the node still works', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    const inner = mockChain(t, null, f, 1);
    const outer = mockChain(t, null, inner, 1);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-chain-contains-chain']);
    expect(misuse[0]?.fence).toBe(outer);
    dmaFenceSignal(t, f);
    expect(t.stateOf(outer)).toBe(STATE_SIGNALED);
    for (const x of [f, inner, outer]) dmaFencePut(t, x);
    expect(t.liveCount).toBe(0);
  });

  it('a chain never carries its fence error: the node signals with status 1', () => {
    const { t } = table();
    const f = mockFence(t);
    const c = mockChain(t, null, f, 1);
    dmaFenceEnableSwSignaling(t, c);
    dmaFenceSetError(t, f, -EIO);
    dmaFenceSignal(t, f);
    expect(dmaFenceGetStatus(t, f)).toBe(-EIO);
    expect(dmaFenceGetStatus(t, c)).toBe(1);
    for (const x of [f, c]) dmaFencePut(t, x);
  });

  it('a full table is -ENOMEM and the caller keeps its references', () => {
    const { t } = table(3); // the stub, two fences, no room for a node
    const [a, b] = [mockFence(t), mockFence(t)];
    expect(dmaFenceChainInit(t, a, b, 1)).toBe(-ENOMEM);
    expect(t.refCountOf(a)).toBe(1);
    expect(t.refCountOf(b)).toBe(1);
    expect(t.pendingCallbacks(b)).toBe(0);
    for (const x of [a, b]) dmaFencePut(t, x);
    expect(t.liveCount).toBe(0);
  });

  it('a released fence is refused with -EINVAL (and reported as stale)', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    dmaFencePut(t, f);
    expect(dmaFenceChainInit(t, null, f, 1)).toBe(-EINVAL);
    expect(misuse.map((m) => m.rule)).toEqual(['fence-stale-handle']);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_fence_chain walk, contained, release', () => {
  it('contained: a node gives its fence, any other fence gives itself', () => {
    const { t } = table();
    const f = mockFence(t);
    const c = mockChain(t, null, f, 1);
    expect(dmaFenceChainContained(t, c)).toBe(f);
    expect(dmaFenceChainContained(t, f)).toBe(f);
    expect(dmaFenceIsChain(t, c)).toBe(true);
    expect(dmaFenceIsChain(t, f)).toBe(false);
    expect(toDmaFenceChain(t, f)).toBeNull();
    dmaFenceSignal(t, f);
    for (const x of [f, c]) dmaFencePut(t, x);
  });

  it('walk: moves one node back, trading the reference; the start and a non-chain end the walk', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 3);
    const [c0, c1, c2] = fc.chains as [FenceHandle, FenceHandle, FenceHandle];
    const before = [c0, c1, c2].map((c) => t.refCountOf(c));
    const prev = dmaFenceChainWalk(t, dmaFenceGet(t, c2));
    expect(prev).toBe(c1);
    expect(t.refCountOf(c2)).toBe(before[2]); // the walk dropped the reference it was given
    expect(t.refCountOf(c1)).toBe((before[1] ?? 0) + 1); // and returned one on c1
    dmaFencePut(t, c1);
    expect(dmaFenceChainWalk(t, dmaFenceGet(t, c0))).toBeNull();
    const leaf = at(fc.fences, 0);
    const refs = t.refCountOf(leaf);
    expect(dmaFenceChainWalk(t, dmaFenceGet(t, leaf))).toBeNull();
    expect(t.refCountOf(leaf)).toBe(refs);
    fenceChainsFini(t, fc);
  });

  it('walk collects signalled predecessors; the negative twin keeps pending ones linked', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 4);
    const [c0, c1, c2, c3] = fc.chains as [FenceHandle, FenceHandle, FenceHandle, FenceHandle];
    dmaFenceSignal(t, at(fc.fences, 2));
    dmaFenceSignal(t, at(fc.fences, 1));
    expect(toDmaFenceChain(t, c3)?.prev).toBe(c2);
    const prev = dmaFenceChainWalk(t, dmaFenceGet(t, c3));
    expect(prev).toBe(c0); // c2 and c1 have signalled fences: skipped and unlinked
    expect(toDmaFenceChain(t, c3)?.prev).toBe(c0);
    dmaFencePut(t, prev as FenceHandle);
    expect(toDmaFenceChain(t, c1)?.prev).toBe(c0); // c1 itself was not walked
    fenceChainsFini(t, fc);
  });

  it('releasing a 20000-node chain by its tail frees it iteratively (no recursion, no leak)', () => {
    const n = 20_000;
    const { t, misuse } = table(2 * n + 8);
    let tail: FenceHandle | null = null;
    for (let i = 0; i < n; i++) {
      const f = mockFence(t);
      dmaFenceSignal(t, f);
      tail = ok(dmaFenceChainInit(t, tail, f, i + 1)); // ownership of both references moves in
    }
    expect(t.liveCount).toBe(2 * n);
    expect(t.stateOf(tail as FenceHandle)).toBe(STATE_SIGNALED);
    dmaFencePut(t, tail as FenceHandle);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('the same with every node armed on its predecessor (the first fence pending): still iterative', () => {
    const n = 20_000;
    const { t, misuse } = table(2 * n + 8);
    const first = mockFence(t);
    let tail = mockChain(t, null, first, 1);
    for (let i = 1; i < n; i++) {
      const f = mockFence(t);
      dmaFenceSignal(t, f);
      tail = ok(dmaFenceChainInit(t, tail, f, i + 1));
    }
    expect(t.pendingCallbacks(toDmaFenceChain(t, tail)?.prev as FenceHandle)).toBe(1); // armed on prev
    expect(dmaFenceIsSignaled(t, tail)).toBe(false);
    dmaFencePut(t, tail);
    expect(t.liveCount).toBe(1); // only `first`, which we still hold
    expect(t.pendingCallbacks(first)).toBe(0);
    dmaFenceSignal(t, first);
    dmaFencePut(t, first);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('negative twin: a node still referenced elsewhere survives the tail, and goes with its last put', () => {
    const { t } = table();
    const fc = fenceChainsInit(t, 4);
    for (const f of fc.fences) {
      dmaFenceSignal(t, f);
      dmaFencePut(t, f);
    }
    const keep = at(fc.chains, 1);
    for (const c of fc.chains) if (c !== keep) dmaFencePut(t, c);
    expect(t.isLive(keep)).toBe(true);
    expect(t.isLive(at(fc.chains, 0))).toBe(true); // keep's prev
    expect(t.isLive(at(fc.chains, 3))).toBe(false);
    expect(t.liveCount).toBe(4); // c0, c1 and their fences
    dmaFencePut(t, keep);
    expect(t.liveCount).toBe(0);
  });

  it('releasing an unsignalled node removes its callback and drops its references', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    const c = mockChain(t, null, f, 1);
    expect(t.pendingCallbacks(f)).toBe(1);
    expect(t.refCountOf(f)).toBe(3); // ours, the node's, the armed callback's
    dmaFencePut(t, c);
    expect(t.pendingCallbacks(f)).toBe(0);
    expect(t.refCountOf(f)).toBe(1);
    dmaFenceSignal(t, f);
    dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('a callback on the fence that drops the last node reference, ahead of the node: no double put', () => {
    const { t, misuse } = table();
    const f = mockFence(t);
    let c = -1;
    dmaFenceAddCallback(t, f, { func: () => dmaFencePut(t, c) }); // runs before the node's callback
    c = mockChain(t, null, f, 1);
    dmaFenceSignal(t, f);
    expect(t.isLive(c)).toBe(false);
    expect(t.refCountOf(f)).toBe(1);
    dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('set_deadline reaches every contained fence still pending', () => {
    const { t } = table();
    deadlines.clear();
    const [a, b] = [mockFence(t, deadlineOps), mockFence(t, deadlineOps)];
    const c1 = mockChain(t, null, a, 1);
    const c2 = mockChain(t, c1, b, 2);
    dmaFenceSetDeadline(t, c2, 777);
    expect(deadlines.get(a)).toBe(777);
    expect(deadlines.get(b)).toBe(777);
    dmaFenceSignal(t, a);
    dmaFenceSetDeadline(t, c2, 555); // a has signalled: only b hears about it
    expect(deadlines.get(a)).toBe(777);
    expect(deadlines.get(b)).toBe(555);
    dmaFenceSignal(t, b);
    for (const x of [a, b, c1, c2]) dmaFencePut(t, x);
    expect(t.liveCount).toBe(0);
  });
});

describe('dma_fence_chain across table views (another thread)', () => {
  function second(t: FenceTable): { v: FenceTable; misuse: FenceMisuse[] } {
    const misuse: FenceMisuse[] = [];
    return { v: FenceTable.attach(t.sab, { onMisuse: (m) => misuse.push(m) }), misuse };
  }

  it('a waiter on another view wakes when the owner completes the chain', async () => {
    const { t } = table();
    const { v, misuse } = second(t);
    const fc = fenceChainsInit(t, 8);
    expect(dmaFenceIsSignaled(v, fc.tail)).toBe(false); // no node here: not signalled yet
    const waiter = dmaFenceWaitTimeoutAsync(v, fc.tail, false, MAX_SCHEDULE_TIMEOUT);
    for (const f of fc.fences.slice().reverse()) dmaFenceSignal(t, f);
    expect(await waiter).toBe(MAX_SCHEDULE_TIMEOUT);
    expect(misuse).toEqual([]);
    fenceChainsFini(t, fc);
  });

  it('fences signalled elsewhere: the owner can see completion by polling before its callbacks run', async () => {
    const { t } = table();
    const { v } = second(t);
    const fc = fenceChainsInit(t, 3);
    const ran = new Promise<void>((resolve) => {
      const cb: DmaFenceCb = { func: () => resolve() };
      dmaFenceAddCallback(t, at(fc.fences, 0), cb); // after the node's callback, on the owner
    });
    dmaFenceSignal(v, at(fc.fences, 2));
    dmaFenceSignal(v, at(fc.fences, 1));
    dmaFenceSignal(v, at(fc.fences, 0));
    expect(t.stateOf(fc.tail)).not.toBe(STATE_SIGNALED); // the owner's callbacks have not run yet
    expect(dmaFenceIsSignaled(t, fc.tail)).toBe(true); // ops.signaled walks the fences themselves
    await ran;
    expect(fc.chains.every((c) => t.stateOf(c) === STATE_SIGNALED)).toBe(true);
    fenceChainsFini(t, fc);
  });

  it('the last put on another view is reported; the owner drops the rest when the fence signals', () => {
    const { t, misuse } = table();
    const { v, misuse: vMisuse } = second(t);
    const f = mockFence(t);
    const c = mockChain(t, null, f, 1);
    dmaFencePut(v, c);
    expect(vMisuse.map((m) => m.rule)).toEqual(['fence-container-foreign-release']);
    expect(t.isLive(c)).toBe(false);
    expect(t.refCountOf(f)).toBe(3); // still held by the orphaned node and its callback
    dmaFenceSignal(t, f);
    expect(t.refCountOf(f)).toBe(1);
    dmaFencePut(t, f);
    expect(t.liveCount).toBe(0);
    expect(misuse).toEqual([]);
  });

  it('the kernel-side API on a view that does not own the node is a dmafarm bug', () => {
    const { t } = table();
    const { v } = second(t);
    const f = mockFence(t);
    const c = mockChain(t, null, f, 1);
    expect(() => dmaFenceChainWalk(v, dmaFenceGet(v, c))).toThrow(KernelBug);
    expect(() => toDmaFenceChain(v, c)).toThrow(KernelBug);
    dmaFencePut(t, c); // the reference the failed walk could not drop
    dmaFenceSignal(t, f);
    for (const x of [f, c]) dmaFencePut(t, x);
    expect(t.liveCount).toBe(0);
  });
});
