/**
 * The wait-for graph at block time: what each device is blocked on, in shared memory, so the device that
 * is about to block can follow the chain "I wait for X, X waits for Y, …" and see whether it comes back to
 * itself — a deadlock found when its last edge appears, on both hosts, without waiting for a hang.
 *
 * Contract:
 * - Each device writes only its own words: what it blocks on (`block*`, before sleeping; `unblock` after),
 *   the resv locks it holds, and its timeline's emitted / signalled seqnos (for hang reports). Anyone reads.
 * - A chain is only believed after checking, at the time of the walk, that every wait in it still blocks
 *   (the fence is unsignalled, the lock still held by the device named). On the worker host the words of
 *   other devices can be stale by a moment; a stale step fails the check, so a cycle is never invented.
 *   Each device publishes its own state before it walks (both with sequentially consistent Atomics), so of
 *   two devices closing a cycle at once at least one sees the other's edge.
 * - Link waits (a full or empty link) are recorded for hang reports but end a walk: a link wait is left by
 *   the peer's progress, which the block-time check cannot verify from here.
 *
 * Layout (Int32 words per device, `WORDS_PER_DEVICE`): kind, peer (device index or -1), four detail words
 * (fence: slot, generation, context, seqno; lock: buffer id), emitted seqno, signalled seqno, held-lock
 * count, `HELD_LOCKS_MAX` buffer ids, the ticket of the current wait (when it began: tickets come from
 * one counter, the word after the last device's, so the oldest wait has the smallest), then whether the
 * wait has a timeout (it ends by itself: part of a cycle, but not of a deadlock nothing else can end).
 */
import { assert } from '../kernel/assert.js';

/** Devices one run may have (the HB detector's bound is smaller; this one only sizes the table). */
export const WAIT_DEVICES_MAX = 64;
/** Resv locks one device may hold at once (a job's buffer list); one more is an error to the device. */
export const HELD_LOCKS_MAX = 16;

export const WAIT_NONE = 0;
export const WAIT_FENCE = 1;
export const WAIT_LOCK = 2;
export const WAIT_SEND = 3;
export const WAIT_RECV = 4;
export type WaitKind = 0 | 1 | 2 | 3 | 4;

const W_KIND = 0;
const W_PEER = 1;
const W_A = 2;
const W_B = 3;
const W_C = 4;
const W_D = 5;
const W_EMITTED = 6;
const W_SIGNALLED = 7;
const W_HELD_COUNT = 8;
const W_HELD = 9;
const W_SINCE = W_HELD + HELD_LOCKS_MAX;
const W_TIMED = W_SINCE + 1;
const WORDS_PER_DEVICE = 32;
assert(W_TIMED < WORDS_PER_DEVICE, 'wait-for words overflow');
const TICKET_WORD = WAIT_DEVICES_MAX * WORDS_PER_DEVICE;
const TABLE_BYTES = (TICKET_WORD + 1) * 4;

/** One blocked device and what it waits for. */
export interface WaitStep {
  device: number;
  kind: WaitKind;
  /** Who must act to end the wait: the fence's owner, the lock's holder, the link's peer; -1 unknown. */
  peer: number;
  /** Fence: slot, generation, context, seqno. Lock: buffer id. */
  a: number;
  b: number;
  c: number;
  d: number;
  /** When the wait began, as a ticket: a smaller one began earlier. */
  since: number;
  /** The wait has a timeout: it ends by itself. */
  timed: boolean;
}

