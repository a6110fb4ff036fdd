/**
 * Lock-order and cross-release dependencies, lockdep-style: a graph whose edges say "B was needed while
 * A was held", kept for the whole run, so an order that could deadlock is reported the moment the edge
 * that closes a cycle first appears — even when the run itself never hangs (the two halves may happen
 * seconds apart, never overlapping).
 *
 * Nodes are resv locks (`resv:<buffer>`) and fence timelines' signalling paths (`signal:<device>`), as
 * lockdep's `dma_fence_map` annotation makes the signalling of fences a lock that waiters "take"
 * (drivers/dma-buf/dma-fence.c, "fence signalling annotation"). Edges, recorded by devices:
 * - `resv:A → resv:B`: B locked while A was held, not both under one acquire context (Wait-Die only
 *   orders locks taken with one ticket);
 * - `resv:A → signal:D`: a device waited on one of D's fences while it held A;
 * - `signal:D → resv:A`: D took A while it owed a published fence (or inside begin/end_signalling): D's
 *   fences cannot signal until it gets A.
 * Instances, not classes: dmafarm knows which buffer each lock guards, so AB-BA is between two real buffers.
 *
 * Contract: one graph per run, on the host; `add` is called in any order (edges are facts, not events) and
 * returns the cycle an edge closes, once. Bounded: past `LOCKDEP_EDGES_MAX` edges the graph stops growing
 * and says so once (lockdep turns itself off the same way when its tables fill).
 */
import { assert } from '../kernel/assert.js';

export const LOCKDEP_EDGES_MAX = 16_384;

export interface LockdepSite {
  device: string;
  /** What the device was doing when it recorded the edge ('lock', 'wait', 'add-fence'). */
  op: string;
  timeNs: number;
}

export interface LockdepEdge {
  from: string;
  to: string;
  site: LockdepSite;
}

export type LockdepResult =
  | { kind: 'new' }
  | { kind: 'known' }
  | { kind: 'cycle'; edges: LockdepEdge[] }
  | { kind: 'overflow' };

export class LockdepGraph {
  private readonly out = new Map<string, Map<string, LockdepEdge>>();
  private edges = 0;
  private overflowed = false;

  get edgeCount(): number {
    return this.edges;
  }

  /**
   * Record `from → to`. A cycle is returned as the edges around it, starting with the new one; the new
   * edge is kept either way (later edges that close other cycles through it are reported too).
   */
  add(from: string, to: string, site: LockdepSite): LockdepResult {
    assert(from !== to, `lockdep edge ${from} → itself`);
    if (this.out.get(from)?.has(to)) return { kind: 'known' };
    if (this.edges >= LOCKDEP_EDGES_MAX) {
      if (this.overflowed) return { kind: 'known' };
      this.overflowed = true;
      return { kind: 'overflow' };
    }
    const path = this.pathTo(to, from);
    const edge: LockdepEdge = { from, to, site };
    let m = this.out.get(from);
    if (m === undefined) {
      m = new Map();
      this.out.set(from, m);
    }
    m.set(to, edge);
    this.edges++;
    return path === null ? { kind: 'new' } : { kind: 'cycle', edges: [edge, ...path] };
  }

  /** Edges of a path `src → … → dst` (breadth-first: the shortest, so reports stay short), or null. */
  private pathTo(src: string, dst: string): LockdepEdge[] | null {
    const via = new Map<string, LockdepEdge | null>([[src, null]]);
    const queue = [src];
    for (let i = 0; i < queue.length; i++) {
      const n = queue[i] as string;
      if (n === dst) {
        const path: LockdepEdge[] = [];
        for (let e = via.get(n); e; e = via.get(e.from)) path.unshift(e);
        return path;
      }
      for (const [next, e] of this.out.get(n) ?? []) {
        if (via.has(next)) continue;
        via.set(next, e);
        queue.push(next);
      }
    }
    return null;
  }
}

/** A node as words: `resv:12` → "the resv lock of buffer 12", `signal:gpu0` → "gpu0's fences". */
export function describeNode(node: string): string {
  const [kind, name] = node.split(':', 2);
  if (kind === 'resv') return `the resv lock of buffer ${name}`;
  if (kind === 'signal') return `${name}'s fences`;
  return node;
}
