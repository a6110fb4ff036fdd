/**
 * The system heap (drivers/dma-buf/heaps/system_heap.c) and its uncached twin (Android's out-of-tree
 * `system-uncached`; there is no upstream uncached heap).
 *
 * Contract:
 * - Pages come from the buddy allocator in chunks of order 8, 4, 0 (1 MiB, 64 KiB, 4 KiB), largest first;
 *   an order is skipped when it exceeds what is left, and the order never grows again, so chunk sizes are
 *   non-increasing ("designed to match with the sizes often found in IOMMUs"). High orders are tried
 *   without reclaim (__GFP_NORETRY): when no block is free at an order, the next order down is tried.
 * - Every page is zeroed before the buffer is visible; any stale CPU cache lines of it are dropped first,
 *   so a cached read of a new buffer can never see a previous owner's bytes.
 * - One sg entry per chunk.
 */
import { type DmaBuf, type DmaBufList, dmaBufExport } from '../dma-buf.js';
import type { DmaHeap, DmaHeapOps, HeapProperties } from '../dma-heap.js';
import { ENOMEM, type Errno, isErr } from '../errno.js';
import type { KernelCore } from '../kernel-core.js';
import type { PageRun } from '../memory.js';
import type { BuddyAllocator } from '../page-alloc.js';
import { PAGE_SIZE } from '../uapi.js';
import { type PageBuffer, pageBufferOps } from './page-buffer.js';

/** `orders[] = {8, 4, 0}` in system_heap.c. */
export const SYSTEM_HEAP_ORDERS = Object.freeze([8, 4, 0]);

/** Cached and uncached buffers share ops: the difference is `PageBuffer.cached`. */
const ops = pageBufferOps('remap-per-page');

export interface SystemHeapPriv {
  readonly buddy: BuddyAllocator;
  readonly cached: boolean;
}

export function systemHeapProperties(buddy: BuddyAllocator, cached: boolean): HeapProperties {
  return {
    backing: 'buddy',
    contiguity: 'virtual',
    cpuCache: cached ? 'cached' : 'uncached',
    restriction: { kind: 'none' },
    granularityBytes: PAGE_SIZE,
    capacityBytes: buddy.totalPages * PAGE_SIZE,
    zeroed: true,
  };
}

export function systemHeapOps(k: KernelCore, list: DmaBufList): DmaHeapOps {
  return {
    allocate(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
      const { buddy, cached } = heap.priv as SystemHeapPriv;
      // The greedy loop below would fail the same way after churning the allocator; fail first.
      if (lenBytes / PAGE_SIZE > buddy.freePageCount) return -ENOMEM;
      const chunks: { pfn: number; order: number }[] = [];
      let remaining = lenBytes;
      let maxOrder = SYSTEM_HEAP_ORDERS[0] ?? 0;
      while (remaining > 0) {
        const got = allocLargestAvailable(buddy, remaining, maxOrder);
        if (got === null) {
          for (const c of chunks) buddy.freeBlock(c.pfn, c.order);
          return -ENOMEM;
        }
        chunks.push(got);
        remaining -= PAGE_SIZE << got.order;
        maxOrder = got.order;
      }
      const runs: PageRun[] = chunks.map((c) => ({ pfn: c.pfn, pageCount: 1 << c.order }));
      for (const r of runs) {
        k.cache.invalidate(r.pfn * PAGE_SIZE, r.pageCount * PAGE_SIZE);
        k.mem.zeroRun(r);
      }
      const buf: PageBuffer = {
        runs,
        pageCount: lenBytes / PAGE_SIZE,
        cached,
        free: () => {
          for (const c of chunks) buddy.freeBlock(c.pfn, c.order);
        },
      };
      const dmabuf = dmaBufExport(k, list, {
        expName: heap.name,
        ops,
        sizeBytes: lenBytes,
        flags: fdFlags,
        priv: buf,
      });
      if (isErr(dmabuf)) buf.free();
      return dmabuf;
    },
  };
}

/** `alloc_largest_available`. */
function allocLargestAvailable(
  buddy: BuddyAllocator,
  sizeBytes: number,
  maxOrder: number,
): { pfn: number; order: number } | null {
  for (const order of SYSTEM_HEAP_ORDERS) {
    if (sizeBytes < PAGE_SIZE << order) continue;
    if (maxOrder < order) continue;
    const pfn = buddy.allocPages(order);
    if (pfn === null) continue;
    return { pfn, order };
  }
  return null;
}
