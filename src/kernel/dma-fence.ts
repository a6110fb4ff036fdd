/**
 * dma_fence in shared memory (drivers/dma-buf/dma-fence.c), usable from every thread at Atomics speed.
 *
 * Contract:
 * - A fence lives in a slot of a fixed-capacity table in one SharedArrayBuffer that every thread maps.
 *   A handle is `generation × SLOT_SPAN + slot`; freeing a slot bumps its generation, so a stale handle
 *   (a use after the last `dmaFencePut`) never observes the fence that reuses the slot: every operation
 *   checks the generation first and reports `fence-stale-handle`.
 * - A fence signals exactly once: the first `dmaFenceSignal` returns 0, every later one -EINVAL (classic
 *   behaviour, kernel-semantics §0 V1). The error is settable only before the signal. The timestamp is
 *   written before the state flips, so whoever sees SIGNALED sees the timestamp.
 * - Waiting never loses a wakeup (see the layout below) and works from any thread: `dmaFenceWaitTimeout`
 *   blocks in Atomics.wait (device workers, tests); `dmaFenceWaitTimeoutAsync` uses Atomics.waitAsync and
 *   never blocks the kernel thread's event loop.
 * - Callbacks are JavaScript functions, so they belong to the thread that added them. A signal from the
 *   same thread runs that thread's callbacks synchronously, FIFO, under the fence lock, as the kernel does.
 *   A signal from another thread wakes each other thread's watcher, which runs its callbacks FIFO under the
 *   fence lock. `dmaFenceAddCallback` on a signalled fence returns -ENOENT and the callback never runs.
 * - Misuse (double signal is *not* misuse, it is a return value) — setting an error after the signal,
 *   using a stale handle, putting a reference that is not held — goes to the table's `onMisuse` hook:
 *   a Finding on the kernel thread, a message to the kernel from a worker. Broken table invariants are
 *   KernelBugs.
 * - The per-fence lock is the futex mutex of futex.ts; `…Locked` functions assert it is
 *   held by this thread on their first line. Taking it twice on one thread is a KernelBug (it would hang).
 */
import { assert } from './assert.js';
import { EINVAL, ENOENT, ENOMEM, type Errno, MAX_ERRNO } from './errno.js';
import { futexLock, futexUnlock } from './futex.js';

// --- the shared layout, defined once ----------------------------------------------------------
//
// Header (Int32 words):
const H_CONTEXT_NEXT = 0; // next fence context; contexts start at 1, context 0 is the stub's
const H_FREE_LOCK = 1; // futex mutex guarding the free-slot stack
const H_FREE_TOP = 2; // number of slots on the free stack
const H_LIVE = 3; // fences currently allocated (for leak checks)
const H_CAPACITY = 4;
const H_ANY_WAITERS = 5; // threads in dma_fence_wait_any (poll): signallers then bump H_SIGNAL_SEQ
const H_SIGNAL_SEQ = 6; // the doorbell wait-any sleeps on
// Words 16..47: the kinds of fence this table has seen, as hashes of their names. A slot stores the index
// of its kind here. Ops are JavaScript and each thread registers its own, by name; so a kind means the
// same thing on every thread whatever the import order, and a thread that never imported a kind's module
// fails loudly the first time it needs that kind's ops.
const H_OPS_HASH = 16;
const OPS_IDS_MAX = 32;
const HEADER_WORDS = H_OPS_HASH + OPS_IDS_MAX;
//
// Slot (16 Int32 words = 64 bytes, one cache line, so neighbouring fences never false-share):
const S_STATE = 0; // the futex word waiters sleep on: FREE → ACTIVE → SIGNALED
const S_GEN = 1; // generation; bumped when the slot is freed
const S_REFS = 2; // kref
const S_LOCK = 3; // fence->lock: 0 unlocked, 1 locked, 2 locked with sleepers
const S_FLAGS = 4; // DMA_FENCE_FLAG_* bits
const S_ERROR = 5; // 0 or a negative errno; written only under the lock and before SIGNALED
const S_OPS = 6; // index into the ops registry (the same on every thread)
const S_WAITERS = 7; // threads (and async watchers) about to sleep or sleeping on S_STATE
const S_CONTEXT_LO = 8;
const S_CONTEXT_HI = 9;
const S_SEQNO_LO = 10;
const S_SEQNO_HI = 11;
const S_TIMESTAMP_F64 = 12; // Float64 at words 12–13: signal time, ns
const S_AUX = 14; // ops-private (e.g. a sw_sync timeline id)
const S_CALLBACKS = 15; // callbacks pending on any thread: release with callbacks pending is a WARN
const SLOT_WORDS = 16;
//
// Why the orderings avoid lost wakeups. A waiter does   add(WAITERS,1); wait(STATE, ACTIVE)
// and a signaller does                                   store(STATE, SIGNALED); if load(WAITERS) notify.
// All four are sequentially consistent. If the signaller's load of WAITERS misses the waiter's add, the
// add comes after that load in the single total order, hence after the store of SIGNALED, so the waiter's
// wait sees STATE ≠ ACTIVE and returns at once ("not-equal"). If the load sees the add, notify is called,
// and Atomics.wait's check-and-sleep is atomic with respect to notify. Either way nobody sleeps through a
// signal. Skipping notify when WAITERS is 0 is what keeps an unwaited signal at two atomic operations.
//
// Waiting for any of several fences (poll, dma_fence_wait_any_timeout) cannot rely on callbacks: a thread
// blocked in Atomics.wait cannot run them. So such a waiter does   add(ANY_WAITERS,1); seq = load(SEQ);
// check every fence; wait(SEQ, seq)   and every signaller, after its store of SIGNALED, does
// if load(ANY_WAITERS) { add(SEQ,1); notify(SEQ) }. The same total-order argument applies twice: a missed
// ANY_WAITERS means the waiter's fence check comes after the store and sees SIGNALED; a bump of SEQ that
// lands before the waiter's load of SEQ is also before its fence check, which then sees SIGNALED.
//
// The timestamp and error are plain stores made before the seq-cst store of SIGNALED; a reader that
// Atomics.loads SIGNALED first is ordered after them, so it reads the final timestamp and error.

export const STATE_FREE = 0;
export const STATE_ACTIVE = 1;
export const STATE_SIGNALED = 2;

