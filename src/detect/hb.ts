/**
 * Happens-before race detection on dma-buf memory: vector clocks per device, epochs per buffer region
 * (FastTrack, Flanagan & Freund PLDI 2009; the check TSan's runtime does per shadow cell), with every piece
 * of shared state in ONE SharedArrayBuffer, so that the same code works when all devices share a thread
 * (sim host) and when each device is a worker (worker host).
 *
 * Contract:
 * - Every agent with a clock (a device, tid 0..HB_THREADS_MAX-1) owns one `HbClock`. Its vector clock is
 *   thread-local; only fence clocks, resv clocks and buffer shadow live in the shared buffer.
 * - Happens-before edges come only from our own primitives: `releaseToFence` just before
 *   `dma_fence_signal`, `acquireFence` after a wait observed the fence signalled; `acquireResv` right after
 *   taking a dma_resv lock, `releaseResv` right before dropping it. A release ticks the releaser's clock.
 * - A previous access by thread e at clock c happens-before the current one iff `c <= vc[e]`. A thread
 *   never races with itself.
 * - `access()` checks, then records. Ranges are kept (clipped to regions) so that two devices touching
 *   disjoint bytes of one region are never reported: a report always names an overlapping byte range
 *   that both accesses really touched. The price is that, as in FastTrack, the shadow holds one write
 *   per region and one read per (region, thread): an older record replaced by a newer one that does not
 *   cover the same bytes is forgotten (a possible missed race, never a false one).
 * - One thread's accesses in one epoch grow one record when their ranges overlap or touch (stripes); a
 *   gapped range replaces the record rather than bridging the gap (bytes nobody touched are never claimed).
 *   A read ordered before a write is dropped only when that write covers it (FastTrack's clearing, made
 *   safe for ranges).
 * - Misuse of these APIs (an out-of-range slot or tid, an access to a buffer never announced with
 *   `bufferCreated`) is a dmafarm bug: `assert` throws `KernelBug`.
 */
import { assert } from '../kernel/assert.js';
import { futexLock, futexUnlock } from '../kernel/futex.js';
import { RecyclePool } from '../kernel/recycle-pool.js';

/** Agents with a clock: device indices 0..15. A vector clock is this many Int32. */
export const HB_THREADS_MAX = 16;
/** Shadow granularity: a buffer is cut into this many regions (fewer when it is small). */
export const HB_REGIONS_PER_BUFFER = 8;
/** Region sizes are rounded up to whole pages. */
export const HB_REGION_ALIGN_BYTES = 4096;
/** Largest buffer the shadow can describe (byte offsets are stored in Int32). */
export const HB_BUFFER_SIZE_BYTES_MAX = 0x7fffffff;
/** Largest shared buffer `HbShared.create` agrees to allocate. */
export const HB_SHARED_BYTES_MAX = 1 << 30;

