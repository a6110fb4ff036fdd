/**
 * A pipeline link: a bounded single-producer single-consumer ring of frame descriptors in shared memory.
 * Devices hand each other *descriptors* (which buffer, which fence, which frame); the bytes stay in the
 * buffer, so nothing is copied and no message is posted per frame.
 *
 * Layout (Int32 words, then Float64 slots):
 *   HEAD   items written (producer only)      TAIL   items read (consumer only)
 *   CLOSED producer finished (end of stream)   WAITERS sleepers on HEAD or TAIL
 *   ACKED  items the consumer acknowledged (consumer only; ACKED ≤ TAIL)
 *   READER_GONE  the consumer ended (crashed or stopped): pushes are dropped, as writes to a pipe
 *          nobody reads fail, so its producer is not left blocked on a link that will never drain
 *   slot i: [seq, bufferId, flags, spare] Int32 and [fence] Float64
 * The producer writes a slot, then publishes it with Atomics.store(HEAD); the consumer reads HEAD, then
 * the slot. A store-then-load pair on HEAD/TAIL orders the plain slot writes for the other side.
 * Sleepers wait on EVENTS, which every push, ack and close bumps: "add WAITERS; seen = EVENTS; re-check;
 * wait(EVENTS, seen)" against "change state; add EVENTS; if WAITERS notify". Waiting on HEAD or TAIL
 * instead would miss a close (it changes neither: a consumer that checked just before it would sleep on).
 * The total-order argument is the fence table's, so neither side sleeps through a hand-off or a close.
 *
 * Why ACKED, and why room is counted from it rather than from TAIL: a consumer publishes its READ fence
 * on a frame's buffer only after it has popped the frame, so between the pop and that fence the producer
 * could recycle the buffer without waiting for the reader — a real write-after-read race the
 * happens-before detector reports. A slot is free only once the consumer has acknowledged its frame
 * (published its fences, or moved on), the way a V4L2 buffer or a wl_buffer comes back to its producer.
 * A producer whose pool holds more buffers than the link holds frames then never reuses a buffer whose
 * reader has not yet fenced it.
 */
import { assert } from '../kernel/assert.js';

const HEAD = 0;
const TAIL = 1;
const CLOSED = 2;
const WAITERS = 3;
const CAPACITY = 4;
const EVENTS = 5;
const ACKED = 6;
const PRODUCER = 7; // device indices of the two ends (-1 unknown), for wait-for chains
const CONSUMER = 8;
const READER_GONE = 9;
const HEADER = 10;
const SLOT_INTS = 4;

export interface FrameDescriptor {
  seq: number;
  bufferId: number;
  /** Fence handle the consumer must wait on before reading, or 0 for none. */
  fence: number;
  flags: number;
}

/** A push: on the link, no room, or dropped because the consumer is gone (the caller keeps the fence). */
export type PushResult = 'pushed' | 'full' | 'dropped';

/** Descriptors per ring: a hard bound, as every queue in dmafarm has. */
export const LINK_CAPACITY_MAX = 64;

