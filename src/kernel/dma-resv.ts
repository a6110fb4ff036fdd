/**
 * dma_resv: the reservation object of a dma-buf (drivers/dma-buf/dma-resv.c), in shared memory so that
 * device workers lock it, add fences and wait on it without asking the kernel thread.
 *
 * Contract:
 * - Fences carry a usage, KERNEL < WRITE < READ < BOOKKEEP. A query for usage U sees every fence with
 *   usage ≤ U. `dma_resv_usage_rw(write)`: a writer waits for readers and writers, a reader for writers.
 * - Every mutation happens under the lock, asserted on the first line: `dmaResvReserveFences(n)` makes
 *   room, `dmaResvAddFence` uses it. Adding without a reserved slot is caught (the kernel BUG_ONs; we report
 *   `resv-add-without-reserve` and refuse), and with `debugSlots` (the default, as CONFIG_DEBUG_MUTEXES)
 *   reservations do not survive an unlock. A slot is replaced in place by a fence of the same context that
 *   is not earlier and not of a weaker usage (no demotion), or when its fence has signalled.
 * - The lock is a Wait-Die ww_mutex (`reservation_ww_class`), implemented with Atomics across threads:
 *   acquire contexts take increasing stamps; a context that already holds locks gets -EDEADLK ("die")
 *   when the lock is held by an older context, and must then drop everything and take the contended lock
 *   with `dmaResvLockSlow`, which never dies. Relocking with the same context is -EALREADY. A lock without
 *   a context is a plain mutex. Tasks that share one thread cannot sleep on each other (the thread would
 *   never run the holder again), so that case returns -EBUSY and is reported.
 * - Readers need no lock: a sequence counter (odd while a writer is mid-update) lets them retry, and a
 *   fence is only used after `dmaFenceGetRcu` took a reference, so a concurrently freed fence is skipped,
 *   not misread.
 *
 * Deviation: Wait-Die here dies only on an older *holder*; the kernel also dies when an older context is
 * already queued. Both are deadlock-free; ours can starve a young context longer under heavy contention.
 */
import { assert } from './assert.js';
import {
  dmaFenceDriverName,
  dmaFenceGet,
  dmaFenceGetRcu,
  dmaFenceIsLaterOrSame,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSetDeadline,
  dmaFenceTimelineName,
  dmaFenceWaitTimeout,
  dmaFenceWaitTimeoutAsync,
  type FenceHandle,
  type FenceTable,
  MAX_SCHEDULE_TIMEOUT,
} from './dma-fence.js';
import { EALREADY, EBUSY, EDEADLK, EINVAL, ENOMEM, type Errno } from './errno.js';
import { futexLock, futexUnlock } from './futex.js';
import type { Task } from './kernel-core.js';

/** `enum dma_resv_usage`: KERNEL < WRITE < READ < BOOKKEEP (include/linux/dma-resv.h). */
export const DMA_RESV_USAGE_KERNEL = 0;
export const DMA_RESV_USAGE_WRITE = 1;
export const DMA_RESV_USAGE_READ = 2;
export const DMA_RESV_USAGE_BOOKKEEP = 3;
export type DmaResvUsage = 0 | 1 | 2 | 3;
const USAGE_NAMES = ['kernel', 'write', 'read', 'bookkeep'] as const;

/** `dma_resv_usage_rw`: a new writer waits for readers and writers, a new reader only for writers. */
export function dmaResvUsageRw(write: boolean): DmaResvUsage {
  return write ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE;
}

/** Fence slots one resv can ever hold (the kernel grows its list; we bound it, with -ENOMEM past it). */
export const RESV_FENCES_MAX = 64;