// --- the shared layout, defined once ---------------------------------------------------------------
//
// One SharedArrayBuffer, viewed whole as Int32 (`words`) and as Float64 (`f64`):
//
//   bytes [0, 64)                 header: HEADER_WORDS Int32 (magic, sizes; written once by create)
//   parked clocks                 HB_THREADS_MAX × HB_THREADS_MAX Int32: each thread's clock as it last
//                                   blocked or finished (HbClock.park), for the watchdog (releaseParked)
//   taken words                   HB_THREADS_MAX Int32: 1 once the watchdog released a thread's parked
//                                   clock; the thread ticks before its next access (HbClock.unpark)
//   fence clocks                  fenceSlots × HB_THREADS_MAX Int32, by fence slot (FenceTable.slotIndexOf)
//   resv clocks                   resvSlots × HB_THREADS_MAX Int32, by resv slot
//   shadow                        resvSlots × BUF_WORDS Int32, by the buffer's resv slot:
//                                   buffer header BUF_HEADER_WORDS (futex lock, size, region size, generation)
//                                   HB_REGIONS_PER_BUFFER × REGION_WORDS:
//                                     region header REGION_HEADER_WORDS (bitmask of threads with a read record)
//                                     RECS_PER_REGION records of REC_WORDS: [0] last write, [1 + t] last read by t
//   shadow floats (8-aligned)     resvSlots × BUF_F64 Float64: per record REC_F64 (timeNs, waited seqno)
//
//   total bytes = 1152 + 64·fenceSlots + 6912·resvSlots         (see hbSharedBytes)
//
// Why plain (non-Atomics) loads and stores on clocks and shadow are race-free:
// - Fence clock: the signaller writes it (releaseToFence) BEFORE dma_fence_signal publishes the signalled
//   state with an Atomics operation; a waiter reads it (acquireFence) only AFTER it observed that state with
//   an Atomics load. An Atomics write and the Atomics read that sees it synchronize-with each other in the
//   JS memory model, so every plain store sequenced before the signal happens-before every plain load
//   sequenced after the observation. A fence signals once, so nothing writes the clock after that. A slot
//   is zeroed (fenceCreated) only once it is reused, i.e. after its last reference was dropped.
// - Resv clock: read (acquireResv) and written (releaseResv) only while holding the dma_resv lock, whose
//   lock and unlock are Atomics operations (release→acquire again).
// - Shadow: read and written only under the buffer's own futex lock (B_LOCK), same argument.
// - Parked clock: its thread writes it just before it publishes that it blocks (an Atomics store in the
//   wait-for table) or before it reports that it finished; the watchdog reads it only after it saw the
//   thread blocked or finished, and after nothing moved for a while. The taken word is Atomics both ways.
// - The header is written once by `create` before the SAB is posted to any worker (postMessage orders it).
// Nothing here may be read outside those windows; the vector clock of a thread is that thread's own memory.

const HB_MAGIC = 0x48624331; // 'HbC1'
const H_MAGIC = 0;
const H_FENCE_SLOTS = 1;
const H_RESV_SLOTS = 2;
const H_THREADS_MAX = 3;
const H_REGIONS_PER_BUFFER = 4;
const HEADER_WORDS = 16;

// A record (Int32 words). Empty = clock 0 (every real clock is ≥ 1).
const R_TID = 0;
const R_CLOCK = 1;
const R_LO = 2; // byte range of the buffer, clipped to the region: [lo, hi)
const R_HI = 3;
const R_OP = 4;
const R_JOB = 5;
const R_WAITED_CTX = 6; // the fence context the accessor last waited on (for reports)
const REC_WORDS = 8; // word 7 spare: keeps records 32-byte aligned
// A record's floats (Float64).
const F_TIME_NS = 0;
const F_WAITED_SEQNO = 1; // a seqno may need 64 bits (dma_fence_init64); Float64 holds any safe integer
const REC_F64 = 2;

const RECS_PER_REGION = 1 + HB_THREADS_MAX; // [0] the last write, [1 + t] thread t's last read
const G_READERS = 0; // bit t set ⇔ thread t's read record is not empty
const REGION_HEADER_WORDS = 8;
const REGION_WORDS = REGION_HEADER_WORDS + RECS_PER_REGION * REC_WORDS;
const REGION_F64 = RECS_PER_REGION * REC_F64;

const B_LOCK = 0; // futex word (futex.ts)
const B_SIZE_BYTES = 1; // 0 = no buffer announced in this slot
const B_REGION_BYTES = 2;
const B_GENERATION = 3; // bufferCreated count on this slot (debugging aid)
const BUF_HEADER_WORDS = 16; // one 64-byte line: the lock word does not share a line with a neighbour's records
const BUF_WORDS = BUF_HEADER_WORDS + HB_REGIONS_PER_BUFFER * REGION_WORDS;
const BUF_F64 = HB_REGIONS_PER_BUFFER * REGION_F64;

const CLOCK_BYTES = HB_THREADS_MAX * 4;
const PARKED_WORDS = HB_THREADS_MAX * HB_THREADS_MAX;
const TAKEN_WORDS = HB_THREADS_MAX;
/** Bytes of shared state per resv slot: its clock, its shadow and the shadow's floats. */
const RESV_SLOT_BYTES = CLOCK_BYTES + BUF_WORDS * 4 + BUF_F64 * 8;

