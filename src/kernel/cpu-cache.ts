/**
 * A non-coherent CPU data cache, as on the ARM SoCs dma-buf heaps were written for.
 *
 * Contract:
 * - Set-associative, write-back, write-allocate; physically indexed and tagged, so every CPU mapping of a
 *   page shares its lines. Lines are `limits.cacheLineBytes`; replacement is round-robin per set, which is
 *   deterministic for a given access history (replay depends on it).
 * - Devices are not coherent with it: DMA reads memory (missing dirty CPU lines) and DMA writes memory
 *   (leaving stale CPU lines behind). Only cache maintenance makes the two agree:
 *     clean(range)      write dirty lines back, keep them valid   (arm64 dcache_clean_poc)
 *     invalidate(range) drop lines, dirty or not                    (arm64 dcache_inval_poc)
 *   which is what `arch_sync_dma_for_device` (always clean) and `arch_sync_dma_for_cpu` (invalidate unless
 *   DMA_TO_DEVICE) do in arch/arm64/mm/dma-mapping.c; see dma-mapping.ts.
 * - Uncached and write-combined mappings bypass it entirely (the caller decides, from the mapping's pgprot).
 * - Natural eviction writes dirty lines back at a time nobody chose: a missing SYNC END sometimes "works"
 *   on a big buffer and fails on a small one, as on real hardware.
 *
 * Storage is one SharedArrayBuffer, shared by the kernel thread and device workers that do CPU access
 * (one CPU, several threads acting for it), every operation under the cache lock:
 *   header               lock, ways, sets, valid lines
 *   tags[set*ways+way]   Float64 physical line number, -1 when invalid
 *   dirty[set*ways+way]  0/1
 *   next[set]            round-robin victim way
 *   data[(set*ways+way)*lineBytes ..]  the cached bytes
 */
import { assert } from './assert.js';
import { futexLock, futexUnlock } from './futex.js';
import { limits } from './limits.js';
import type { PhysicalMemory } from './memory.js';
import { RecyclePool } from './recycle-pool.js';

export interface CpuCacheStats {
  hits: number;
  misses: number;
  writebacks: number;
  evictions: number;
}

/** Where a physical address's bytes are, for whoever holds the cache (kernel: PhysicalMemory.view). */
export type PhysView = (phys: number, lengthBytes: number) => Uint8Array;

// Header (Int32): a futex mutex (0 free, 1 held, 2 held with sleepers), then the geometry, so a thread
// attaching to the cache learns its shape from the buffer itself.
const H_LOCK = 0;
const H_WAYS = 1;
const H_SETS = 2;
// Valid lines in the whole cache (Atomics; changed under the lock). Maintenance of an empty cache — every
// DMA map and allocation when no device uses the CPU — returns without the lock or a scan. Skipping on a
// zero read outside the lock is what taking the lock at that instant would have found: a line filled
// concurrently by another thread is unordered with this maintenance either way.
const H_VALID = 3;
const HEADER_BYTES = 64;

/** Caches of finished kernels on this thread (`CpuCache.recycle`), at most this many. */
export const CPU_CACHE_POOL_MAX = 4;
const cachePool = new RecyclePool<SharedArrayBuffer>(CPU_CACHE_POOL_MAX);

export class CpuCache {
  readonly lineBytes = limits.cacheLineBytes;
  readonly ways: number;
  readonly sets: number;
  readonly sab: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly tags: Float64Array;
  private readonly dirty: Uint8Array;
  private readonly next: Uint8Array;
  private readonly data: Uint8Array;
  private readonly view: PhysView;
  /** This thread's counts (not shared). */
  readonly stats: CpuCacheStats = { hits: 0, misses: 0, writebacks: 0, evictions: 0 };