// --- the shared layout, defined once -----------------------------------------------------------
// Header (Int32): the ww class stamp counter and the free-slot stack of resv objects.
const H_STAMP_NEXT = 0;
const H_FREE_LOCK = 1;
const H_FREE_TOP = 2;
const H_LIVE = 3;
const H_CAPACITY = 4;
const HEADER_WORDS = 16;
// Object (Int32 words), followed by RESV_FENCES_MAX Float64 fence handles:
const R_LOCK = 0; // futex word: 0 unlocked, else holder pid + 1
const R_LOCK_WAITERS = 1; // sleepers on R_LOCK (unlock notifies only when > 0; same Dekker pairing as fences)
// The holder's acquire-context stamp; NO_CTX when locked without a context. 0 means "not written yet":
// the holder claims R_LOCK first and writes its stamp just after, and a contender that reads 0 in that gap
// must look again rather than take the holder for a context-less one (it would sleep where Wait-Die says
// die, and two contexts could then wait for each other forever).
const R_HOLDER_STAMP = 2;
const NO_CTX = -1;
const R_HOLDER_THREAD = 3; // worker threadId of the holder + 1 (0 when unlocked)
const R_SEQ = 4; // seqcount: odd while the fence list is being rewritten
const R_NUM = 5; // fences in the list
const R_MAX = 6; // slots reserved (num + room made by reserve)
const R_GEN = 7; // generation of this object slot
const R_USAGE = 8; // RESV_FENCES_MAX bytes of usage, packed 4 per word
const OBJ_INT_WORDS = R_USAGE + RESV_FENCES_MAX / 4;
const OBJ_BYTES = Math.ceil((OBJ_INT_WORDS * 4) / 8) * 8 + RESV_FENCES_MAX * 8;

/** Who is running: the lock's owner identity and where misuse goes. One per thread. */
export interface ResvEnv {
  readonly fences: FenceTable;
  /** The running task. */
  current(): Task;
  /** worker_threads.threadId of this thread (0 on the main/kernel thread). */
  readonly threadId: number;
  warn(rule: string, message: string, objects: Record<string, string | number>): void;
  /** Kinds of fence that are containers (array, chain): adding one to a resv is a misuse. */
  isContainer?(f: FenceHandle): boolean;
  /** Build a singleton from several fences (dma_fence_array); provided where arrays exist. */
  makeArray?(fences: FenceHandle[]): FenceHandle | Errno;
}

export class ResvTable {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  readonly env: ResvEnv;
  /** CONFIG_DEBUG_MUTEXES: drop unused reservations at every unlock, so a missing reserve shows. */
  readonly debugSlots: boolean;
  /** @internal */ readonly header: Int32Array;
  private readonly freeStack: Int32Array;
  private readonly objBase: number;

  private constructor(sab: SharedArrayBuffer, env: ResvEnv, debugSlots: boolean) {
    this.sab = sab;
    this.env = env;
    this.debugSlots = debugSlots;
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.capacity = this.header[H_CAPACITY] ?? 0;
    assert(this.capacity > 0, 'resv table without capacity');
    this.freeStack = new Int32Array(sab, HEADER_WORDS * 4, this.capacity);
    this.objBase = Math.ceil(((HEADER_WORDS + this.capacity) * 4) / 64) * 64;
  }

  static create(capacity: number, env: ResvEnv, opts: { debugSlots?: boolean } = {}): ResvTable {
    assert(Number.isInteger(capacity) && capacity > 0, 'bad resv capacity');
    const base = Math.ceil(((HEADER_WORDS + capacity) * 4) / 64) * 64;
    const sab = new SharedArrayBuffer(base + capacity * OBJ_BYTES);
    const header = new Int32Array(sab, 0, HEADER_WORDS);
    header[H_CAPACITY] = capacity;
    const t = new ResvTable(sab, env, opts.debugSlots ?? true);
    let top = 0;
    for (let i = capacity - 1; i >= 0; i--) t.freeStack[top++] = i;
    header[H_FREE_TOP] = top;
    return t;
  }

  static attach(sab: SharedArrayBuffer, env: ResvEnv, opts: { debugSlots?: boolean } = {}): ResvTable {
    return new ResvTable(sab, env, opts.debugSlots ?? true);
  }

  get liveCount(): number {
    return Atomics.load(this.header, H_LIVE);
  }

  /** @internal */
  ints(index: number): Int32Array {
    return new Int32Array(this.sab, this.objBase + index * OBJ_BYTES, OBJ_INT_WORDS);
  }
  /** @internal */
  handles(index: number): Float64Array {
    return new Float64Array(
      this.sab,
      this.objBase + index * OBJ_BYTES + (OBJ_BYTES - RESV_FENCES_MAX * 8),
      RESV_FENCES_MAX,
    );
  }

  /** @internal */
  alloc(): number {
    futexLock(this.header, H_FREE_LOCK);
    const top = this.header[H_FREE_TOP] ?? 0;
    const idx = top > 0 ? (this.freeStack[top - 1] ?? -1) : -1;
    if (top > 0) this.header[H_FREE_TOP] = top - 1;
    futexUnlock(this.header, H_FREE_LOCK);
    if (idx >= 0) Atomics.add(this.header, H_LIVE, 1);
    return idx;
  }
  /** @internal */
  free(index: number): void {
    futexLock(this.header, H_FREE_LOCK);
    const top = this.header[H_FREE_TOP] ?? 0;
    assert(top < this.capacity, 'resv free stack overflow');
    this.freeStack[top] = index;
    this.header[H_FREE_TOP] = top + 1;
    futexUnlock(this.header, H_FREE_LOCK);
    Atomics.sub(this.header, H_LIVE, 1);
  }
}