// Relationships the layout relies on, checked when the module loads.
assert(HB_THREADS_MAX <= 31, 'the readers bitmask is one Int32 word');
assert(CLOCK_BYTES % 64 === 0, 'clocks keep the shadow 64-byte aligned');
assert((BUF_WORDS * 4) % 64 === 0, 'each buffer shadow starts on its own cache line');
assert(HEADER_WORDS * 4 === 64, 'header is one cache line');
assert(((PARKED_WORDS + TAKEN_WORDS) * 4) % 64 === 0, 'parked clocks keep the fence clocks aligned');
assert(
  HEADER_WORDS * 4 + (PARKED_WORDS + TAKEN_WORDS) * 4 === 1152,
  'layout formula in the header comment is out of date',
);
assert(RESV_SLOT_BYTES === 6912, 'layout formula in the header comment is out of date');

/** Bytes of the shared buffer for the given capacities: 1152 + 64·fenceSlots + 6912·resvSlots. */
export function hbSharedBytes(sizes: { fenceSlots: number; resvSlots: number }): number {
  return (
    (HEADER_WORDS + PARKED_WORDS + TAKEN_WORDS) * 4 + sizes.fenceSlots * CLOCK_BYTES + sizes.resvSlots * RESV_SLOT_BYTES
  );
}

/** Region size of a buffer: ceil(size / HB_REGIONS_PER_BUFFER), rounded up to HB_REGION_ALIGN_BYTES. */
export function hbRegionBytes(sizeBytes: number): number {
  assert(
    Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= HB_BUFFER_SIZE_BYTES_MAX,
    `bad size ${sizeBytes}`,
  );
  const raw = Math.ceil(sizeBytes / HB_REGIONS_PER_BUFFER);
  return Math.ceil(raw / HB_REGION_ALIGN_BYTES) * HB_REGION_ALIGN_BYTES;
}

export type HbRaceKind = 'RAW' | 'WAR' | 'WAW';

/** One of the two accesses of a race. `lo`/`hi` is the byte range both accesses touched. */
export interface HbSide {
  tid: number;
  /** The accessor's own clock (its epoch) at the access. */
  clock: number;
  lo: number;
  hi: number;
  op: number;
  job: number;
  timeNs: number;
  waitedCtx: number;
  waitedSeqno: number;
}

export interface HbRace {
  kind: HbRaceKind;
  resvSlot: number;
  current: HbSide;
  previous: HbSide;
  /**
   * `vc[previous.tid]` as the current thread saw it: 0 = it never synchronised with the previous thread's
   * timeline; 0 < syncedClock < previous.clock = it synchronised with an older point (a stale fence wait).
   */
  syncedClock: number;
}

/** What the caller knows about an access, carried into reports. All integers except timeNs. */
export interface HbSite {
  op: number;
  job: number;
  timeNs: number;
  waitedCtx: number;
  waitedSeqno: number;
}

const NO_RACES: readonly HbRace[] = Object.freeze([]);

// Hot paths test first and only then call assert(false, message): a template literal passed straight to
// assert would be built (allocated) on every call.

function isInt32(x: number): boolean {
  return (x | 0) === x;
}

/** Shared states of finished runs on this thread (`HbShared.recycle`), at most this many. */
export const HB_SHARED_POOL_MAX = 4;
const hbPool = new RecyclePool<SharedArrayBuffer>(HB_SHARED_POOL_MAX);

/** The shared state: one SAB, created by the host, attached in each worker. */
export class HbShared {
  readonly sab: SharedArrayBuffer;
  readonly fenceSlots: number;
  readonly resvSlots: number;
  /** @internal Int32 view of the whole SAB. */ readonly words: Int32Array;
  /** @internal Float64 view of the whole SAB. */ readonly f64: Float64Array;
  /** @internal word index of fence slot 0's clock. */ readonly fenceBase: number;
  /** @internal word index of resv slot 0's clock. */ readonly resvBase: number;
  /** @internal word index of resv slot 0's shadow. */ readonly shadowBase: number;
  /** @internal Float64 index of resv slot 0's shadow floats. */ readonly shadowF64Base: number;