/** `enum dma_fence_flag_bits` (include/linux/dma-fence.h). */
export const DMA_FENCE_FLAG_SEQNO64_BIT = 0;
export const DMA_FENCE_FLAG_SIGNALED_BIT = 1;
export const DMA_FENCE_FLAG_TIMESTAMP_BIT = 2;
export const DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 3;
export const DMA_FENCE_FLAG_USER_BITS = 4;

/** The largest table: handles must stay exact in a double (gen × SLOT_SPAN + slot < 2^53). */
export const FENCE_COUNT_MAX_LIMIT = 1 << 20;
const SLOT_SPAN = FENCE_COUNT_MAX_LIMIT;
/** `MAX_SCHEDULE_TIMEOUT`: wait forever. */
export const MAX_SCHEDULE_TIMEOUT = Number.POSITIVE_INFINITY;
/** The stub fence always occupies slot 0 (`dma_fence_get_stub`). */
const STUB_SLOT = 0;

export type FenceHandle = number;

/** One sleep a waiting loop asks for: while `words[index] === value`, for at most `timeoutMs`. */
interface SleepOn {
  words: Int32Array;
  index: number;
  value: number;
  timeoutMs: number;
}

function timeoutArg(ms: number): number | undefined {
  return ms === Number.POSITIVE_INFINITY ? undefined : ms;
}

/** Run a waiting loop with Atomics.wait (blocks this thread). */
function driveBlocking<T>(loop: Generator<SleepOn, T, void>): T {
  for (;;) {
    const step = loop.next();
    if (step.done) return step.value;
    const s = step.value;
    Atomics.wait(s.words, s.index, s.value, timeoutArg(s.timeoutMs));
  }
}

/** Run a waiting loop with Atomics.waitAsync (the event loop keeps running). */
async function driveAsync<T>(loop: Generator<SleepOn, T, void>): Promise<T> {
  for (;;) {
    const step = loop.next();
    if (step.done) return step.value;
    const s = step.value;
    const r = Atomics.waitAsync(s.words, s.index, s.value, timeoutArg(s.timeoutMs));
    if (r.async) await r.value;
  }
}

/** What a kind of fence provides (`struct dma_fence_ops`); registered once, by id, on every thread. */
export interface DmaFenceOps {
  readonly getDriverName: (t: FenceTable, f: FenceHandle) => string;
  readonly getTimelineName: (t: FenceTable, f: FenceHandle) => string;
  /** Lazily report completion (`ops->signaled`); the core then signals the fence. */
  readonly signaled?: (t: FenceTable, f: FenceHandle) => boolean;
  /** First enable; returning false means "already done": the core signals at once. */
  readonly enableSignaling?: (t: FenceTable, f: FenceHandle) => boolean;
  /** Called when the last reference goes, before the slot is freed. */
  readonly release?: (t: FenceTable, f: FenceHandle) => void;
  readonly setDeadline?: (t: FenceTable, f: FenceHandle, deadlineNs: number) => void;
}

/** This thread's kinds of fence, by the hash of their name (the kind token). */
const opsByKind = new Map<number, { name: string; ops: DmaFenceOps }>();

/** FNV-1a of the ops name, never 0 (0 marks an id no thread has used yet). */
function opsNameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 1;
}

/**
 * Register a kind of fence (at module load) and get its kind token, the hash of its name. Registering the
 * same name again returns the same token; two names with one hash would be ambiguous and are refused.
 */
export function registerFenceOps(name: string, ops: DmaFenceOps): number {
  const kind = opsNameHash(name);
  const existing = opsByKind.get(kind);
  if (existing !== undefined) {
    assert(existing.name === name, `fence kinds '${existing.name}' and '${name}' hash alike`);
    return kind;
  }
  assert(opsByKind.size < OPS_IDS_MAX, `more than ${OPS_IDS_MAX} kinds of fence`);
  opsByKind.set(kind, { name, ops: Object.freeze(ops) });
  return kind;
}

export const stubFenceOps = registerFenceOps('stub', {
  getDriverName: () => 'stub',
  getTimelineName: () => 'stub',
});

/** A callback registration (`struct dma_fence_cb`): one fence at a time. */
export interface DmaFenceCb {
  func: (fence: FenceHandle, cb: DmaFenceCb) => void;
}

export interface FenceMisuse {
  rule: string;
  message: string;
  fence: FenceHandle;
}

export interface FenceTableOptions {
  /** CLOCK_MONOTONIC ns; must be the same clock on every thread (process.hrtime is). */
  nowNs?: () => number;
  onMisuse?: (m: FenceMisuse) => void;
}

/**
 * One thread's view of the shared fence table. Create it with `FenceTable.create(capacity)` on the kernel
 * thread and `FenceTable.attach(sab)` everywhere else.
 */
export class FenceTable {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly freeStack: Int32Array;
  private readonly words: Int32Array;
  private readonly f64: Float64Array;
  private readonly slotBase: number;
  nowNs: () => number;
  onMisuse: (m: FenceMisuse) => void;
  /** Slots whose lock this thread holds (recursion would deadlock: a KernelBug). */
  private readonly held = new Set<number>();
  /** This thread's callbacks, per slot, FIFO. */
  /** Keyed by handle (generation included), so a slot's next fence never inherits stale callbacks. */
  private readonly callbacks = new Map<FenceHandle, DmaFenceCb[]>();
  private readonly watching = new Set<FenceHandle>();
  /** A pending Atomics.waitAsync does not keep a thread alive; this timer does while watchers wait. */
  private keepAlive: ReturnType<typeof setInterval> | null = null;

  private constructor(sab: SharedArrayBuffer, options: FenceTableOptions) {
    this.sab = sab;
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.capacity = this.header[H_CAPACITY] ?? 0;
    assert(this.capacity > 0 && this.capacity <= FENCE_COUNT_MAX_LIMIT, 'fence table without a capacity');
    this.freeStack = new Int32Array(sab, HEADER_WORDS * 4, this.capacity);
    const slotBytes = Math.ceil(((HEADER_WORDS + this.capacity) * 4) / 64) * 64;
    this.slotBase = slotBytes / 4;
    this.words = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    this.nowNs = options.nowNs ?? (() => Number(process.hrtime.bigint()));
    this.onMisuse = options.onMisuse ?? (() => {});
  }