export class LinkRing {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  private readonly w: Int32Array;
  private readonly f: Float64Array;
  private readonly fenceBase: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.w = new Int32Array(sab);
    this.capacity = this.w[CAPACITY] ?? 0;
    assert(this.capacity > 0 && this.capacity <= LINK_CAPACITY_MAX, 'link ring without a capacity');
    this.f = new Float64Array(sab);
    this.fenceBase = Math.ceil(((HEADER + this.capacity * SLOT_INTS) * 4) / 8);
  }

  static create(
    capacity: number,
    ends: { producer: number; consumer: number } = { producer: -1, consumer: -1 },
  ): LinkRing {
    assert(
      Number.isInteger(capacity) && capacity > 0 && capacity <= LINK_CAPACITY_MAX,
      `bad link capacity ${capacity}`,
    );
    const ints = HEADER + capacity * SLOT_INTS;
    const sab = new SharedArrayBuffer(Math.ceil((ints * 4) / 8) * 8 + capacity * 8);
    const w = new Int32Array(sab);
    w[CAPACITY] = capacity;
    w[PRODUCER] = ends.producer;
    w[CONSUMER] = ends.consumer;
    return new LinkRing(sab);
  }

  /** The producing device's index (-1 unknown). */
  get producer(): number {
    return this.w[PRODUCER] ?? -1;
  }
  /** The consuming device's index (-1 unknown). */
  get consumer(): number {
    return this.w[CONSUMER] ?? -1;
  }

  get length(): number {
    return Atomics.load(this.w, HEAD) - Atomics.load(this.w, TAIL);
  }
  get closed(): boolean {
    return Atomics.load(this.w, CLOSED) !== 0;
  }
  get readerGone(): boolean {
    return Atomics.load(this.w, READER_GONE) !== 0;
  }
  /** A push would not wait: fewer than `capacity` frames are not yet acknowledged, or nobody reads. */
  canPush(): boolean {
    return this.readerGone || Atomics.load(this.w, HEAD) - Atomics.load(this.w, ACKED) < this.capacity;
  }
  /** Something to read, or the stream is over. */
  canPop(): boolean {
    return this.length > 0 || this.closed;
  }

  /** Push without waiting. */
  tryPush(d: FrameDescriptor): PushResult {
    assert(!this.closed, 'push on a closed link');
    if (this.readerGone) return 'dropped';
    const head = Atomics.load(this.w, HEAD);
    if (head - Atomics.load(this.w, ACKED) >= this.capacity) return 'full';
    const slot = head % this.capacity;
    const b = HEADER + slot * SLOT_INTS;
    this.w[b] = d.seq;
    this.w[b + 1] = d.bufferId;
    this.w[b + 2] = d.flags;
    this.f[this.fenceBase + slot] = d.fence;
    Atomics.store(this.w, HEAD, head + 1);
    this.wake();
    return 'pushed';
  }

  /** Pop without waiting; null when empty (check `closed` for end of stream). */
  tryPop(): FrameDescriptor | null {
    const tail = Atomics.load(this.w, TAIL);
    if (Atomics.load(this.w, HEAD) === tail) return null;
    const slot = tail % this.capacity;
    const b = HEADER + slot * SLOT_INTS;
    const d: FrameDescriptor = {
      seq: this.w[b] ?? 0,
      bufferId: this.w[b + 1] ?? 0,
      flags: this.w[b + 2] ?? 0,
      fence: this.f[this.fenceBase + slot] ?? 0,
    };
    // No wake: nobody sleeps on TAIL. A consumer sleeps for HEAD or CLOSED, a producer for room, which
    // only ACKED makes; waking a producer blocked on a full link here made it sleep again at once (two
    // context switches per frame and link).
    Atomics.store(this.w, TAIL, tail + 1);
    return d;
  }

  /** The consumer is done with the oldest popped frame's hand-off (its fences are published). */
  ack(): void {
    const acked = Atomics.load(this.w, ACKED);
    assert(acked < Atomics.load(this.w, TAIL), 'ack of a frame that was never popped');
    Atomics.store(this.w, ACKED, acked + 1);
    this.wake();
  }

  close(): void {
    Atomics.store(this.w, CLOSED, 1);
    this.wake();
  }

  /** The consumer is gone: wake a producer waiting for room, and drop what it pushes from now on. */
  closeReader(): void {
    Atomics.store(this.w, READER_GONE, 1);
    this.wake();
  }

  /** Blocking push (device workers): waits for room. */
  push(d: FrameDescriptor, timeoutMs = Number.POSITIVE_INFINITY): 'pushed' | 'dropped' | 'timeout' {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const r = this.tryPush(d);
      if (r !== 'full') return r;
      if (!this.sleep(deadline, () => this.canPush())) return 'timeout';
    }
  }

  /** Blocking pop (device workers): null at end of stream or on timeout. */
  pop(timeoutMs = Number.POSITIVE_INFINITY): FrameDescriptor | null {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const d = this.tryPop();
      if (d !== null) return d;
      if (this.closed) return null;
      if (!this.sleep(deadline, () => this.canPop())) return null;
    }
  }

  private sleep(deadline: number, ready: () => boolean): boolean {
    Atomics.add(this.w, WAITERS, 1);
    try {
      const seen = Atomics.load(this.w, EVENTS);
      if (ready()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.w, EVENTS, seen, left === Number.POSITIVE_INFINITY ? undefined : left);
      return true;
    } finally {
      Atomics.sub(this.w, WAITERS, 1);
    }
  }

  private wake(): void {
    Atomics.add(this.w, EVENTS, 1);
    if (Atomics.load(this.w, WAITERS) > 0) Atomics.notify(this.w, EVENTS);
  }
}