  private constructor(sab: SharedArrayBuffer) {
    assert(sab.byteLength >= HEADER_WORDS * 4 && sab.byteLength % 8 === 0, 'not an HbShared buffer (size)');
    const words = new Int32Array(sab);
    assert(words[H_MAGIC] === HB_MAGIC, 'not an HbShared buffer (magic)');
    assert(
      words[H_THREADS_MAX] === HB_THREADS_MAX && words[H_REGIONS_PER_BUFFER] === HB_REGIONS_PER_BUFFER,
      'HbShared created by a build with another layout',
    );
    this.sab = sab;
    this.words = words;
    this.f64 = new Float64Array(sab);
    this.fenceSlots = words[H_FENCE_SLOTS] ?? 0;
    this.resvSlots = words[H_RESV_SLOTS] ?? 0;
    assert(this.fenceSlots > 0 && this.resvSlots > 0, 'HbShared without capacity');
    assert(sab.byteLength === hbSharedBytes(this), 'HbShared buffer size does not match its header');
    this.fenceBase = HEADER_WORDS + PARKED_WORDS + TAKEN_WORDS;
    this.resvBase = this.fenceBase + this.fenceSlots * HB_THREADS_MAX;
    this.shadowBase = this.resvBase + this.resvSlots * HB_THREADS_MAX;
    this.shadowF64Base = ((this.shadowBase + this.resvSlots * BUF_WORDS) * 4) / 8;
    assert(Number.isInteger(this.shadowF64Base), 'shadow floats not 8-byte aligned');
  }

  static create(sizes: { fenceSlots: number; resvSlots: number }): HbShared {
    const { fenceSlots, resvSlots } = sizes;
    assert(Number.isInteger(fenceSlots) && fenceSlots > 0, `bad fenceSlots ${fenceSlots}`);
    assert(Number.isInteger(resvSlots) && resvSlots > 0, `bad resvSlots ${resvSlots}`);
    const bytes = hbSharedBytes(sizes);
    assert(bytes <= HB_SHARED_BYTES_MAX, `HbShared of ${bytes} bytes is over HB_SHARED_BYTES_MAX`);
    const pooled = hbPool.take((s) => {
      const h = new Int32Array(s, 0, HEADER_WORDS);
      return s.byteLength === bytes && h[H_FENCE_SLOTS] === fenceSlots && h[H_RESV_SLOTS] === resvSlots;
    });
    if (pooled !== undefined) {
      const hb = new HbShared(pooled);
      hb.reset();
      return hb;
    }
    const sab = new SharedArrayBuffer(bytes);
    const header = new Int32Array(sab, 0, HEADER_WORDS);
    header[H_FENCE_SLOTS] = fenceSlots;
    header[H_RESV_SLOTS] = resvSlots;
    header[H_THREADS_MAX] = HB_THREADS_MAX;
    header[H_REGIONS_PER_BUFFER] = HB_REGIONS_PER_BUFFER;
    header[H_MAGIC] = HB_MAGIC;
    return new HbShared(sab);
  }

  static attach(sab: SharedArrayBuffer): HbShared {
    return new HbShared(sab);
  }

  /**
   * The run is over and no thread will touch this state again: keep it for the next `create` of the same
   * sizes on this thread (a sweep makes one per run; ~0.5 MB zeroed and faulted in each time otherwise).
   */
  recycle(): void {
    hbPool.give(this.sab);
  }

  /**
   * A recycled state made as good as new: what is read before it is written — parked clocks, taken words,
   * fence and resv clocks, and each buffer's header (a zero size means no buffer: `access` asserts) — is
   * zeroed. Shadow records are zeroed by `bufferCreated` before any access may read them.
   */
  private reset(): void {
    const w = this.words;
    w.fill(0, HEADER_WORDS, this.shadowBase);
    for (let slot = 0; slot < this.resvSlots; slot++) {
      const b = this.shadowBase + slot * BUF_WORDS;
      w.fill(0, b, b + BUF_HEADER_WORDS);
    }
  }

  /** @internal */
  fenceWord(fenceSlot: number): number {
    if (!(isInt32(fenceSlot) && fenceSlot >= 0 && fenceSlot < this.fenceSlots))
      assert(false, `fence slot ${fenceSlot} out of range`);
    return this.fenceBase + fenceSlot * HB_THREADS_MAX;
  }