/** One reservation object, as seen from one thread. */
export class DmaResv {
  readonly table: ResvTable;
  readonly index: number;
  /** @internal */ readonly w: Int32Array;
  /** @internal */ readonly h: Float64Array;
  readonly gen: number;

  constructor(table: ResvTable, index: number) {
    this.table = table;
    this.index = index;
    this.w = table.ints(index);
    this.h = table.handles(index);
    this.gen = Atomics.load(this.w, R_GEN);
  }
  /** A stable id for reports and for sending this resv to another thread. */
  get id(): number {
    return this.index;
  }
  get env(): ResvEnv {
    return this.table.env;
  }
}

/** `dma_resv_init`: a new resv from the table, or -ENOMEM when it is full. */
export function dmaResvInit(table: ResvTable): DmaResv | Errno {
  const idx = table.alloc();
  if (idx < 0) return -ENOMEM;
  const w = table.ints(idx);
  for (let i = 0; i < OBJ_INT_WORDS; i++) if (i !== R_GEN) Atomics.store(w, i, 0);
  return new DmaResv(table, idx);
}

/** `dma_resv_fini`: drop every fence reference and give the object back. */
export function dmaResvFini(obj: DmaResv): void {
  if (Atomics.load(obj.w, R_LOCK) !== 0) {
    // Freeing a locked object is a use-after-free for its holder in the kernel: report, then let go.
    obj.env.warn('resv-fini-locked', `dma_resv_fini of resv ${obj.id} while it is locked`, { resv: obj.id });
    Atomics.store(obj.w, R_LOCK, 0);
    Atomics.notify(obj.w, R_LOCK);
  }
  const t = obj.env.fences;
  const n = Atomics.load(obj.w, R_NUM);
  for (let i = 0; i < n; i++) dmaFencePut(t, obj.h[i] ?? -1);
  Atomics.store(obj.w, R_NUM, 0);
  Atomics.store(obj.w, R_MAX, 0);
  Atomics.add(obj.w, R_GEN, 1);
  obj.table.free(obj.index);
}

// --- usage bytes ---
function usageAt(obj: DmaResv, i: number): DmaResvUsage {
  const word = Atomics.load(obj.w, R_USAGE + (i >> 2));
  return ((word >>> ((i & 3) * 8)) & 0xff) as DmaResvUsage;
}
function setUsageAt(obj: DmaResv, i: number, u: DmaResvUsage): void {
  const wi = R_USAGE + (i >> 2);
  const shift = (i & 3) * 8;
  const word = Atomics.load(obj.w, wi);
  Atomics.store(obj.w, wi, (word & ~(0xff << shift)) | (u << shift));
}

// --- the ww_mutex ---

/** `struct ww_acquire_ctx`. */
export interface WwAcquireCtx {
  readonly stamp: number;
  readonly task: Task;
  acquired: number;
  done: boolean;
  /** The lock that made us die, until we take it with lock_slow. */
  contended: DmaResv | null;
}

/**
 * Live contexts of this thread by stamp. `ww_mutex_unlock` finds the holder's context through the lock;
 * ours are JS objects, so the lock stores the stamp and this map leads back to the object. Bounded by the
 * contexts a thread has open at once (each is removed by `wwAcquireFini`).
 */
const contextsByStamp = new Map<number, WwAcquireCtx>();
const CONTEXTS_OPEN_MAX = 4096;

/** `ww_acquire_init(ctx, &reservation_ww_class)`: a fresh stamp; smaller is older. */
export function wwAcquireInit(table: ResvTable, task?: Task): WwAcquireCtx {
  const stamp = Atomics.add(table.header, H_STAMP_NEXT, 1) + 1;
  const ctx: WwAcquireCtx = { stamp, task: task ?? table.env.current(), acquired: 0, done: false, contended: null };
  assert(contextsByStamp.size < CONTEXTS_OPEN_MAX, 'too many ww_acquire contexts open (missing ww_acquire_fini?)');
  contextsByStamp.set(stamp, ctx);
  return ctx;
}