  static bytesFor(capacity: number): number {
    return Math.ceil(((HEADER_WORDS + capacity) * 4) / 64) * 64 + capacity * SLOT_WORDS * 4;
  }

  /** Boot-time creation (kernel thread). Slot 0 is the stub; the rest start free. */
  static create(capacity: number, options: FenceTableOptions = {}): FenceTable {
    assert(Number.isInteger(capacity) && capacity >= 2 && capacity <= FENCE_COUNT_MAX_LIMIT, 'bad capacity');
    const sab = new SharedArrayBuffer(FenceTable.bytesFor(capacity));
    const header = new Int32Array(sab, 0, HEADER_WORDS);
    header[H_CAPACITY] = capacity;
    header[H_CONTEXT_NEXT] = 1;
    const t = new FenceTable(sab, options);
    // Lowest slots on top of the stack, so allocation order is deterministic: 1, 2, 3, ...
    let top = 0;
    for (let s = capacity - 1; s >= 1; s--) t.freeStack[top++] = s;
    header[H_FREE_TOP] = top;
    const stub = t.base(STUB_SLOT);
    t.words[stub + S_GEN] = 1;
    t.words[stub + S_REFS] = 1; // the global reference; never dropped
    t.words[stub + S_OPS] = t.kindIndex(stubFenceOps);
    t.words[stub + S_STATE] = STATE_ACTIVE;
    return t;
  }

  /** Map an existing table (device workers). */
  static attach(sab: SharedArrayBuffer, options: FenceTableOptions = {}): FenceTable {
    return new FenceTable(sab, options);
  }

  get liveCount(): number {
    return Atomics.load(this.header, H_LIVE);
  }

  /** Every live fence handle (a scan of the table: for teardown and leak reports, not hot paths). */
  liveHandles(): FenceHandle[] {
    const out: FenceHandle[] = [];
    for (let slot = 0; slot < this.capacity; slot++) {
      const b = this.base(slot);
      if (Atomics.load(this.words, b + S_STATE) === STATE_FREE) continue;
      out.push(Atomics.load(this.words, b + S_GEN) * SLOT_SPAN + slot);
    }
    return out;
  }

  /** This thread's callback watchers still registered (for tests that must order against them). */
  get watcherCount(): number {
    return this.watching.size;
  }

  // --- slots and handles ---
  private base(slot: number): number {
    return this.slotBase + slot * SLOT_WORDS;
  }
  private static slotOf(f: FenceHandle): number {
    return f % SLOT_SPAN;
  }
  /** The slot a handle names (0..capacity-1): an index for per-fence side tables such as the HB clocks. */
  slotIndexOf(f: FenceHandle): number {
    return FenceTable.slotOf(f);
  }
  private static genOf(f: FenceHandle): number {
    return Math.floor(f / SLOT_SPAN);
  }

  /** Base word of a live fence, or -1 after reporting a stale or bogus handle. */
  private live(f: FenceHandle, site: string): number {
    if (!Number.isSafeInteger(f) || f < 0) {
      this.onMisuse({ rule: 'fence-bad-handle', message: `${site}: ${String(f)} is not a fence handle`, fence: f });
      return -1;
    }
    const slot = FenceTable.slotOf(f);
    if (slot >= this.capacity) {
      this.onMisuse({ rule: 'fence-bad-handle', message: `${site}: handle ${f} is outside the table`, fence: f });
      return -1;
    }
    const b = this.base(slot);
    if (Atomics.load(this.words, b + S_GEN) !== FenceTable.genOf(f) || Atomics.load(this.words, b + S_STATE) === 0) {
      this.onMisuse({
        rule: 'fence-stale-handle',
        message: `${site}: fence ${f} was already released (use after dma_fence_put)`,
        fence: f,
      });
      return -1;
    }
    return b;
  }

  /** True when `f` names a live fence (no report): for callers that validate user input. */
  isLive(f: FenceHandle): boolean {
    if (!Number.isSafeInteger(f) || f < 0 || FenceTable.slotOf(f) >= this.capacity) return false;
    const b = this.base(FenceTable.slotOf(f));
    return Atomics.load(this.words, b + S_GEN) === FenceTable.genOf(f) && Atomics.load(this.words, b + S_STATE) !== 0;
  }

  // --- the fence lock (futex mutex) ---
  lock(f: FenceHandle): void {
    const slot = FenceTable.slotOf(f);
    assert(!this.held.has(slot), `fence ${f}: lock taken twice on one thread (would deadlock)`);
    futexLock(this.words, this.base(slot) + S_LOCK);
    this.held.add(slot);
  }

  unlock(f: FenceHandle): void {
    const slot = FenceTable.slotOf(f);
    assert(this.held.delete(slot), `fence ${f}: unlock of a lock this thread does not hold`);
    futexUnlock(this.words, this.base(slot) + S_LOCK);
  }

  assertLocked(f: FenceHandle): void {
    assert(this.held.has(FenceTable.slotOf(f)), `fence ${f}: caller must hold the fence lock`);
  }