  /** @internal */
  resvWord(resvSlot: number): number {
    if (!(isInt32(resvSlot) && resvSlot >= 0 && resvSlot < this.resvSlots))
      assert(false, `resv slot ${resvSlot} out of range`);
    return this.resvBase + resvSlot * HB_THREADS_MAX;
  }

  /** @internal */
  bufferWord(resvSlot: number): number {
    if (!(isInt32(resvSlot) && resvSlot >= 0 && resvSlot < this.resvSlots))
      assert(false, `resv slot ${resvSlot} out of range`);
    return this.shadowBase + resvSlot * BUF_WORDS;
  }

  /** A new fence carries nothing until it is signalled: zero its clock (the slot may be reused). */
  fenceCreated(fenceSlot: number): void {
    const b = this.fenceWord(fenceSlot);
    this.words.fill(0, b, b + HB_THREADS_MAX);
  }

  /**
   * A buffer now lives in this resv slot: forget the previous buffer's accesses and lock history (slots
   * are reused after a free; stale shadow would produce false races). Call before the buffer is shared.
   */
  bufferCreated(resvSlot: number, sizeBytes: number): void {
    const regionBytes = hbRegionBytes(sizeBytes);
    const b = this.bufferWord(resvSlot);
    const rc = this.resvWord(resvSlot);
    const w = this.words;
    futexLock(w, b + B_LOCK);
    try {
      w.fill(0, b + BUF_HEADER_WORDS, b + BUF_WORDS);
      const fb = this.shadowF64Base + resvSlot * BUF_F64;
      this.f64.fill(0, fb, fb + BUF_F64);
      w.fill(0, rc, rc + HB_THREADS_MAX);
      w[b + B_SIZE_BYTES] = sizeBytes;
      w[b + B_REGION_BYTES] = regionBytes;
      w[b + B_GENERATION] = ((w[b + B_GENERATION] ?? 0) + 1) | 0;
    } finally {
      futexUnlock(w, b + B_LOCK);
    }
  }

  /**
   * The watchdog failed a fence of thread `tid` (a hang recovery, as a GPU reset: the job is over, its
   * accesses with it): the fence carries `tid`'s clock as it last blocked or finished, so the waiters it
   * wakes are ordered after everything `tid` did. Call before signalling the fence, with `tid` blocked.
   */
  releaseParked(tid: number, fenceSlot: number): void {
    assert(isInt32(tid) && tid >= 0 && tid < HB_THREADS_MAX, `tid ${tid} out of range`);
    // Taken first: should tid wake at once, it ticks before touching anything the waiters may race with.
    Atomics.store(this.words, HEADER_WORDS + PARKED_WORDS + tid, 1);
    const w = this.words;
    const from = HEADER_WORDS + tid * HB_THREADS_MAX;
    const to = this.fenceWord(fenceSlot);
    for (let e = 0; e < HB_THREADS_MAX; e++) {
      const c = w[from + e] ?? 0;
      if (c > (w[to + e] ?? 0)) w[to + e] = c;
    }
  }

  /** Copy of a fence's clock (reports, tests). Only meaningful after the fence signalled (see header). */
  fenceClock(fenceSlot: number): Int32Array {
    const b = this.fenceWord(fenceSlot);
    return this.words.slice(b, b + HB_THREADS_MAX);
  }

  /** One entry of a fence's clock: `tid`'s time as the fence released it (fenceClock without the copy). */
  fenceClockOf(fenceSlot: number, tid: number): number {
    assert(isInt32(tid) && tid >= 0 && tid < HB_THREADS_MAX, `tid ${tid} out of range`);
    return this.words[this.fenceWord(fenceSlot) + tid] ?? 0;
  }

  /** Copy of a resv lock's clock (reports, tests). Only meaningful under that resv's lock. */
  resvClock(resvSlot: number): Int32Array {
    const b = this.resvWord(resvSlot);
    return this.words.slice(b, b + HB_THREADS_MAX);
  }

  /** Size announced by bufferCreated, 0 if none. */
  bufferSizeBytes(resvSlot: number): number {
    const b = this.bufferWord(resvSlot);
    const w = this.words;
    futexLock(w, b + B_LOCK);
    const size = w[b + B_SIZE_BYTES] ?? 0;
    futexUnlock(w, b + B_LOCK);
    return size;
  }
}