/** `ww_acquire_done`: no more locks will be taken with this context. */
export function wwAcquireDone(ctx: WwAcquireCtx): void {
  ctx.done = true;
}

/** `ww_acquire_fini`: every lock must have been released. */
export function wwAcquireFini(table: ResvTable, ctx: WwAcquireCtx): void {
  contextsByStamp.delete(ctx.stamp);
  if (ctx.acquired !== 0) {
    table.env.warn('ww-acquire-fini-held', `ww_acquire_fini with ${ctx.acquired} locks still held`, {
      stamp: ctx.stamp,
    });
  }
}

function ownerTag(task: Task): number {
  return task.pid + 1;
}

function tryTake(obj: DmaResv, task: Task, ctx: WwAcquireCtx | null): boolean {
  if (Atomics.compareExchange(obj.w, R_LOCK, 0, ownerTag(task)) !== 0) return false;
  Atomics.store(obj.w, R_HOLDER_STAMP, ctx?.stamp ?? NO_CTX);
  Atomics.store(obj.w, R_HOLDER_THREAD, obj.env.threadId + 1);
  if (ctx !== null) {
    ctx.acquired++;
    // A new holder with a stamp may be older than a context sleeping here that holds other locks: wake
    // every sleeper so each re-runs Wait-Die (and dies if it must) instead of waiting on an older holder.
    if (Atomics.load(obj.w, R_LOCK_WAITERS) > 0) Atomics.notify(obj.w, R_LOCK);
  }
  return true;
}

/**
 * `dma_resv_lock(obj, ctx)` (ww_mutex_lock): 0; -EALREADY when `ctx` holds it; -EDEADLK when `ctx` must
 * back off (Wait-Die); -EBUSY when the holder is another task of this same thread (it could never run to
 * release it while we sleep). Blocks otherwise.
 */
export function dmaResvLock(obj: DmaResv, ctx: WwAcquireCtx | null): number {
  return lockCommon(obj, ctx, false);
}

/** `dma_resv_lock_slow(obj, ctx)`: after -EDEADLK, with nothing else held; never dies. */
export function dmaResvLockSlow(obj: DmaResv, ctx: WwAcquireCtx): number {
  slowChecks(obj, ctx);
  const ret = lockCommon(obj, ctx, true);
  if (ret === 0) ctx.contended = null;
  return ret;
}

function slowChecks(obj: DmaResv, ctx: WwAcquireCtx): void {
  if (ctx.acquired !== 0) {
    obj.env.warn('ww-mutex-slow-with-locks-held', `dma_resv_lock_slow with ${ctx.acquired} locks still held`, {
      resv: obj.id,
      stamp: ctx.stamp,
    });
  }
  if (ctx.contended !== null && ctx.contended.index !== obj.index) {
    obj.env.warn('ww-mutex-slow-wrong-lock', 'dma_resv_lock_slow on a lock other than the contended one', {
      resv: obj.id,
      contended: ctx.contended.id,
    });
  }
}

/** The debug checks `ww_mutex_lock` makes once per call (CONFIG_DEBUG_MUTEXES / PROVE_LOCKING). */
function lockChecks(obj: DmaResv, ctx: WwAcquireCtx | null, slow: boolean): void {
  if (ctx === null) return;
  const env = obj.env;
  if (ctx.done) env.warn('ww-acquire-after-done', 'lock taken after ww_acquire_done', { resv: obj.id });
  if (!slow && ctx.contended !== null && ctx.contended.index !== obj.index) {
    env.warn('ww-mutex-no-backoff', 'locking on after -EDEADLK without backing off to lock_slow', {
      resv: obj.id,
      contended: ctx.contended.id,
    });
  }
}

/**
 * One attempt at the lock: 0 taken; -EALREADY (`ctx` holds it); -EDEADLK (Wait-Die says die, or a
 * context-less self-deadlock); otherwise the holder's tag (> 0), to sleep on until it changes.
 */
function lockTry(obj: DmaResv, task: Task, ctx: WwAcquireCtx | null, slow: boolean): number {
  for (;;) {
    if (tryTake(obj, task, ctx)) return 0;
    const holder = Atomics.load(obj.w, R_LOCK);
    if (holder === 0) continue;
    const holderStamp = Atomics.load(obj.w, R_HOLDER_STAMP);
    if (holder === ownerTag(task)) {
      if (ctx !== null && holderStamp === ctx.stamp) return -EALREADY;
      obj.env.warn('ww-mutex-recursive', 'dma_resv lock taken twice by one task (self-deadlock)', { resv: obj.id });
      return -EDEADLK;
    }
    if (holderStamp === 0) continue; // the holder is between its claim and its stamp: look again
    // Wait-Die: a context holding locks dies rather than wait for an older holder.
    if (!slow && ctx !== null && ctx.acquired > 0 && holderStamp > 0 && holderStamp < ctx.stamp) {
      ctx.contended = obj;
      return -EDEADLK;
    }
    return holder;
  }
}