export class WaitForShared {
  readonly sab: SharedArrayBuffer;
  readonly words: Int32Array;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.words = new Int32Array(sab);
  }
  static create(): WaitForShared {
    const s = new WaitForShared(new SharedArrayBuffer(TABLE_BYTES));
    for (let d = 0; d < WAIT_DEVICES_MAX; d++) s.words[d * WORDS_PER_DEVICE + W_PEER] = -1;
    return s;
  }
  static attach(sab: SharedArrayBuffer): WaitForShared {
    assert(sab.byteLength === TABLE_BYTES, 'wait-for table of the wrong size');
    return new WaitForShared(sab);
  }

  private base(device: number): number {
    assert(device >= 0 && device < WAIT_DEVICES_MAX, `device index ${device} outside the wait-for table`);
    return device * WORDS_PER_DEVICE;
  }

  /** What `device` is blocked on now, or null when it is not blocked. */
  stateOf(device: number): WaitStep | null {
    const b = this.base(device);
    const w = this.words;
    const kind = Atomics.load(w, b + W_KIND) as WaitKind;
    if (kind === WAIT_NONE) return null;
    return {
      device,
      kind,
      peer: Atomics.load(w, b + W_PEER),
      a: Atomics.load(w, b + W_A),
      b: Atomics.load(w, b + W_B),
      c: Atomics.load(w, b + W_C),
      d: Atomics.load(w, b + W_D),
      since: Atomics.load(w, b + W_SINCE),
      timed: Atomics.load(w, b + W_TIMED) !== 0,
    };
  }

  /** The device holding the resv lock of `bufferId`, by the holders' own lists; -1 when none lists it. */
  holderOf(bufferId: number, devices: number): number {
    const w = this.words;
    for (let d = 0; d < devices; d++) {
      const b = this.base(d);
      const n = Atomics.load(w, b + W_HELD_COUNT);
      for (let i = 0; i < n; i++) if (Atomics.load(w, b + W_HELD + i) === bufferId) return d;
    }
    return -1;
  }

  /** The device's timeline: the last seqno it created and the highest it signalled. */
  timelineOf(device: number): { emitted: number; signalled: number } {
    const b = this.base(device);
    return { emitted: Atomics.load(this.words, b + W_EMITTED), signalled: Atomics.load(this.words, b + W_SIGNALLED) };
  }

  /**
   * Follow the chain of waits from `start`'s own (already published) state. Returns the cycle — every step,
   * starting with `start`'s — when it leads back to `start` and `stillBlocks` confirms each step; null
   * otherwise. A cycle that does not pass through `start` is left to one of its members to report.
   */
  cycleFrom(start: number, devices: number, stillBlocks: (s: WaitStep) => boolean): WaitStep[] | null {
    const steps: WaitStep[] = [];
    let cur = start;
    for (let hops = 0; hops <= devices; hops++) {
      const s = this.stateOf(cur);
      if (s === null || s.peer < 0 || s.kind === WAIT_SEND || s.kind === WAIT_RECV) return null;
      if (!stillBlocks(s)) return null;
      steps.push(s);
      if (s.peer === start) return steps;
      if (steps.some((x) => x.device === s.peer)) return null; // a cycle that start only leads into
      cur = s.peer;
    }
    return null;
  }

  /**
   * Every chain of waits among `stuck` devices, for a hang report: the cycle if there is one (through any
   * kind of wait, links included), else the longest chain. No checks: the caller knows nothing can move.
   */
  hangChain(stuck: readonly number[]): { steps: WaitStep[]; cycle: boolean } {
    let best: WaitStep[] = [];
    for (const start of stuck) {
      const steps: WaitStep[] = [];
      const seen = new Set<number>();
      let cur = start;
      while (!seen.has(cur)) {
        seen.add(cur);
        const s = this.stateOf(cur);
        if (s === null) break;
        steps.push(s);
        if (s.peer < 0) break;
        if (s.peer === start) return { steps, cycle: true };
        cur = s.peer;
      }
      if (steps.length > best.length) best = steps;
    }
    return { steps: best, cycle: false };
  }
}

/** One device's writer side. */
export class WaitForAgent {
  private readonly shared: WaitForShared;
  readonly device: number;
  private readonly b: number;

  constructor(shared: WaitForShared, device: number) {
    this.shared = shared;
    this.device = device;
    assert(device >= 0 && device < WAIT_DEVICES_MAX, `device index ${device} outside the wait-for table`);
    this.b = device * WORDS_PER_DEVICE;
  }

  /** Publish what this device is about to block on (detail words as in `WaitStep`). */
  block(kind: WaitKind, peer: number, a = 0, b = 0, c = 0, d = 0, timed = false): void {
    const w = this.shared.words;
    Atomics.store(w, this.b + W_TIMED, timed ? 1 : 0);
    // Details first, kind last: a reader that sees the kind sees the details it belongs to.
    Atomics.store(w, this.b + W_PEER, peer);
    Atomics.store(w, this.b + W_A, a);
    Atomics.store(w, this.b + W_B, b);
    Atomics.store(w, this.b + W_C, c);
    Atomics.store(w, this.b + W_D, d);
    Atomics.store(w, this.b + W_SINCE, Atomics.add(w, TICKET_WORD, 1));
    Atomics.store(w, this.b + W_KIND, kind);
  }

  unblock(): void {
    Atomics.store(this.shared.words, this.b + W_KIND, WAIT_NONE);
  }

  /** Note a resv lock taken; false when `HELD_LOCKS_MAX` are held already. */
  holdLock(bufferId: number): boolean {
    const w = this.shared.words;
    const n = Atomics.load(w, this.b + W_HELD_COUNT);
    if (n >= HELD_LOCKS_MAX) return false;
    Atomics.store(w, this.b + W_HELD + n, bufferId);
    Atomics.store(w, this.b + W_HELD_COUNT, n + 1);
    return true;
  }

  dropLock(bufferId: number): void {
    const w = this.shared.words;
    const n = Atomics.load(w, this.b + W_HELD_COUNT);
    for (let i = 0; i < n; i++) {
      if (Atomics.load(w, this.b + W_HELD + i) !== bufferId) continue;
      // Keep the list dense: the last entry fills the hole.
      Atomics.store(w, this.b + W_HELD + i, Atomics.load(w, this.b + W_HELD + n - 1));
      Atomics.store(w, this.b + W_HELD_COUNT, n - 1);
      return;
    }
  }

  /** Buffers whose resv lock this device holds. */
  held(): number[] {
    const w = this.shared.words;
    const n = Atomics.load(w, this.b + W_HELD_COUNT);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(Atomics.load(w, this.b + W_HELD + i));
    return out;
  }

  emitted(seqno: number): void {
    Atomics.store(this.shared.words, this.b + W_EMITTED, seqno);
  }

  signalled(seqno: number): void {
    if (seqno > Atomics.load(this.shared.words, this.b + W_SIGNALLED)) {
      Atomics.store(this.shared.words, this.b + W_SIGNALLED, seqno);
    }
  }
}