/** One agent's vector clock (a device's), in its own thread's memory, and its view of the shared state. */
export class HbClock {
  readonly shared: HbShared;
  readonly tid: number;
  /** vc[e] = the latest clock of thread e this thread has synchronised with; vc[tid] = own epoch. */
  readonly vc: Int32Array;

  constructor(shared: HbShared, tid: number) {
    assert(shared instanceof HbShared, 'HbClock needs an HbShared');
    assert(isInt32(tid) && tid >= 0 && tid < HB_THREADS_MAX, `tid ${tid} out of range 0..${HB_THREADS_MAX - 1}`);
    this.shared = shared;
    this.tid = tid;
    this.vc = new Int32Array(HB_THREADS_MAX);
    this.vc[tid] = 1;
  }

  /** vc moved since `park` last published it. */
  private vcChanged = true;

  /** This thread's current epoch (its own clock). */
  get clock(): number {
    return this.vc[this.tid] ?? 0;
  }

  /** Zero a new fence's clock (see HbShared.fenceCreated). */
  fenceCreated(fenceSlot: number): void {
    this.shared.fenceCreated(fenceSlot);
  }

  /** Reset a buffer's shadow and resv clock (see HbShared.bufferCreated). */
  bufferCreated(resvSlot: number, sizeBytes: number): void {
    this.shared.bufferCreated(resvSlot, sizeBytes);
  }

  /** About to block, or finished: publish vc for the watchdog (see HbShared.releaseParked). No tick. */
  park(): void {
    // Blocks are frequent and most find vc as it was published last time.
    if (!this.vcChanged) return;
    this.vcChanged = false;
    this.shared.words.set(this.vc, HEADER_WORDS + this.tid * HB_THREADS_MAX);
  }

  /** Woken: when the watchdog released the parked clock meanwhile, tick, so what follows is not ordered by it. */
  unpark(): void {
    const taken = HEADER_WORDS + PARKED_WORDS + this.tid;
    if (Atomics.load(this.shared.words, taken) === 0 || Atomics.exchange(this.shared.words, taken, 0) === 0) return;
    const own = this.vc[this.tid] ?? 0;
    if (!(own > 0 && own < 0x7fffffff)) assert(false, `clock of thread ${this.tid} overflows`);
    this.vc[this.tid] = own + 1;
    this.vcChanged = true;
  }

  /** Just before dma_fence_signal: fence clock := max(fence clock, vc); then tick. */
  releaseToFence(fenceSlot: number): void {
    this.release(this.shared.fenceWord(fenceSlot));
  }

  /** After a wait observed the fence signalled: vc := max(vc, fence clock). */
  acquireFence(fenceSlot: number): void {
    this.acquire(this.shared.fenceWord(fenceSlot));
  }

  /** Right after taking the dma_resv lock: vc := max(vc, lock clock). */
  acquireResv(resvSlot: number): void {
    this.acquire(this.shared.resvWord(resvSlot));
  }

  /** Right before dropping the dma_resv lock: lock clock := max(lock clock, vc); then tick. */
  releaseResv(resvSlot: number): void {
    this.release(this.shared.resvWord(resvSlot));
  }

  private release(base: number): void {
    const w = this.shared.words;
    const vc = this.vc;
    for (let e = 0; e < HB_THREADS_MAX; e++) {
      const c = vc[e] ?? 0;
      if (c > (w[base + e] ?? 0)) w[base + e] = c;
    }
    const own = vc[this.tid] ?? 0;
    if (!(own > 0 && own < 0x7fffffff)) assert(false, `clock of thread ${this.tid} overflows`);
    vc[this.tid] = own + 1;
    this.vcChanged = true;
  }

  private acquire(base: number): void {
    const w = this.shared.words;
    const vc = this.vc;
    // Every shared clock holds our epoch from before a release, which then ticked: a larger one is a clock
    // that was never reset (fenceCreated/bufferCreated missing) or two HbClocks with one tid.
    if (!((w[base + this.tid] ?? 0) < (vc[this.tid] ?? 0)))
      assert(false, `thread ${this.tid} acquires its own future epoch`);
    for (let e = 0; e < HB_THREADS_MAX; e++) {
      const c = w[base + e] ?? 0;
      if (c > (vc[e] ?? 0)) {
        vc[e] = c;
        this.vcChanged = true;
      }
    }
  }