function lockCommon(obj: DmaResv, ctx: WwAcquireCtx | null, slow: boolean): number {
  const env = obj.env;
  const task = ctx?.task ?? env.current();
  lockChecks(obj, ctx, slow);
  for (;;) {
    const holder = lockTry(obj, task, ctx, slow);
    if (holder <= 0) return holder;
    if (Atomics.load(obj.w, R_HOLDER_THREAD) === env.threadId + 1) {
      env.warn('ww-mutex-same-thread-contention', 'resv held by another task on this thread: cannot sleep for it', {
        resv: obj.id,
      });
      return -EBUSY;
    }
    dmaResvSleepOnLock(obj, holder, Number.POSITIVE_INFINITY);
  }
}

/**
 * Sleep until the lock's holder changes from `holder` (or `timeoutMs` passes). Any change of holder wakes
 * us (unlock notifies) to re-run Wait-Die: a new, older holder may mean we must die now.
 */
export function dmaResvSleepOnLock(obj: DmaResv, holder: number, timeoutMs: number): void {
  Atomics.add(obj.w, R_LOCK_WAITERS, 1);
  Atomics.wait(obj.w, R_LOCK, holder, timeoutMs);
  Atomics.sub(obj.w, R_LOCK_WAITERS, 1);
}

/** Whether `task` holds the lock (no warning: for reclaim and reports, not for lock-held assertions). */
export function dmaResvHeldBy(obj: DmaResv, task: Task): boolean {
  return Atomics.load(obj.w, R_LOCK) === ownerTag(task);
}

/** The lock word's current holder tag (0 unlocked): what a cooperative waiter watches for a change. */
export function dmaResvLockHolder(obj: DmaResv): number {
  return Atomics.load(obj.w, R_LOCK);
}

/**
 * `dma_resv_lock` / `dma_resv_lock_slow` for a caller that blocks its own way: a device on the sim host
 * parks in the scheduler (all devices share one thread, so none may sleep the thread), a device worker
 * sleeps between heartbeats. Same results and the same debug checks as the blocking calls; `task` is the
 * locking task when `ctx` is null.
 *
 * In two halves, so the uncontended lock (nearly every one) costs no promise: `dmaResvLockCooperativeTry`
 * makes the call's checks and its first attempt — 0 or a negative errno is the result, a positive number
 * is the holder to wait for; then the caller waits its own way and calls `dmaResvLockCooperativeRetry`
 * until that returns ≤ 0.
 */
export function dmaResvLockCooperativeTry(obj: DmaResv, ctx: WwAcquireCtx | null, task: Task, slow: boolean): number {
  if (slow && ctx !== null) slowChecks(obj, ctx);
  lockChecks(obj, ctx, slow);
  return dmaResvLockCooperativeRetry(obj, ctx, task, slow);
}

/** Another attempt after the holder `dmaResvLockCooperativeTry` returned may have changed. */
export function dmaResvLockCooperativeRetry(obj: DmaResv, ctx: WwAcquireCtx | null, task: Task, slow: boolean): number {
  const holder = lockTry(obj, ctx?.task ?? task, ctx, slow);
  if (holder === 0 && slow && ctx !== null) ctx.contended = null;
  return holder;
}

/** `dma_resv_trylock(obj)`: true if taken (no context). */
export function dmaResvTrylock(obj: DmaResv): boolean {
  return tryTake(obj, obj.env.current(), null);
}