  // --- field access (for ops and the kernel objects built on fences) ---
  contextOf(f: FenceHandle): number {
    const b = this.base(FenceTable.slotOf(f));
    return (this.words[b + S_CONTEXT_HI] ?? 0) * 2 ** 32 + ((this.words[b + S_CONTEXT_LO] ?? 0) >>> 0);
  }
  seqnoOf(f: FenceHandle): number {
    const b = this.base(FenceTable.slotOf(f));
    return ((this.words[b + S_SEQNO_HI] ?? 0) >>> 0) * 2 ** 32 + ((this.words[b + S_SEQNO_LO] ?? 0) >>> 0);
  }
  flagsOf(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_FLAGS);
  }
  opsOf(f: FenceHandle): DmaFenceOps {
    const kind = this.opsIdOf(f);
    const entry = opsByKind.get(kind);
    assert(entry !== undefined, `fence ${f}: its kind is not registered on this thread (import its module)`);
    return entry.ops;
  }

  /** The table's index for a kind, assigned on first use by any thread. */
  private kindIndex(kind: number): number {
    for (let i = 0; i < OPS_IDS_MAX; i++) {
      const seen = Atomics.compareExchange(this.header, H_OPS_HASH + i, 0, kind);
      if (seen === 0 || seen === kind) return i;
    }
    assert(false, `fence table has no room for another kind (${OPS_IDS_MAX})`);
  }

  /** The fence's kind token (what `registerFenceOps` returned for its ops). */
  opsIdOf(f: FenceHandle): number {
    const i = this.words[this.base(FenceTable.slotOf(f)) + S_OPS] ?? -1;
    return Atomics.load(this.header, H_OPS_HASH + i);
  }
  auxOf(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_AUX);
  }
  refCountOf(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_REFS);
  }
  /** Raw state word: for tests that must see the table itself. */
  stateOf(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_STATE);
  }
  /** Signal time in ns (valid once TIMESTAMP is set). */
  timestampOf(f: FenceHandle): number {
    return this.f64[(this.base(FenceTable.slotOf(f)) + S_TIMESTAMP_F64) / 2] ?? 0;
  }
  errorOf(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_ERROR);
  }

  // --- allocation ---
  /** @internal `dma_fence_init` backend: a free slot, or -ENOMEM when the table is full. */
  allocSlot(opsId: number, context: number, seqno: number, flags: number, aux: number): FenceHandle | Errno {
    assert(opsByKind.has(opsId), `fence kind ${opsId} is not registered on this thread`);
    const kindIdx = this.kindIndex(opsId);
    assert(Number.isSafeInteger(context) && context >= 0, `bad context ${context}`);
    assert(Number.isSafeInteger(seqno) && seqno >= 0, `bad seqno ${seqno}`);
    const slot = this.popFree();
    if (slot < 0) return -ENOMEM;
    const b = this.base(slot);
    assert(Atomics.load(this.words, b + S_STATE) === STATE_FREE, `slot ${slot} on the free stack is in use`);
    const w = this.words;
    w[b + S_REFS] = 1;
    w[b + S_LOCK] = 0;
    w[b + S_FLAGS] = flags;
    w[b + S_ERROR] = 0;
    w[b + S_OPS] = kindIdx;
    // S_WAITERS is not reset: a watcher of the slot's previous fence may still be registered, and it will
    // subtract exactly what it added. Zeroing it here would drive the count negative and skip a notify.
    w[b + S_CONTEXT_LO] = (context % 2 ** 32) | 0;
    w[b + S_CONTEXT_HI] = Math.floor(context / 2 ** 32);
    w[b + S_SEQNO_LO] = (seqno % 2 ** 32) | 0;
    w[b + S_SEQNO_HI] = Math.floor(seqno / 2 ** 32) | 0;
    this.f64[(b + S_TIMESTAMP_F64) / 2] = 0;
    w[b + S_AUX] = aux;
    w[b + S_CALLBACKS] = 0;
    const gen = Atomics.load(w, b + S_GEN);
    // Publishing ACTIVE last: a stale handle check that reads ACTIVE also reads the new generation.
    Atomics.store(w, b + S_STATE, STATE_ACTIVE);
    Atomics.add(this.header, H_LIVE, 1);
    return gen * SLOT_SPAN + slot;
  }

  private popFree(): number {
    futexLock(this.header, H_FREE_LOCK);
    const top = this.header[H_FREE_TOP] ?? 0;
    let slot = -1;
    if (top > 0) {
      slot = this.freeStack[top - 1] ?? -1;
      this.header[H_FREE_TOP] = top - 1;
    }
    futexUnlock(this.header, H_FREE_LOCK);
    return slot;
  }

  private pushFree(slot: number): void {
    futexLock(this.header, H_FREE_LOCK);
    const top = this.header[H_FREE_TOP] ?? 0;
    assert(top < this.capacity, 'fence free stack overflow');
    this.freeStack[top] = slot;
    this.header[H_FREE_TOP] = top + 1;
    futexUnlock(this.header, H_FREE_LOCK);
  }

  /** @internal Last reference gone: bump the generation first, so stale handles fail from here on. */
  freeSlot(f: FenceHandle): void {
    const slot = FenceTable.slotOf(f);
    const b = this.base(slot);
    Atomics.add(this.words, b + S_GEN, 1);
    Atomics.store(this.words, b + S_STATE, STATE_FREE);
    // Wake watchers of the dead fence (on any thread) so they retire now, not at the slot's next signal.
    if (Atomics.load(this.words, b + S_WAITERS) > 0) Atomics.notify(this.words, b + S_STATE);
    this.callbacks.delete(f);
    Atomics.sub(this.header, H_LIVE, 1);
    this.pushFree(slot);
  }

  // --- core operations used by the exported functions ---
  /** @internal The new count, or NaN for a handle that is not live (already reported). A count that
   * would go below zero is undone and reported: a put nobody held. */
  refAdd(f: FenceHandle, delta: number, site: string): number {
    const b = this.live(f, site);
    if (b < 0) return Number.NaN;
    const now = Atomics.add(this.words, b + S_REFS, delta) + delta;
    if (now < 0) {
      Atomics.sub(this.words, b + S_REFS, delta);
      this.onMisuse({ rule: 'fence-put-unheld', message: `${site} of fence ${f} with no reference held`, fence: f });
      return Number.NaN;
    }
    return now;
  }

  /** @internal Take a reference only while the slot still holds this generation with refs > 0. */
  tryRef(f: FenceHandle): boolean {
    if (!this.isLive(f)) return false;
    const b = this.base(FenceTable.slotOf(f));
    for (;;) {
      const refs = Atomics.load(this.words, b + S_REFS);
      if (refs <= 0) return false;
      if (Atomics.compareExchange(this.words, b + S_REFS, refs, refs + 1) === refs) break;
    }
    // The slot may have been freed and reused between isLive and the increment: undo if so.
    if (Atomics.load(this.words, b + S_GEN) !== FenceTable.genOf(f)) {
      Atomics.sub(this.words, b + S_REFS, 1);
      return false;
    }
    return true;
  }

  /** @internal Signal under the lock: the state flip, the wakeup, then this thread's callbacks. */
  signalLocked(f: FenceHandle, timestampNs: number): number {
    this.assertLocked(f);
    const b = this.base(FenceTable.slotOf(f));
    if (Atomics.load(this.words, b + S_STATE) === STATE_SIGNALED) return -EINVAL;
    this.f64[(b + S_TIMESTAMP_F64) / 2] = timestampNs;
    Atomics.or(this.words, b + S_FLAGS, (1 << DMA_FENCE_FLAG_SIGNALED_BIT) | (1 << DMA_FENCE_FLAG_TIMESTAMP_BIT));
    Atomics.store(this.words, b + S_STATE, STATE_SIGNALED);
    if (Atomics.load(this.words, b + S_WAITERS) > 0) Atomics.notify(this.words, b + S_STATE);
    if (Atomics.load(this.header, H_ANY_WAITERS) > 0) {
      Atomics.add(this.header, H_SIGNAL_SEQ, 1);
      Atomics.notify(this.header, H_SIGNAL_SEQ);
    }
    this.runLocalCallbacks(f);
    return 0;
  }

  private runLocalCallbacks(f: FenceHandle): void {
    const cbs = this.callbacks.get(f);
    if (cbs === undefined || cbs.length === 0) return;
    this.callbacks.delete(f);
    Atomics.sub(this.words, this.base(FenceTable.slotOf(f)) + S_CALLBACKS, cbs.length);
    for (const cb of cbs) cb.func(f, cb);
  }

  /** @internal Queue a callback for this thread (lock held, fence active). */
  queueCallbackLocked(f: FenceHandle, cb: DmaFenceCb): void {
    this.assertLocked(f);
    let list = this.callbacks.get(f);
    if (list === undefined) {
      list = [];
      this.callbacks.set(f, list);
    }
    list.push(cb);
    Atomics.add(this.words, this.base(FenceTable.slotOf(f)) + S_CALLBACKS, 1);
    this.watch(f);
  }

  /** @internal */
  dequeueCallbackLocked(f: FenceHandle, cb: DmaFenceCb): boolean {
    this.assertLocked(f);
    const list = this.callbacks.get(f);
    const i = list?.indexOf(cb) ?? -1;
    if (list === undefined || i < 0) return false;
    list.splice(i, 1);
    Atomics.sub(this.words, this.base(FenceTable.slotOf(f)) + S_CALLBACKS, 1);
    return true;
  }

  /** Callbacks pending on every thread (the WARN in dma_fence_release). */
  pendingCallbacks(f: FenceHandle): number {
    return Atomics.load(this.words, this.base(FenceTable.slotOf(f)) + S_CALLBACKS);
  }

  /**
   * Wake this thread when another thread signals `f`, to run the callbacks this thread added. The watcher
   * counts as a waiter (S_WAITERS), so the signaller notifies it.
   */
  private watch(f: FenceHandle): void {
    // Keyed by handle, not slot: a watcher left over from a freed fence must not stand in for the
    // fence that reuses the slot (its callbacks would never run).
    const slot = FenceTable.slotOf(f);
    if (this.watching.has(f)) return;
    this.watching.add(f);
    this.keepAlive ??= setInterval(() => {}, 2 ** 30);
    const b = this.base(slot);
    const state = b + S_STATE;
    Atomics.add(this.words, b + S_WAITERS, 1);
    const done = (): void => {
      Atomics.sub(this.words, b + S_WAITERS, 1);
      this.watching.delete(f);
      if (this.watching.size === 0 && this.keepAlive !== null) {
        clearInterval(this.keepAlive);
        this.keepAlive = null;
      }
      const cbs = this.callbacks.get(f);
      if (!cbs?.length) return;
      if (!this.isLive(f)) {
        // Released on another thread after it signalled (with -EDEADLK if callbacks were pending): the
        // callbacks are still owed their one call. The slot is gone, so neither lock nor count is touched.
        this.callbacks.delete(f);
        for (const cb of cbs) cb.func(f, cb);
        return;
      }
      this.lock(f);
      try {
        this.runLocalCallbacks(f);
      } finally {
        this.unlock(f);
      }
    };
    const r = Atomics.waitAsync(this.words, state, STATE_ACTIVE);
    if (r.async) void r.value.then(done);
    else queueMicrotask(done);
  }

  /**
   * One waiting loop per kind of wait, written once: it yields "sleep on this word while it holds this
   * value" and is driven either blocking (Atomics.wait: device workers, tests) or without blocking the
   * event loop (Atomics.waitAsync: the kernel thread). The waiter count is raised before the first check
   * and dropped when the loop ends however it ends (see the ordering argument at the layout).
   */
  private *untilSignaled(f: FenceHandle, timeoutMs: number): Generator<SleepOn, boolean, void> {
    const b = this.base(FenceTable.slotOf(f));
    const deadline = performance.now() + timeoutMs;
    Atomics.add(this.words, b + S_WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(this.words, b + S_STATE) === STATE_SIGNALED) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        yield { words: this.words, index: b + S_STATE, value: STATE_ACTIVE, timeoutMs: left };
      }
    } finally {
      Atomics.sub(this.words, b + S_WAITERS, 1);
    }
  }

  private *untilAny(
    fences: readonly FenceHandle[],
    timeoutMs: number,
    isDone: (f: FenceHandle) => boolean,
  ): Generator<SleepOn, number, void> {
    const deadline = performance.now() + timeoutMs;
    Atomics.add(this.header, H_ANY_WAITERS, 1);
    try {
      for (;;) {
        const seq = Atomics.load(this.header, H_SIGNAL_SEQ);
        const i = fences.findIndex(isDone);
        if (i >= 0) return i;
        const left = deadline - performance.now();
        if (left <= 0) return -1;
        yield { words: this.header, index: H_SIGNAL_SEQ, value: seq, timeoutMs: left };
      }
    } finally {
      Atomics.sub(this.header, H_ANY_WAITERS, 1);
    }
  }

  /** @internal Block until SIGNALED or the deadline (ms from now); returns whether it is signalled. */
  sleepUntilSignaled(f: FenceHandle, timeoutMs: number): boolean {
    return driveBlocking(this.untilSignaled(f, timeoutMs));
  }
  /** @internal The same, without blocking the event loop. */
  sleepUntilSignaledAsync(f: FenceHandle, timeoutMs: number): Promise<boolean> {
    return driveAsync(this.untilSignaled(f, timeoutMs));
  }
  /**
   * @internal Block until one of `fences` is signalled (by `isDone`, which may complete lazily) or the
   * deadline; returns the index of the first signalled fence, or -1 on timeout.
   */
  sleepUntilAny(fences: readonly FenceHandle[], timeoutMs: number, isDone: (f: FenceHandle) => boolean): number {
    return driveBlocking(this.untilAny(fences, timeoutMs, isDone));
  }
  /** @internal The same, without blocking the event loop. */
  sleepUntilAnyAsync(
    fences: readonly FenceHandle[],
    timeoutMs: number,
    isDone: (f: FenceHandle) => boolean,
  ): Promise<number> {
    return driveAsync(this.untilAny(fences, timeoutMs, isDone));
  }

  /** @internal Error store under the lock. */
  setErrorLocked(f: FenceHandle, err: number): void {
    this.assertLocked(f);
    Atomics.store(this.words, this.base(FenceTable.slotOf(f)) + S_ERROR, err);
  }

  /** @internal Set flag bits; returns the old flags. */
  orFlags(f: FenceHandle, bits: number): number {
    return Atomics.or(this.words, this.base(FenceTable.slotOf(f)) + S_FLAGS, bits);
  }

  /** @internal The site-checked base, for the exported functions. */
  check(f: FenceHandle, site: string): boolean {
    return this.live(f, site) >= 0;
  }
}

