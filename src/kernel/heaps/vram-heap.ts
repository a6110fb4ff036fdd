/**
 * Device-local memory (a GPU's VRAM) as a dynamic exporter: TTM's VRAM domain, reduced to what importers
 * observe — buffers that move, and tell their dynamic importers when they do.
 *
 * Contract:
 * - The heap 'vram' exists only when the kernel boots with `memory.vramBytes > 0`. Its pages are an arena
 *   of their own, handed out first fit as one contiguous run per buffer (contiguity 'physical'), zeroed,
 *   uncached. There is no CPU path (no mmap, no vmap, no begin/end_cpu_access): the CPU has no BAR here.
 * - Pin and unpin keep a pin count. Static importers are pinned by the framework for the life of each
 *   mapping; dynamic importers are not, and may pin explicitly. A pinned buffer never moves.
 * - `map_dma_buf` returns the DMA addresses of wherever the bytes are now.
 * - `vramEvict(k, dmabuf)`, under the buffer's resv lock: an unpinned, idle buffer's bytes are copied to
 *   system pages — from the system heap's buddy allocator, in chunks of order 8/4/0 as system_heap takes
 *   them (a real GPU's GTT domain is ordinary system memory too, so eviction competes with every other
 *   system allocation, as it does on a phone) — its VRAM run is freed, and `dma_buf_move_notify` tells
 *   every dynamic importer. Returns the bytes moved; 0 when the buffer is already in system memory.
 *   -EBUSY when pinned, or busy: moves are not pipelined behind fences here (TTM's no_wait_gpu eviction),
 *   so a buffer with unsignalled fences in its resv stays put. -ENOMEM when system memory is full.
 * - The old VRAM run is freed at once. Until an importer unmaps, it may still read through its old table
 *   (kernel-semantics §3.5: speculative reads, discarded); a write through it lands in memory the buffer no
 *   longer owns — the misuse the device farm's mapping table reports as dma-write-after-move-notify.
 * - Allocation under pressure: when no run fits, the least recently used resident buffer that can move
 *   (unpinned, idle, resv lock free: taken with trylock, as TTM's eviction does) is evicted and the
 *   allocation retried, until it fits (-ENOMEM when nothing more can move). "Used" is allocated, pinned or
 *   mapped: the kernel sees no device access in between, just as TTM only sees command submissions.
 * - An evicted buffer comes back into VRAM at its next map or pin, when a run is free without evicting
 *   anyone, it is idle, and no importer holds a mapping of it (so nobody holds an address that changes and
 *   nobody needs telling) — TTM validating a buffer into its preferred domain.
 * - `vramStats(heap)` counts evictions, bytes evicted and restores; every eviction also publishes
 *   `kernel:dmabuf:move-notify`.
 */
import { assert } from '../assert.js';
import type { BitmapArea } from '../bitmap-area.js';
import { type DmaBuf, type DmaBufAttachment, type DmaBufList, dmaBufExport, dmaBufMoveNotify } from '../dma-buf.js';
import type { DmaHeap, DmaHeapOps, HeapProperties } from '../dma-heap.js';
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDataDirection, type SgTable } from '../dma-mapping.js';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  dmaResvAssertHeld,
  dmaResvLock,
  dmaResvTestSignaled,
  dmaResvTrylock,
  dmaResvUnlock,
} from '../dma-resv.js';
import { EBUSY, EINVAL, ENOMEM, type Errno, isErr } from '../errno.js';
import type { KernelCore } from '../kernel-core.js';
import type { PageRun } from '../memory.js';
import type { BuddyAllocator } from '../page-alloc.js';
import { PAGE_SIZE } from '../uapi.js';
import { SYSTEM_HEAP_ORDERS } from './system-heap.js';

export const VRAM_HEAP_NAME = 'vram';

export interface VramStats {
  /** Buffers moved out of VRAM (by request or under allocation pressure). */
  evictions: number;
  evictedBytes: number;
  /** Evicted buffers moved back in at a map or pin. */
  restores: number;
}