/** `dma_resv_unlock(obj)`. With debug slots on, unused reservations are dropped here. */
export function dmaResvUnlock(obj: DmaResv): void {
  const env = obj.env;
  const holder = Atomics.load(obj.w, R_LOCK);
  if (holder === 0) {
    env.warn('ww-mutex-unlock-unlocked', 'dma_resv_unlock of an unlocked resv', { resv: obj.id });
    return;
  }
  if (holder !== ownerTag(env.current())) {
    env.warn('ww-mutex-unlock-foreign', 'dma_resv_unlock by a task that does not hold it', { resv: obj.id });
  }
  if (obj.table.debugSlots) Atomics.store(obj.w, R_MAX, Atomics.load(obj.w, R_NUM));
  const stamp = Atomics.load(obj.w, R_HOLDER_STAMP);
  const ctx = stamp > 0 ? contextsByStamp.get(stamp) : undefined;
  if (ctx !== undefined) ctx.acquired--;
  Atomics.store(obj.w, R_HOLDER_STAMP, 0);
  Atomics.store(obj.w, R_HOLDER_THREAD, 0);
  Atomics.store(obj.w, R_LOCK, 0);
  // One sleeper is enough for progress; Wait-Die re-checks are triggered by the next holder (tryTake).
  if (Atomics.load(obj.w, R_LOCK_WAITERS) > 0) Atomics.notify(obj.w, R_LOCK, 1);
}

export function dmaResvIsLocked(obj: DmaResv): boolean {
  return Atomics.load(obj.w, R_LOCK) !== 0;
}

/** `dma_resv_locking_ctx`: the holder's stamp, or 0. */
export function dmaResvLockingStamp(obj: DmaResv): number {
  return Math.max(0, Atomics.load(obj.w, R_HOLDER_STAMP));
}

/** `dma_resv_assert_held(obj)`: lockdep_assert_held. Reports and returns false when not held by current. */
export function dmaResvAssertHeld(obj: DmaResv, site: string): boolean {
  if (Atomics.load(obj.w, R_LOCK) === ownerTag(obj.env.current())) return true;
  obj.env.warn('lockdep-assert-held', `${site} called without the dma_resv lock held`, { resv: obj.id });
  return false;
}

/** `might_lock(&obj->lock)`: taking it here would self-deadlock if the caller holds it. */
export function dmaResvMightLock(obj: DmaResv, site: string): boolean {
  if (Atomics.load(obj.w, R_LOCK) !== ownerTag(obj.env.current())) return true;
  obj.env.warn('lockdep-might-lock', `${site} called with the dma_resv lock held (would deadlock)`, {
    resv: obj.id,
  });
  return false;
}

// --- fence slots (lock held) ---

function writeBegin(obj: DmaResv): void {
  Atomics.add(obj.w, R_SEQ, 1);
}
function writeEnd(obj: DmaResv): void {
  Atomics.add(obj.w, R_SEQ, 1);
}

/**
 * `dma_resv_reserve_fences(obj, n)`: room for `n` more fences before the next unlock. -EINVAL for 0;
 * -ENOMEM past RESV_FENCES_MAX even after dropping signalled fences.
 */
export function dmaResvReserveFences(obj: DmaResv, n: number): number {
  dmaResvAssertHeld(obj, 'dma_resv_reserve_fences');
  if (!Number.isInteger(n) || n <= 0) {
    obj.env.warn('resv-reserve-zero', `dma_resv_reserve_fences(${n})`, { resv: obj.id });
    return -EINVAL;
  }
  const num = Atomics.load(obj.w, R_NUM);
  const max = Atomics.load(obj.w, R_MAX);
  if (num + n <= max) return 0;
  // Growing the list copies it, dropping signalled fences on the way (compaction).
  compact(obj);
  const now = Atomics.load(obj.w, R_NUM);
  const want = max === 0 ? Math.max(4, 2 ** Math.ceil(Math.log2(n))) : Math.max(now + n, 2 * max);
  const newMax = Math.min(Math.max(want, now + n), RESV_FENCES_MAX);
  if (now + n > RESV_FENCES_MAX) return -ENOMEM;
  Atomics.store(obj.w, R_MAX, newMax);
  return 0;
}

function compact(obj: DmaResv): void {
  const t = obj.env.fences;
  const num = Atomics.load(obj.w, R_NUM);
  writeBegin(obj);
  let j = 0;
  for (let i = 0; i < num; i++) {
    const f = obj.h[i] ?? -1;
    if (dmaFenceIsSignaled(t, f)) {
      dmaFencePut(t, f);
      continue;
    }
    obj.h[j] = f;
    setUsageAt(obj, j, usageAt(obj, i));
    j++;
  }
  Atomics.store(obj.w, R_NUM, j);
  writeEnd(obj);
}

/**
 * `dma_resv_add_fence(obj, fence, usage)`: takes a reference. Replaces in place a slot of the same
 * context whose usage is not weaker and whose fence is not later, or a signalled one; otherwise uses a
 * reserved slot. Returns 0, or -EINVAL when refused (a container fence, no reserved slot).
 */