// --- the kernel API ---------------------------------------------------------------------------

/** `dma_fence_context_alloc(num)`: the first of `num` consecutive fresh contexts (never 0). */
export function dmaFenceContextAlloc(t: FenceTable, num: number): number {
  const header = new Int32Array(t.sab, 0, HEADER_WORDS);
  if (!Number.isInteger(num) || num <= 0) {
    // WARN_ON(!num) in the kernel, which then hands out the next context without reserving any.
    t.onMisuse({ rule: 'fence-context-alloc-zero', message: `dma_fence_context_alloc(${num})`, fence: -1 });
    return Atomics.load(header, H_CONTEXT_NEXT);
  }
  const first = Atomics.add(header, H_CONTEXT_NEXT, num);
  assert(first > 0 && first + num < 2 ** 31, 'fence contexts exhausted');
  return first;
}

/**
 * `dma_fence_init` (or `_init64` with `seqno64`): a new unsignalled fence holding one reference, or -ENOMEM
 * when the table is full (`limits` size it; a full table is an operating error, not a bug).
 */
export function dmaFenceInit(
  t: FenceTable,
  opsId: number,
  context: number,
  seqno: number,
  opts: { seqno64?: boolean; aux?: number } = {},
): FenceHandle | Errno {
  const flags = opts.seqno64 ? 1 << DMA_FENCE_FLAG_SEQNO64_BIT : 0;
  return t.allocSlot(opsId, context, seqno, flags, opts.aux ?? 0);
}