export interface VramHeapPriv {
  readonly area: BitmapArea;
  /** Where evicted bytes go: the system heap's allocator. */
  readonly system: BuddyAllocator;
  /**
   * Resident buffers, least recently used first (a Set keeps insertion order; a touch re-inserts). Bounded
   * by the arena's page count: every resident buffer holds at least one page of it.
   */
  readonly lru: Set<VramBuffer>;
  readonly stats: VramStats;
}

interface VramBuffer {
  readonly heap: VramHeapPriv;
  readonly pageCount: number;
  placement: 'vram' | 'system';
  /** The VRAM run while resident, the system chunks while evicted: what map hands out. */
  runs: PageRun[];
  /** System chunks (buddy blocks) while evicted, for freeing them. */
  chunks: { pfn: number; order: number }[];
  pinCount: number;
}

export function vramHeapPriv(area: BitmapArea, system: BuddyAllocator): VramHeapPriv {
  return { area, system, lru: new Set(), stats: { evictions: 0, evictedBytes: 0, restores: 0 } };
}

export function vramHeapProperties(area: BitmapArea): HeapProperties {
  return {
    backing: 'device-local',
    contiguity: 'physical',
    cpuCache: 'uncached',
    restriction: { kind: 'none' },
    granularityBytes: PAGE_SIZE,
    capacityBytes: area.totalPages * PAGE_SIZE,
    zeroed: true,
  };
}

/** The heap's eviction counters (live: the object is the heap's own). */
export function vramStats(heap: DmaHeap): Readonly<VramStats> {
  return (heap.priv as VramHeapPriv).stats;
}

/** True for a buffer this exporter made (the ops table's identity is the type check, as tee_heap does). */
export function isVramBuffer(dmabuf: DmaBuf): boolean {
  return dmabuf.ops === vramBufOps;
}

/** Where a VRAM buffer's bytes are now. */
export function vramPlacement(dmabuf: DmaBuf): 'vram' | 'system' {
  assert(isVramBuffer(dmabuf), `dma-buf ${dmabuf.ino} is not a vram buffer`);
  return (dmabuf.priv as VramBuffer).placement;
}

function touch(buf: VramBuffer): void {
  if (buf.placement !== 'vram') return;
  buf.heap.lru.delete(buf);
  buf.heap.lru.add(buf);
  assert(buf.heap.lru.size <= buf.heap.area.totalPages, 'more resident vram buffers than vram pages');
}

function bytesOf(k: KernelCore, runs: readonly PageRun[], fn: (view: Uint8Array, at: number) => void): void {
  let at = 0;
  for (const r of runs) {
    const n = r.pageCount * PAGE_SIZE;
    fn(k.mem.view(r.pfn * PAGE_SIZE, n), at);
    at += n;
  }
}

/** Copy every byte of `source` runs into `target` runs (the copy engine: straight to memory, no cache). */
function copyRuns(k: KernelCore, source: readonly PageRun[], target: readonly PageRun[], sizeBytes: number): void {
  const staging = new Uint8Array(sizeBytes);
  bytesOf(k, source, (v, at) => staging.set(v, at));
  bytesOf(k, target, (v, at) => v.set(staging.subarray(at, at + v.length)));
}

/** System pages for an eviction, largest chunks first (system_heap's alloc_largest_available). */
function allocSystemChunks(system: BuddyAllocator, pageCount: number): { pfn: number; order: number }[] | null {
  if (pageCount > system.freePageCount) return null;
  const chunks: { pfn: number; order: number }[] = [];
  let left = pageCount;
  let maxOrder = SYSTEM_HEAP_ORDERS[0] ?? 0;
  while (left > 0) {
    let got: { pfn: number; order: number } | null = null;
    for (const order of SYSTEM_HEAP_ORDERS) {
      if (order > maxOrder || 1 << order > left) continue;
      const pfn = system.allocPages(order);
      if (pfn !== null) {
        got = { pfn, order };
        break;
      }
    }
    if (got === null) {
      for (const c of chunks) system.freeBlock(c.pfn, c.order);
      return null;
    }
    chunks.push(got);
    left -= 1 << got.order;
    maxOrder = got.order;
  }
  return chunks;
}