  /**
   * A read (`write` false) or write of bytes [lo, hi) of the buffer in `resvSlot`: check every region the
   * range touches against the shadow, then record it. Returns the races found, at most one per
   * (kind, previous tid); an empty frozen array (no allocation) when there is none.
   */
  access(resvSlot: number, lo: number, hi: number, write: boolean, site: HbSite): readonly HbRace[] {
    const sh = this.shared;
    const b = sh.bufferWord(resvSlot);
    assert(isInt32(site.op) && isInt32(site.job) && isInt32(site.waitedCtx), 'site op/job/waitedCtx not int32');
    assert(Number.isSafeInteger(site.waitedSeqno) && typeof site.timeNs === 'number', 'bad site seqno/time');
    const w = sh.words;
    const f = sh.f64;
    const vc = this.vc;
    const tid = this.tid;
    const me = vc[tid] ?? 0;
    const bit = 1 << tid;
    let races: HbRace[] | null = null;
    futexLock(w, b + B_LOCK);
    try {
      const size = w[b + B_SIZE_BYTES] ?? 0;
      if (!(size > 0)) assert(false, `access to resv slot ${resvSlot}, which has no buffer (bufferCreated missing)`);
      if (!(isInt32(lo) && isInt32(hi) && lo >= 0 && lo <= hi && hi <= size))
        assert(false, `range [${lo}, ${hi}) of ${size}`);
      if (lo === hi) return NO_RACES;
      const rb = w[b + B_REGION_BYTES] ?? 0;
      const r1 = Math.floor((hi - 1) / rb);
      const fBuf = sh.shadowF64Base + resvSlot * BUF_F64;
      for (let r = Math.floor(lo / rb); r <= r1; r++) {
        const rlo = Math.max(lo, r * rb);
        const rhi = Math.min(hi, (r + 1) * rb);
        const reg = b + BUF_HEADER_WORDS + r * REGION_WORDS;
        const recs = reg + REGION_HEADER_WORDS;
        const fRecs = fBuf + r * REGION_F64;
        // The last write: RAW for a read, WAW for a write.
        const wc = w[recs + R_CLOCK] ?? 0;
        const wt = w[recs + R_TID] ?? 0;
        if (wc !== 0 && wt !== tid && wc > (vc[wt] ?? 0)) {
          const olo = Math.max(rlo, w[recs + R_LO] ?? 0);
          const ohi = Math.min(rhi, w[recs + R_HI] ?? 0);
          if (olo < ohi) races = this.report(races, write ? 'WAW' : 'RAW', resvSlot, recs, fRecs, olo, ohi, site);
        }
        if (write) {
          // Other threads' last reads: WAR unless they happen-before this write. Ordered ones are cleared
          // when this write covers them (below).
          let readers = w[reg + G_READERS] ?? 0;
          let keep = 0;
          while (readers !== 0) {
            const low = readers & -readers;
            readers ^= low;
            const u = 31 - Math.clz32(low);
            const rr = recs + (1 + u) * REC_WORDS;
            const rc = w[rr + R_CLOCK] ?? 0;
            const rlo2 = w[rr + R_LO] ?? 0;
            const rhi2 = w[rr + R_HI] ?? 0;
            if (rc <= (vc[u] ?? 0)) {
              // Ordered before this write (always so for our own read). Forget it only when this write covers
              // it: a later write racing with those bytes then races with this one too. A read of bytes this
              // write did not touch stays, or a later unordered write to them would go unreported.
              if (rlo <= rlo2 && rhi2 <= rhi) {
                w[rr + R_CLOCK] = 0;
                continue;
              }
            } else {
              const olo = Math.max(rlo, rlo2);
              const ohi = Math.min(rhi, rhi2);
              if (olo < ohi) races = this.report(races, 'WAR', resvSlot, rr, fRecs + (1 + u) * REC_F64, olo, ohi, site);
            }
            keep |= low;
          }
          w[reg + G_READERS] = keep;
          if (wt === tid && wc === me && mergeable(w, recs, rlo, rhi)) merge(w, recs, rlo, rhi);
          else store(w, f, recs, fRecs, tid, me, rlo, rhi, site);
        } else {
          const rr = recs + (1 + tid) * REC_WORDS;
          if (w[rr + R_CLOCK] === me && mergeable(w, rr, rlo, rhi)) merge(w, rr, rlo, rhi);
          else store(w, f, rr, fRecs + (1 + tid) * REC_F64, tid, me, rlo, rhi, site);
          w[reg + G_READERS] = (w[reg + G_READERS] ?? 0) | bit;
        }
      }
    } finally {
      futexUnlock(w, b + B_LOCK);
    }
    return races ?? NO_RACES;
  }