/**
 * `dma_fence_get_rcu`: a reference if the fence is still alive, else false — for lock-free readers (a
 * resv scan) that may race a writer dropping the last reference. Never reports: losing that race is fine.
 */
export function dmaFenceGetRcu(t: FenceTable, f: FenceHandle): boolean {
  return t.tryRef(f);
}

/** `dma_fence_get`: another reference; returns the handle for chaining. */
export function dmaFenceGet(t: FenceTable, f: FenceHandle): FenceHandle {
  t.refAdd(f, 1, 'dma_fence_get');
  return f;
}

/**
 * `dma_fence_put`. The last put releases the fence; if callbacks are still pending on an unsignalled
 * fence that is the kernel's "released with pending signals!" WARN: error -EDEADLK, then signal, so no
 * waiter hangs.
 */
export function dmaFencePut(t: FenceTable, f: FenceHandle): void {
  if (f === dmaFenceStubHandle(t)) return; // the stub's global reference is never dropped
  const refs = t.refAdd(f, -1, 'dma_fence_put');
  if (Number.isNaN(refs) || refs > 0) return;
  if (t.stateOf(f) !== STATE_SIGNALED && t.pendingCallbacks(f) > 0) {
    t.onMisuse({
      rule: 'fence-released-with-pending-signals',
      message: `fence ${t.opsOf(f).getDriverName(t, f)}:${t.opsOf(f).getTimelineName(t, f)}:${t.contextOf(f)}:${t.seqnoOf(f)} released with pending signals`,
      fence: f,
    });
    t.lock(f);
    try {
      t.setErrorLocked(f, -35); // -EDEADLK
      t.signalLocked(f, t.nowNs());
    } finally {
      t.unlock(f);
    }
  }
  t.opsOf(f).release?.(t, f);
  t.freeSlot(f);
}

/** `dma_fence_signal_timestamp_locked`. */
export function dmaFenceSignalTimestampLocked(t: FenceTable, f: FenceHandle, timestampNs: number): number {
  t.assertLocked(f);
  return t.signalLocked(f, timestampNs);
}

/** `dma_fence_signal_locked`. */
export function dmaFenceSignalLocked(t: FenceTable, f: FenceHandle): number {
  t.assertLocked(f);
  return t.signalLocked(f, t.nowNs());
}

/** `dma_fence_signal_timestamp`. */
export function dmaFenceSignalTimestamp(t: FenceTable, f: FenceHandle, timestampNs: number): number {
  if (!t.check(f, 'dma_fence_signal')) return -EINVAL;
  t.lock(f);
  try {
    return t.signalLocked(f, timestampNs);
  } finally {
    t.unlock(f);
  }
}

/** `dma_fence_signal`: 0 the first time, -EINVAL if already signalled. */
export function dmaFenceSignal(t: FenceTable, f: FenceHandle): number {
  return dmaFenceSignalTimestamp(t, f, t.nowNs());
}

/**
 * `dma_fence_set_error`: only before signalling, and only a negative errno. The kernel WARNs and stores
 * anyway; we report the misuse and refuse (-EINVAL), so the fence's status stays what waiters saw.
 */
export function dmaFenceSetError(t: FenceTable, f: FenceHandle, err: number): number {
  if (!t.check(f, 'dma_fence_set_error')) return -EINVAL;
  if (!Number.isInteger(err) || err >= 0 || err < -MAX_ERRNO) {
    t.onMisuse({ rule: 'fence-error-invalid', message: `dma_fence_set_error(${err}): not a negative errno`, fence: f });
    return -EINVAL;
  }
  t.lock(f);
  try {
    if (t.stateOf(f) === STATE_SIGNALED) {
      t.onMisuse({
        rule: 'fence-error-after-signal',
        message: `dma_fence_set_error(${err}) after the fence signalled: waiters already saw its status`,
        fence: f,
      });
      return -EINVAL;
    }
    t.setErrorLocked(f, err);
    return 0;
  } finally {
    t.unlock(f);
  }
}