function idle(dmabuf: DmaBuf): boolean {
  return dmaResvTestSignaled(dmabuf.resv, DMA_RESV_USAGE_BOOKKEEP);
}

/** The move itself; resv held. Returns bytes moved or -errno. */
function evictLocked(k: KernelCore, dmabuf: DmaBuf): number {
  dmaResvAssertHeld(dmabuf.resv, 'vram_evict');
  const buf = dmabuf.priv as VramBuffer;
  if (buf.placement === 'system') return 0;
  if (buf.pinCount > 0 || !idle(dmabuf)) return -EBUSY;
  const chunks = allocSystemChunks(buf.heap.system, buf.pageCount);
  if (chunks === null) return -ENOMEM;
  const target = chunks.map((c) => ({ pfn: c.pfn, pageCount: 1 << c.order }));
  // A previous owner's dirty lines must not be written back over the moved bytes later.
  for (const r of target) k.cache.invalidate(r.pfn * PAGE_SIZE, r.pageCount * PAGE_SIZE);
  copyRuns(k, buf.runs, target, dmabuf.sizeBytes);
  const [run] = buf.runs;
  assert(run !== undefined && buf.runs.length === 1, 'a resident vram buffer is one run');
  buf.heap.area.release(run.pfn, run.pageCount);
  buf.heap.lru.delete(buf);
  buf.placement = 'system';
  buf.runs = target;
  buf.chunks = chunks;
  buf.heap.stats.evictions++;
  buf.heap.stats.evictedBytes += dmabuf.sizeBytes;
  dmaBufMoveNotify(dmabuf);
  return dmabuf.sizeBytes;
}

/** Back into VRAM if that needs nobody evicted and nobody told (see the contract); resv held. */
function restoreLocked(k: KernelCore, dmabuf: DmaBuf): void {
  const buf = dmabuf.priv as VramBuffer;
  if (buf.placement === 'vram' || buf.pinCount > 0) return;
  if (dmabuf.attachments.some((a) => a.liveMaps.size > 0) || !idle(dmabuf)) return;
  const pfn = buf.heap.area.alloc(buf.pageCount, 0);
  if (pfn === null) return;
  const run = { pfn, pageCount: buf.pageCount };
  copyRuns(k, buf.runs, [run], dmabuf.sizeBytes);
  for (const c of buf.chunks) buf.heap.system.freeBlock(c.pfn, c.order);
  buf.chunks = [];
  buf.runs = [run];
  buf.placement = 'vram';
  buf.heap.stats.restores++;
  touch(buf);
}

/**
 * `vramEvict(k, dmabuf)`: move the buffer's bytes to system memory and tell its dynamic importers. Takes
 * the resv lock (call without it). Bytes moved, 0 when already out of VRAM, -EINVAL for a buffer of
 * another exporter, -EBUSY pinned or busy, -ENOMEM no system memory.
 */