  /** Cold path: build (or widen) the report for the record at word `rec`, overlap [lo, hi). */
  private report(
    races: HbRace[] | null,
    kind: HbRaceKind,
    resvSlot: number,
    rec: number,
    fRec: number,
    lo: number,
    hi: number,
    site: HbSite,
  ): HbRace[] {
    const w = this.shared.words;
    const f = this.shared.f64;
    const ptid = w[rec + R_TID] ?? 0;
    const pclock = w[rec + R_CLOCK] ?? 0;
    // Our own record from a later epoch than ours means two HbClocks ran with one tid on this shadow
    // (a restarted device without bufferCreated).
    assert(ptid !== this.tid && pclock > 0, `thread ${this.tid} races with its own record (tid reused?)`);
    const list = races ?? [];
    for (const old of list) {
      if (old.kind !== kind || old.previous.tid !== ptid) continue;
      // One report per (kind, previous tid): widen it when the next region continues the same record.
      if (old.previous.clock === pclock && old.previous.hi === lo) {
        old.previous.hi = hi;
        old.current.hi = hi;
      }
      return list;
    }
    list.push({
      kind,
      resvSlot,
      current: {
        tid: this.tid,
        clock: this.vc[this.tid] ?? 0,
        lo,
        hi,
        op: site.op,
        job: site.job,
        timeNs: site.timeNs,
        waitedCtx: site.waitedCtx,
        waitedSeqno: site.waitedSeqno,
      },
      previous: {
        tid: ptid,
        clock: pclock,
        lo,
        hi,
        op: w[rec + R_OP] ?? 0,
        job: w[rec + R_JOB] ?? 0,
        timeNs: f[fRec + F_TIME_NS] ?? 0,
        waitedCtx: w[rec + R_WAITED_CTX] ?? 0,
        waitedSeqno: f[fRec + F_WAITED_SEQNO] ?? 0,
      },
      syncedClock: this.vc[ptid] ?? 0,
    });
    return list;
  }
}

/**
 * Same thread, same epoch: one record may grow to cover both ranges, but only when they overlap or touch.
 * Bridging a gap would claim bytes nobody touched (two devices writing interleaved halves of each row
 * would then be reported); a gapped range replaces the record instead (a possible miss, never a false race).
 */
function mergeable(w: Int32Array, rec: number, lo: number, hi: number): boolean {
  return (w[rec + R_LO] ?? 0) <= hi && lo <= (w[rec + R_HI] ?? 0);
}

function merge(w: Int32Array, rec: number, lo: number, hi: number): void {
  if (lo < (w[rec + R_LO] ?? 0)) w[rec + R_LO] = lo;
  if (hi > (w[rec + R_HI] ?? 0)) w[rec + R_HI] = hi;
}

function store(
  w: Int32Array,
  f: Float64Array,
  rec: number,
  fRec: number,
  tid: number,
  clock: number,
  lo: number,
  hi: number,
  site: HbSite,
): void {
  w[rec + R_TID] = tid;
  w[rec + R_CLOCK] = clock;
  w[rec + R_LO] = lo;
  w[rec + R_HI] = hi;
  w[rec + R_OP] = site.op;
  w[rec + R_JOB] = site.job;
  w[rec + R_WAITED_CTX] = site.waitedCtx;
  f[fRec + F_TIME_NS] = site.timeNs;
  f[fRec + F_WAITED_SEQNO] = site.waitedSeqno;
}