/** `dma_fence_is_signaled`: may complete the fence through `ops->signaled`. Does not enable signalling. */
export function dmaFenceIsSignaled(t: FenceTable, f: FenceHandle): boolean {
  if (!t.check(f, 'dma_fence_is_signaled')) return false;
  if (t.stateOf(f) === STATE_SIGNALED) return true;
  const ops = t.opsOf(f);
  if (ops.signaled?.(t, f)) {
    dmaFenceSignal(t, f);
    return true;
  }
  return false;
}

/** `dma_fence_get_status`: 0 while pending, then 1 or the error. */
export function dmaFenceGetStatus(t: FenceTable, f: FenceHandle): number {
  if (!dmaFenceIsSignaled(t, f)) return 0;
  return t.errorOf(f) || 1;
}

/** `dma_fence_enable_sw_signaling`; returns true if the fence ended up signalled. */
export function dmaFenceEnableSwSignaling(t: FenceTable, f: FenceHandle): boolean {
  if (!t.check(f, 'dma_fence_enable_sw_signaling')) return false;
  // Fast path (every wait goes through here): the lock only guards the ops' first enable_signaling
  // call, so a fence already enabled, or whose ops have nothing to enable, needs just the flag.
  const bit = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT;
  if (t.flagsOf(f) & bit || !t.opsOf(f).enableSignaling) {
    t.orFlags(f, bit);
    return t.stateOf(f) === STATE_SIGNALED;
  }
  t.lock(f);
  try {
    return enableSignalingLocked(t, f);
  } finally {
    t.unlock(f);
  }
}

function enableSignalingLocked(t: FenceTable, f: FenceHandle): boolean {
  const bit = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT;
  const old = t.orFlags(f, bit);
  if (t.stateOf(f) === STATE_SIGNALED) return true;
  if (!(old & bit)) {
    const ops = t.opsOf(f);
    if (ops.enableSignaling && !ops.enableSignaling(t, f)) {
      t.signalLocked(f, t.nowNs());
      return true;
    }
  }
  return false;
}

/**
 * `dma_fence_add_callback`: 0 and the callback will run once when the fence signals; -ENOENT if it
 * already has (the callback never runs); -EINVAL for a missing callback.
 */
export function dmaFenceAddCallback(t: FenceTable, f: FenceHandle, cb: DmaFenceCb): number {
  if (!cb || typeof cb.func !== 'function') {
    t.onMisuse({ rule: 'fence-callback-missing', message: 'dma_fence_add_callback without a function', fence: f });
    return -EINVAL;
  }
  if (!t.check(f, 'dma_fence_add_callback')) return -EINVAL;
  t.lock(f);
  try {
    if (t.stateOf(f) === STATE_SIGNALED) return -ENOENT;
    if (enableSignalingLocked(t, f)) return -ENOENT;
    t.queueCallbackLocked(f, cb);
    return 0;
  } finally {
    t.unlock(f);
  }
}

/** `dma_fence_remove_callback`: true if it was still pending (it will not run now). */
export function dmaFenceRemoveCallback(t: FenceTable, f: FenceHandle, cb: DmaFenceCb): boolean {
  if (!t.check(f, 'dma_fence_remove_callback')) return false;
  t.lock(f);
  try {
    return t.dequeueCallbackLocked(f, cb);
  } finally {
    t.unlock(f);
  }
}

function waitResult(signaled: boolean, timeoutNs: number, startNs: number, nowNs: number): number {
  if (!signaled) return 0;
  if (timeoutNs === 0) return 1;
  if (timeoutNs === MAX_SCHEDULE_TIMEOUT) return MAX_SCHEDULE_TIMEOUT;
  return Math.max(1, timeoutNs - (nowNs - startNs));
}

/**
 * `dma_fence_wait_timeout` up to where it would sleep: its result when it need not (bad argument, signalled,
 * or a timeout of 0 on an unsignalled fence), null when it must sleep (from `startNs`).
 */
function waitTimeoutWithoutSleep(t: FenceTable, f: FenceHandle, timeoutNs: number, startNs: number): number | null {
  if (!(timeoutNs >= 0)) {
    t.onMisuse({ rule: 'fence-wait-negative-timeout', message: `dma_fence_wait_timeout(${timeoutNs})`, fence: f });
    return -EINVAL;
  }
  if (!t.check(f, 'dma_fence_wait_timeout')) return -EINVAL;
  if (dmaFenceEnableSwSignaling(t, f) || dmaFenceIsSignaled(t, f)) return waitResult(true, timeoutNs, startNs, startNs);
  if (timeoutNs === 0) return 0;
  return null;
}

/**
 * `dma_fence_wait_timeout(f, intr, timeout)`, blocking (device workers, tests). Timeouts are in ns;
 * returns the time left (> 0) once signalled, 0 on timeout, 1 for timeout 0 on a signalled fence,
 * -EINVAL for a negative timeout. No signals exist in the model, so `intr` never yields -ERESTARTSYS.
 */
export function dmaFenceWaitTimeout(t: FenceTable, f: FenceHandle, _intr: boolean, timeoutNs: number): number {
  const start = t.nowNs();
  const done = waitTimeoutWithoutSleep(t, f, timeoutNs, start);
  if (done !== null) return done;
  const ok = t.sleepUntilSignaled(f, timeoutNs / 1e6);
  return waitResult(ok, timeoutNs, start, t.nowNs());
}

/** The kernel thread's twin of `dmaFenceWaitTimeout`: never blocks the event loop. */
export async function dmaFenceWaitTimeoutAsync(
  t: FenceTable,
  f: FenceHandle,
  _intr: boolean,
  timeoutNs: number,
): Promise<number> {
  const start = t.nowNs();
  const done = waitTimeoutWithoutSleep(t, f, timeoutNs, start);
  if (done !== null) return done;
  const ok = await t.sleepUntilSignaledAsync(f, timeoutNs / 1e6);
  return waitResult(ok, timeoutNs, start, t.nowNs());
}

export interface WaitAnyResult {
  /** Time left (> 0) when one signalled, 1 for a zero timeout that found one, 0 on timeout, or -errno. */
  ret: number;
  /** Index of the first signalled fence (valid when ret > 0). */
  idx: number;
}