export function vramEvict(k: KernelCore, dmabuf: DmaBuf): number {
  assert(dmabuf.kernel === k, `dma-buf ${dmabuf.ino} belongs to another kernel`);
  if (!isVramBuffer(dmabuf) || dmabuf.released) return -EINVAL;
  const ret = dmaResvLock(dmabuf.resv, null);
  if (ret) return ret;
  try {
    return evictLocked(k, dmabuf);
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

/** `vramEvict` for a caller that already holds the resv lock (it took it with a trylock). */
export function vramEvictLocked(k: KernelCore, dmabuf: DmaBuf): number {
  assert(dmabuf.kernel === k, `dma-buf ${dmabuf.ino} belongs to another kernel`);
  if (!isVramBuffer(dmabuf) || dmabuf.released) return -EINVAL;
  return evictLocked(k, dmabuf);
}

/** Evict the least recently used buffer that can move; false when none can. */
function evictOne(k: KernelCore, heap: VramHeapPriv, bufs: WeakMap<VramBuffer, DmaBuf>): boolean {
  for (const victim of [...heap.lru]) {
    const dmabuf = bufs.get(victim);
    assert(dmabuf !== undefined, 'resident vram buffer with no dma-buf');
    if (victim.pinCount > 0 || !dmaResvTrylock(dmabuf.resv)) continue;
    try {
      if (evictLocked(k, dmabuf) > 0) return true;
    } finally {
      dmaResvUnlock(dmabuf.resv);
    }
  }
  return false;
}

/** Dma-buf of each buffer, for the LRU walk (the LRU holds exporter state, the walk needs the resv). */
const dmabufOf = new WeakMap<VramBuffer, DmaBuf>();

export function vramHeapOps(k: KernelCore, list: DmaBufList): DmaHeapOps {
  return {
    allocate(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
      const priv = heap.priv as VramHeapPriv;
      const pageCount = lenBytes / PAGE_SIZE;
      if (pageCount > priv.area.totalPages) return -ENOMEM;
      let pfn = priv.area.alloc(pageCount, 0);
      // Each round evicts one buffer, so this ends within the LRU's size.
      while (pfn === null && evictOne(k, priv, dmabufOf)) pfn = priv.area.alloc(pageCount, 0);
      if (pfn === null) return -ENOMEM;
      const run = { pfn, pageCount };
      k.cache.invalidate(pfn * PAGE_SIZE, lenBytes);
      k.mem.zeroRun(run);
      const buf: VramBuffer = { heap: priv, pageCount, placement: 'vram', runs: [run], chunks: [], pinCount: 0 };
      const dmabuf = dmaBufExport(k, list, {
        expName: heap.name,
        ops: vramBufOps,
        sizeBytes: lenBytes,
        flags: fdFlags,
        priv: buf,
      });
      if (isErr(dmabuf)) {
        priv.area.release(pfn, pageCount);
        return dmabuf;
      }
      dmabufOf.set(buf, dmabuf);
      touch(buf);
      return dmabuf;
    },
  };
}

const vramBufOps = Object.freeze({
  pin(attach: DmaBufAttachment): number {
    const buf = attach.dmabuf.priv as VramBuffer;
    if (buf.pinCount === 0) restoreLocked(attach.dmabuf.kernel, attach.dmabuf);
    buf.pinCount++;
    touch(buf);
    return 0;
  },
  unpin(attach: DmaBufAttachment): void {
    const buf = attach.dmabuf.priv as VramBuffer;
    if (buf.pinCount === 0) {
      attach.dmabuf.kernel.warn('vram-unpin-unpinned', 'unpin of a vram buffer that is not pinned', {
        ino: attach.dmabuf.ino,
        device: attach.dev.name,
      });
      return;
    }
    buf.pinCount--;
  },
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const k = attach.dmabuf.kernel;
    const buf = attach.dmabuf.priv as VramBuffer;
    restoreLocked(k, attach.dmabuf);
    touch(buf);
    // Uncached, and no CPU ever maps it: no cache maintenance on map or unmap.
    return k.dma.mapSgtable(attach.dev, buf.runs, dir, DMA_ATTR_SKIP_CPU_SYNC);
  },
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    attach.dmabuf.kernel.dma.unmapSgtable(sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
  },
  release(dmabuf: DmaBuf): void {
    const buf = dmabuf.priv as VramBuffer;
    if (buf.placement === 'vram') {
      const [run] = buf.runs;
      assert(run !== undefined, 'a resident vram buffer has its run');
      buf.heap.area.release(run.pfn, run.pageCount);
      buf.heap.lru.delete(buf);
    } else {
      for (const c of buf.chunks) buf.heap.system.freeBlock(c.pfn, c.order);
    }
    buf.runs = [];
    buf.chunks = [];
  },
});