export function dmaResvAddFence(obj: DmaResv, fence: FenceHandle, usage: DmaResvUsage): number {
  dmaResvAssertHeld(obj, 'dma_resv_add_fence');
  const env = obj.env;
  const t = env.fences;
  if (env.isContainer?.(fence)) {
    env.warn('resv-add-container', 'dma_resv_add_fence of a container fence: add its components', {
      resv: obj.id,
      fence,
    });
    return -EINVAL;
  }
  const num = Atomics.load(obj.w, R_NUM);
  const ctx = t.contextOf(fence);
  for (let i = 0; i < num; i++) {
    const old = obj.h[i] ?? -1;
    const oldUsage = usageAt(obj, i);
    const sameCtx = t.contextOf(old) === ctx;
    if ((sameCtx && oldUsage >= usage && dmaFenceIsLaterOrSame(t, fence, old)) || dmaFenceIsSignaled(t, old)) {
      dmaFenceGet(t, fence);
      writeBegin(obj);
      obj.h[i] = fence;
      setUsageAt(obj, i, usage);
      writeEnd(obj);
      dmaFencePut(t, old);
      return 0;
    }
  }
  if (num >= Atomics.load(obj.w, R_MAX)) {
    env.warn('resv-add-without-reserve', 'dma_resv_add_fence without a reserved slot (BUG_ON in the kernel)', {
      resv: obj.id,
      fence,
    });
    return -EINVAL;
  }
  dmaFenceGet(t, fence);
  writeBegin(obj);
  obj.h[num] = fence;
  setUsageAt(obj, num, usage);
  Atomics.store(obj.w, R_NUM, num + 1);
  writeEnd(obj);
  return 0;
}

/** `dma_resv_replace_fences(obj, context, replacement, usage)`. */
export function dmaResvReplaceFences(
  obj: DmaResv,
  context: number,
  replacement: FenceHandle,
  usage: DmaResvUsage,
): void {
  dmaResvAssertHeld(obj, 'dma_resv_replace_fences');
  const t = obj.env.fences;
  const num = Atomics.load(obj.w, R_NUM);
  for (let i = 0; i < num; i++) {
    const old = obj.h[i] ?? -1;
    if (t.contextOf(old) !== context) continue;
    dmaFenceGet(t, replacement);
    writeBegin(obj);
    obj.h[i] = replacement;
    setUsageAt(obj, i, usage);
    writeEnd(obj);
    dmaFencePut(t, old);
  }
}

/** One entry of an iteration. */
export interface ResvFence {
  fence: FenceHandle;
  usage: DmaResvUsage;
}

/** `dma_resv_for_each_fence` (locked): every fence of usage ≤ `usage`, signalled ones included. */
export function dmaResvForEachFenceLocked(obj: DmaResv, usage: DmaResvUsage): ResvFence[] {
  dmaResvAssertHeld(obj, 'dma_resv_for_each_fence');
  const out: ResvFence[] = [];
  const num = Atomics.load(obj.w, R_NUM);
  for (let i = 0; i < num; i++) {
    const u = usageAt(obj, i);
    if (u <= usage) out.push({ fence: obj.h[i] ?? -1, usage: u });
  }
  return out;
}

/**
 * `dma_resv_for_each_fence_unlocked` / `dma_resv_get_fences`: the unsignalled fences of usage ≤ `usage`,
 * each with a reference the caller must put. Lock-free: retries while a writer is mid-update.
 * `onSignalled` sees each fence of that usage found already signalled, with the usage of its slot (still
 * referenced while it runs): a happens-before detector must acquire those too — the caller skips them
 * only because they are done. It may see one fence twice when a torn read retries.
 */
export function dmaResvGetFences(
  obj: DmaResv,
  usage: DmaResvUsage,
  onSignalled?: (f: FenceHandle, usage: DmaResvUsage) => void,
): ResvFence[] {
  const t = obj.env.fences;
  for (;;) {
    const seq = Atomics.load(obj.w, R_SEQ);
    if (seq & 1) continue;
    const out: ResvFence[] = [];
    const num = Atomics.load(obj.w, R_NUM);
    let torn = false;
    for (let i = 0; i < num && i < RESV_FENCES_MAX; i++) {
      const u = usageAt(obj, i);
      if (u > usage) continue;
      const f = obj.h[i] ?? -1;
      if (!dmaFenceGetRcu(t, f)) {
        torn = true;
        break;
      }
      if (dmaFenceIsSignaled(t, f)) {
        onSignalled?.(f, u);
        dmaFencePut(t, f);
        continue;
      }
      out.push({ fence: f, usage: u });
    }
    if (!torn && Atomics.load(obj.w, R_SEQ) === seq) return out;
    for (const e of out) dmaFencePut(t, e.fence);
  }
}