function waitAnyPrologue(t: FenceTable, fences: readonly FenceHandle[], timeoutNs: number): WaitAnyResult | null {
  if (!Array.isArray(fences) || fences.length === 0 || !(timeoutNs >= 0)) {
    t.onMisuse({
      rule: 'fence-wait-any-bad-args',
      message: `dma_fence_wait_any_timeout with ${Array.isArray(fences) ? fences.length : 'no'} fences, timeout ${timeoutNs}`,
      fence: -1,
    });
    return { ret: -EINVAL, idx: -1 };
  }
  for (const f of fences) if (!t.check(f, 'dma_fence_wait_any_timeout')) return { ret: -EINVAL, idx: -1 };
  const idx = fences.findIndex((f) => dmaFenceIsSignaled(t, f));
  if (idx >= 0) return { ret: timeoutNs === 0 ? 1 : Math.max(1, timeoutNs), idx };
  if (timeoutNs === 0) return { ret: 0, idx: -1 };
  for (const f of fences) dmaFenceEnableSwSignaling(t, f);
  return null;
}

/**
 * `dma_fence_wait_any_timeout(fences, count, intr, timeout, &idx)`: -EINVAL for no fences or a negative
 * timeout; otherwise as a single wait, with `idx` naming the first signalled fence.
 */
export function dmaFenceWaitAnyTimeout(
  t: FenceTable,
  fences: readonly FenceHandle[],
  _intr: boolean,
  timeoutNs: number,
): WaitAnyResult {
  const early = waitAnyPrologue(t, fences, timeoutNs);
  if (early !== null) return early;
  const start = t.nowNs();
  const idx = t.sleepUntilAny(fences, timeoutNs / 1e6, (f) => dmaFenceIsSignaled(t, f));
  return { ret: waitResult(idx >= 0, timeoutNs, start, t.nowNs()), idx };
}

/** The kernel thread's twin of `dmaFenceWaitAnyTimeout`. */
export async function dmaFenceWaitAnyTimeoutAsync(
  t: FenceTable,
  fences: readonly FenceHandle[],
  _intr: boolean,
  timeoutNs: number,
): Promise<WaitAnyResult> {
  const early = waitAnyPrologue(t, fences, timeoutNs);
  if (early !== null) return early;
  const start = t.nowNs();
  const idx = await t.sleepUntilAnyAsync(fences, timeoutNs / 1e6, (f) => dmaFenceIsSignaled(t, f));
  return { ret: waitResult(idx >= 0, timeoutNs, start, t.nowNs()), idx };
}

/**
 * `__dma_fence_is_later(fence, s1, s2)`: a 64-bit compare for SEQNO64 fences, otherwise the 32-bit
 * wrap-around compare `(int)(lower_32_bits(s1) - lower_32_bits(s2)) > 0`.
 */
export function __dmaFenceIsLater(flags: number, s1: number, s2: number): boolean {
  if (flags & (1 << DMA_FENCE_FLAG_SEQNO64_BIT)) return s1 > s2;
  // ToUint32 takes the low 32 bits of any double; ToInt32 of the difference is the C (int) cast.
  return (((s1 >>> 0) - (s2 >>> 0)) | 0) > 0;
}

/** `dma_fence_is_later(f1, f2)`: false (with a report) when the contexts differ. */
export function dmaFenceIsLater(t: FenceTable, f1: FenceHandle, f2: FenceHandle): boolean {
  if (!t.check(f1, 'dma_fence_is_later') || !t.check(f2, 'dma_fence_is_later')) return false;
  if (t.contextOf(f1) !== t.contextOf(f2)) {
    t.onMisuse({
      rule: 'fence-compare-across-contexts',
      message: `dma_fence_is_later across contexts ${t.contextOf(f1)} and ${t.contextOf(f2)}`,
      fence: f1,
    });
    return false;
  }
  return __dmaFenceIsLater(t.flagsOf(f1), t.seqnoOf(f1), t.seqnoOf(f2));
}

/** `dma_fence_is_later_or_same`. */
export function dmaFenceIsLaterOrSame(t: FenceTable, f1: FenceHandle, f2: FenceHandle): boolean {
  return f1 === f2 || dmaFenceIsLater(t, f1, f2);
}

/** The stub's handle (slot 0, generation 1). */
export function dmaFenceStubHandle(_t: FenceTable): FenceHandle {
  return 1 * SLOT_SPAN + STUB_SLOT;
}

/** `dma_fence_get_stub`: the global signalled stub; signalled (and timestamped) on first use. */
export function dmaFenceGetStub(t: FenceTable): FenceHandle {
  const stub = dmaFenceStubHandle(t);
  if (t.stateOf(stub) !== STATE_SIGNALED) {
    t.lock(stub);
    try {
      if (t.stateOf(stub) !== STATE_SIGNALED) t.signalLocked(stub, t.nowNs());
    } finally {
      t.unlock(stub);
    }
  }
  return stub;
}

/** `dma_fence_allocate_private_stub(timestamp)`: a fresh, already signalled fence on context 0. */
export function dmaFenceAllocatePrivateStub(t: FenceTable, timestampNs: number): FenceHandle | Errno {
  const f = t.allocSlot(stubFenceOps, 0, 0, 0, 0);
  if (f < 0) return f;
  t.lock(f);
  try {
    t.signalLocked(f, timestampNs);
  } finally {
    t.unlock(f);
  }
  return f;
}

/** `dma_fence_set_deadline`: only for an unsignalled fence whose ops care. */
export function dmaFenceSetDeadline(t: FenceTable, f: FenceHandle, deadlineNs: number): void {
  if (!t.check(f, 'dma_fence_set_deadline')) return;
  if (t.stateOf(f) === STATE_SIGNALED) return;
  t.opsOf(f).setDeadline?.(t, f, deadlineNs);
}

/** `dma_fence_driver_name` / `dma_fence_timeline_name` (6.12 naming: names persist after the signal). */
export function dmaFenceDriverName(t: FenceTable, f: FenceHandle): string {
  return t.opsOf(f).getDriverName(t, f);
}
export function dmaFenceTimelineName(t: FenceTable, f: FenceHandle): string {
  return t.opsOf(f).getTimelineName(t, f);
}