  private constructor(sab: SharedArrayBuffer, view: PhysView) {
    this.sab = sab;
    this.view = view;
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.ways = this.header[H_WAYS] ?? 0;
    this.sets = this.header[H_SETS] ?? 0;
    assert(this.ways > 0 && this.sets > 0, 'cache buffer without a geometry');
    const slots = this.sets * this.ways;
    let at = HEADER_BYTES;
    this.tags = new Float64Array(sab, at, slots);
    at += slots * 8;
    this.dirty = new Uint8Array(sab, at, slots);
    at += slots;
    this.next = new Uint8Array(sab, at, this.sets);
    at += this.sets;
    this.data = new Uint8Array(sab, at, slots * this.lineBytes);
  }

  /** The kernel's cache, at boot. */
  static create(mem: PhysicalMemory, sizeBytes: number, ways: number): CpuCache {
    const lineBytes = limits.cacheLineBytes;
    assert(ways > 0 && ways <= 255, `bad associativity ${ways}`);
    assert(sizeBytes % (lineBytes * ways) === 0, 'cache size must be lines × ways × sets');
    const sets = sizeBytes / (lineBytes * ways);
    const slots = sets * ways;
    const view = (phys: number, n: number): Uint8Array => mem.view(phys, n);
    const pooled = cachePool.take((s) => {
      const h = new Int32Array(s, 0, HEADER_BYTES / 4);
      return h[H_WAYS] === ways && h[H_SETS] === sets;
    });
    if (pooled !== undefined) {
      const c = new CpuCache(pooled, view);
      c.reset();
      return c;
    }
    const sab = new SharedArrayBuffer(HEADER_BYTES + slots * 8 + slots + sets + slots * lineBytes);
    const header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    header[H_WAYS] = ways;
    header[H_SETS] = sets;
    new Float64Array(sab, HEADER_BYTES, slots).fill(-1);
    return new CpuCache(sab, view);
  }

  /**
   * The kernel is gone and no thread will touch this cache again: keep its buffer for the next kernel of
   * the same geometry on this thread, which gets it empty (`reset`).
   */
  recycle(): void {
    cachePool.give(this.sab);
  }

  /**
   * Empty, as a new cache is: no valid or dirty line, every set's victim pointer back at way 0 (from an
   * empty set, round-robin behaves the same from any starting way; reset anyway, so the buffer is exactly
   * a new one's). The line bytes need no clearing: only a valid line's bytes are ever read.
   */
  private reset(): void {
    assert(Atomics.load(this.header, H_LOCK) === 0, 'cache recycled while locked');
    if (!this.empty()) {
      this.tags.fill(-1);
      this.dirty.fill(0);
      Atomics.store(this.header, H_VALID, 0);
    }
    this.next.fill(0);
  }

  /** The same cache from another thread (a device worker doing CPU access). */
  static attach(sab: SharedArrayBuffer, view: PhysView): CpuCache {
    return new CpuCache(sab, view);
  }

  /**
   * One CPU, several threads acting for it: every operation holds the cache lock, so a line is never
   * half-filled or half-written-back when another thread looks at it.
   */
  private locked<T>(fn: () => T): T {
    futexLock(this.header, H_LOCK);
    try {
      return fn();
    } finally {
      futexUnlock(this.header, H_LOCK);
    }
  }

  /** CPU load of `dst.length` bytes at physical `phys` through the cache. */
  read(phys: number, dst: Uint8Array): void {
    this.locked(() =>
      this.walk(phys, dst.length, (slot, lineOff, bufOff, n) => {
        const base = slot * this.lineBytes + lineOff;
        dst.set(this.data.subarray(base, base + n), bufOff);
      }),
    );
  }

  /** CPU store of `src` at physical `phys` through the cache (write-allocate, marks lines dirty). */
  write(phys: number, src: Uint8Array): void {
    this.locked(() =>
      this.walk(phys, src.length, (slot, lineOff, bufOff, n) => {
        this.data.set(src.subarray(bufOff, bufOff + n), slot * this.lineBytes + lineOff);
        this.dirty[slot] = 1;
      }),
    );
  }

  /** Write back dirty lines in [phys, phys+len); lines stay valid and become clean. */
  clean(phys: number, lengthBytes: number): void {
    if (this.empty()) return;
    this.locked(() => this.forEachCached(phys, lengthBytes, (slot) => this.writeBack(slot)));
  }