/** `dma_resv_test_signaled(obj, usage)`: no unsignalled fence of usage ≤ `usage` remains. */
export function dmaResvTestSignaled(obj: DmaResv, usage: DmaResvUsage): boolean {
  const fences = dmaResvGetFences(obj, usage);
  for (const e of fences) dmaFencePut(obj.env.fences, e.fence);
  return fences.length === 0;
}

/**
 * `dma_resv_wait_timeout(obj, usage, intr, timeout)` (ns): time left (> 0) when every fence of usage ≤
 * `usage` has signalled, 0 on timeout; timeout 0 polls and returns 1 when all are done.
 */
export function dmaResvWaitTimeout(obj: DmaResv, usage: DmaResvUsage, intr: boolean, timeoutNs: number): number {
  const t = obj.env.fences;
  let left = timeoutNs;
  if (timeoutNs === 0) return dmaResvTestSignaled(obj, usage) ? 1 : 0;
  for (const e of dmaResvGetFences(obj, usage)) {
    const r = left > 0 ? dmaFenceWaitTimeout(t, e.fence, intr, left) : 0;
    dmaFencePut(t, e.fence);
    if (r <= 0) return r;
    left = r;
  }
  return left === MAX_SCHEDULE_TIMEOUT ? left : Math.max(1, left);
}

/** The kernel thread's twin of `dmaResvWaitTimeout`. */
export async function dmaResvWaitTimeoutAsync(
  obj: DmaResv,
  usage: DmaResvUsage,
  intr: boolean,
  timeoutNs: number,
): Promise<number> {
  const t = obj.env.fences;
  let left = timeoutNs;
  if (timeoutNs === 0) return dmaResvTestSignaled(obj, usage) ? 1 : 0;
  for (const e of dmaResvGetFences(obj, usage)) {
    const r = left > 0 ? await dmaFenceWaitTimeoutAsync(t, e.fence, intr, left) : 0;
    dmaFencePut(t, e.fence);
    if (r <= 0) return r;
    left = r;
  }
  return left === MAX_SCHEDULE_TIMEOUT ? left : Math.max(1, left);
}

/**
 * `dma_resv_get_singleton(obj, usage)`: null with no unsignalled fences, the fence itself for one, a new
 * dma_fence_array (fresh context, seqno 1) for several. The caller owns the returned reference.
 */
export function dmaResvGetSingleton(obj: DmaResv, usage: DmaResvUsage): FenceHandle | null | Errno {
  const fences = dmaResvGetFences(obj, usage).map((e) => e.fence);
  if (fences.length === 0) return null;
  if (fences.length === 1) return fences[0] ?? null;
  assert(obj.env.makeArray !== undefined, 'dma_resv_get_singleton needs dma_fence_array on this thread');
  return obj.env.makeArray(fences);
}

/** `dma_resv_set_deadline(obj, usage, deadline)`. */
export function dmaResvSetDeadline(obj: DmaResv, usage: DmaResvUsage, deadlineNs: number): void {
  const t = obj.env.fences;
  for (const e of dmaResvGetFences(obj, usage)) {
    dmaFenceSetDeadline(t, e.fence, deadlineNs);
    dmaFencePut(t, e.fence);
  }
}

/** Lines for debugfs bufinfo (`dma_resv_describe`): KERNEL, WRITE and READ fences; BOOKKEEP hidden. */
export function dmaResvDescribe(obj: DmaResv): string[] {
  const t = obj.env.fences;
  const out: string[] = [];
  const num = Atomics.load(obj.w, R_NUM);
  for (let i = 0; i < num; i++) {
    const u = usageAt(obj, i);
    if (u > DMA_RESV_USAGE_READ) continue;
    const f = obj.h[i] ?? -1;
    const state = dmaFenceIsSignaled(t, f) ? 'signalled' : 'unsignalled';
    out.push(
      `${USAGE_NAMES[u]} fence:${dmaFenceDriverName(t, f)} ${dmaFenceTimelineName(t, f)} seq ${t.seqnoOf(f)} ${state}`,
    );
  }
  return out;
}

/** Number of fences in the list (signalled ones included): for tests and bufinfo checks. */
export function dmaResvNumFences(obj: DmaResv): number {
  return Atomics.load(obj.w, R_NUM);
}
