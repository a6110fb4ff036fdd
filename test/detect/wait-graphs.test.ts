/**
 * The two deadlock detectors on their own: the lockdep graph (orders that could deadlock, from edges
 * recorded at any time) and the block-time wait-for table (cycles of devices blocked right now).
 * Scenario-level positives and fixed twins live in scenarios/misuse/script-* (test/farm/misuse.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeNode, LOCKDEP_EDGES_MAX, LockdepGraph } from '../../src/detect/lockdep.js';
import { WAIT_FENCE, WAIT_LOCK, WAIT_RECV, WAIT_SEND, WaitForAgent, WaitForShared } from '../../src/detect/wait-for.js';

const site = (device: string) => ({ device, op: 'lock', timeNs: 0 });

describe('LockdepGraph', () => {
  it('reports AB-BA when the second order first appears, with both edges', () => {
    const g = new LockdepGraph();
    expect(g.add('resv:1', 'resv:2', site('gpu0')).kind).toBe('new');
    expect(g.add('resv:1', 'resv:2', site('gpu0')).kind).toBe('known');
    const r = g.add('resv:2', 'resv:1', site('gpu1'));
    expect(r.kind).toBe('cycle');
    if (r.kind !== 'cycle') return;
    expect(r.edges.map((e) => `${e.site.device}:${e.from}>${e.to}`)).toEqual([
      'gpu1:resv:2>resv:1',
      'gpu0:resv:1>resv:2',
    ]);
  });

  it('finds a longer cycle through a signalling node (lock held across a wait, lock taken owing a fence)', () => {
    const g = new LockdepGraph();
    g.add('resv:7', 'signal:gpu0', site('disp0'));
    g.add('signal:gpu0', 'resv:8', site('gpu0'));
    const r = g.add('resv:8', 'resv:7', site('cam0'));
    expect(r.kind).toBe('cycle');
    if (r.kind === 'cycle') expect(r.edges).toHaveLength(3);
    expect(describeNode('signal:gpu0')).toBe("gpu0's fences");
    expect(describeNode('resv:8')).toBe('the resv lock of buffer 8');
  });

  it('never reports a cycle for edges that respect one global order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(20), fc.nat(20)), { maxLength: 200 }), (pairs) => {
        const g = new LockdepGraph();
        for (const [a, b] of pairs) {
          if (a === b) continue;
          const [lo, hi] = a < b ? [a, b] : [b, a];
          expect(g.add(`resv:${lo}`, `resv:${hi}`, site('d')).kind).not.toBe('cycle');
        }
      }),
    );
  });

  it('stops growing at its bound and says so once', () => {
    const g = new LockdepGraph();
    for (let i = 0; i < LOCKDEP_EDGES_MAX; i++) g.add(`resv:${i}`, `resv:${i + 1}`, site('d'));
    expect(g.add('resv:a', 'resv:b', site('d')).kind).toBe('overflow');
    expect(g.add('resv:c', 'resv:d', site('d')).kind).toBe('known');
    expect(g.edgeCount).toBe(LOCKDEP_EDGES_MAX);
  });
});

describe('WaitForShared', () => {
  it('closes a cycle only through waits that still block', () => {
    const w = WaitForShared.create();
    const a = new WaitForAgent(w, 0);
    const b = new WaitForAgent(w, 1);
    b.block(WAIT_FENCE, 0, 5, 1, 9, 4);
    a.block(WAIT_FENCE, 1, 6, 1, 10, 2);
    const cycle = w.cycleFrom(0, 2, () => true);
    expect(cycle?.map((s) => [s.device, s.peer])).toEqual([
      [0, 1],
      [1, 0],
    ]);
    // One of the waits has just ended (its fence signalled): no cycle is invented from the stale word.
    expect(w.cycleFrom(0, 2, (s) => s.device !== 1)).toBeNull();
    b.unblock();
    expect(w.cycleFrom(0, 2, () => true)).toBeNull();
  });

  it('ends a block-time walk at a link wait, but follows links in a hang chain', () => {
    const w = WaitForShared.create();
    new WaitForAgent(w, 0).block(WAIT_SEND, 1);
    new WaitForAgent(w, 1).block(WAIT_FENCE, 0, 1, 1, 3, 4);
    expect(w.cycleFrom(1, 2, () => true)).toBeNull();
    const hang = w.hangChain([0, 1]);
    expect(hang.cycle).toBe(true);
    expect(hang.steps.map((s) => s.kind)).toEqual([WAIT_SEND, WAIT_FENCE]);
  });

  it('names the holder of a lock from the holders own lists, and bounds them', () => {
    const w = WaitForShared.create();
    const a = new WaitForAgent(w, 0);
    const b = new WaitForAgent(w, 1);
    expect(a.holdLock(42)).toBe(true);
    expect(w.holderOf(42, 2)).toBe(0);
    b.block(WAIT_LOCK, w.holderOf(42, 2), 42);
    a.block(WAIT_RECV, 1);
    expect(w.hangChain([1]).steps.map((s) => s.peer)).toEqual([0, 1]);
    a.dropLock(42);
    expect(w.holderOf(42, 2)).toBe(-1);
    let held = 0;
    while (a.holdLock(100 + held)) held++;
    expect(held).toBe(16);
  });
});