  /** Drop every line in [phys, phys+len), discarding dirty data as dcache_inval_poc does. */
  invalidate(phys: number, lengthBytes: number): void {
    if (this.empty()) return;
    this.locked(() =>
      this.forEachCached(phys, lengthBytes, (slot) => {
        this.drop(slot);
        this.dirty[slot] = 0;
      }),
    );
  }

  /** Write back everything; used when memory is handed back to an allocator. */
  cleanInvalidate(phys: number, lengthBytes: number): void {
    if (this.empty()) return;
    this.locked(() =>
      this.forEachCached(phys, lengthBytes, (slot) => {
        this.writeBack(slot);
        this.drop(slot);
      }),
    );
  }

  /** No valid line anywhere (see H_VALID). */
  private empty(): boolean {
    return Atomics.load(this.header, H_VALID) === 0;
  }

  /** Invalidate a valid slot (cache lock held). */
  private drop(slot: number): void {
    this.tags[slot] = -1;
    Atomics.sub(this.header, H_VALID, 1);
  }

  /** Number of dirty lines in a range: lets tests and detectors see unflushed CPU writes. */
  dirtyLines(phys: number, lengthBytes: number): number {
    let n = 0;
    this.locked(() =>
      this.forEachCached(phys, lengthBytes, (slot) => {
        n += this.dirty[slot] ?? 0;
      }),
    );
    return n;
  }

  private walk(
    phys: number,
    lengthBytes: number,
    fn: (slot: number, lineOff: number, bufOff: number, n: number) => void,
  ): void {
    let done = 0;
    while (done < lengthBytes) {
      const addr = phys + done;
      const line = Math.floor(addr / this.lineBytes);
      const lineOff = addr - line * this.lineBytes;
      const n = Math.min(this.lineBytes - lineOff, lengthBytes - done);
      fn(this.lookupOrFill(line), lineOff, done, n);
      done += n;
    }
  }

  private lookupOrFill(line: number): number {
    const set = line % this.sets;
    const first = set * this.ways;
    for (let w = 0; w < this.ways; w++) {
      if (this.tags[first + w] === line) {
        this.stats.hits++;
        return first + w;
      }
    }
    this.stats.misses++;
    const way = this.next[set] ?? 0;
    this.next[set] = (way + 1) % this.ways;
    const slot = first + way;
    if ((this.tags[slot] ?? -1) >= 0) {
      this.stats.evictions++;
      this.writeBack(slot);
    } else {
      Atomics.add(this.header, H_VALID, 1);
    }
    this.tags[slot] = line;
    this.dirty[slot] = 0;
    this.data.set(this.view(line * this.lineBytes, this.lineBytes), slot * this.lineBytes);
    return slot;
  }

  private writeBack(slot: number): void {
    if (!this.dirty[slot]) return;
    const line = this.tags[slot] ?? -1;
    assert(line >= 0, 'dirty slot without a tag');
    const base = slot * this.lineBytes;
    this.view(line * this.lineBytes, this.lineBytes).set(this.data.subarray(base, base + this.lineBytes));
    this.dirty[slot] = 0;
    this.stats.writebacks++;
  }

  /** Visit cached slots of a range; scans whichever is smaller, the range or the cache. */
  private forEachCached(phys: number, lengthBytes: number, fn: (slot: number) => void): void {
    if (lengthBytes <= 0) return;
    const firstLine = Math.floor(phys / this.lineBytes);
    const lastLine = Math.floor((phys + lengthBytes - 1) / this.lineBytes);
    const rangeLines = lastLine - firstLine + 1;
    if (rangeLines <= this.sets) {
      for (let line = firstLine; line <= lastLine; line++) {
        const first = (line % this.sets) * this.ways;
        for (let w = 0; w < this.ways; w++) if (this.tags[first + w] === line) fn(first + w);
      }
      return;
    }
    for (let slot = 0; slot < this.tags.length; slot++) {
      const t = this.tags[slot] ?? -1;
      if (t >= firstLine && t <= lastLine) fn(slot);
    }
  }
}
