/**
 * The CMA heap (drivers/dma-buf/heaps/cma_heap.c): physically contiguous buffers from a CMA area.
 *
 * Contract:
 * - One contiguous run per buffer, aligned to min(get_order(size), CONFIG_CMA_ALIGNMENT) like
 *   `cma_alloc(cma, pagecount, align, false)`; no fit is -ENOMEM. Zeroed before it is visible.
 * - mmap needs a shared mapping (VM_SHARED|VM_MAYSHARE), so MAP_PRIVATE is -EINVAL; pages fault in lazily.
 * - The heap is named `default_cma_region` ([ML] v6.17). With the legacy option a second heap named after
 *   the CMA area (`linux,cma`) allocates from the same area.
 */

import type { BitmapArea } from '../bitmap-area.js';
import { type DmaBuf, type DmaBufList, dmaBufExport } from '../dma-buf.js';
import type { DmaHeap, DmaHeapOps, HeapProperties } from '../dma-heap.js';
import { ENOMEM, type Errno, isErr } from '../errno.js';
import type { KernelCore } from '../kernel-core.js';
import { limits } from '../limits.js';
import { PAGE_SIZE } from '../uapi.js';
import { type PageBuffer, pageBufferOps } from './page-buffer.js';

export const CMA_HEAP_NAME = 'default_cma_region';
export const CMA_LEGACY_HEAP_NAME = 'linux,cma';

const ops = pageBufferOps('fault-shared-only');

/** `get_order(size)`: smallest order whose block holds `sizeBytes`. */
export function getOrder(sizeBytes: number): number {
  let order = 0;
  // Multiply, not shift: PAGE_SIZE << 19 overflows int32 and a 2 GiB request would loop forever.
  while (PAGE_SIZE * 2 ** order < sizeBytes) order++;
  return order;
}

export function cmaHeapProperties(area: BitmapArea, aliases: readonly string[]): HeapProperties {
  return {
    backing: 'cma-area',
    contiguity: 'physical',
    cpuCache: 'cached',
    restriction: { kind: 'none' },
    granularityBytes: PAGE_SIZE,
    capacityBytes: area.totalPages * PAGE_SIZE,
    zeroed: true,
    poolShares: aliases,
  };
}

export function cmaHeapOps(k: KernelCore, list: DmaBufList, area: BitmapArea): DmaHeapOps {
  return {
    allocate(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
      const pageCount = lenBytes / PAGE_SIZE;
      const align = Math.min(getOrder(lenBytes), limits.cmaAlignmentOrderMax);
      if (pageCount > area.totalPages - area.usedPages) return -ENOMEM;
      const pfn = area.alloc(pageCount, align);
      if (pfn === null) return -ENOMEM;
      const run = { pfn, pageCount };
      k.cache.invalidate(pfn * PAGE_SIZE, lenBytes);
      k.mem.zeroRun(run);
      const buf: PageBuffer = { runs: [run], pageCount, cached: true, free: () => area.release(pfn, pageCount) };
      const dmabuf = dmaBufExport(k, list, { expName: heap.name, ops, sizeBytes: lenBytes, flags: fdFlags, priv: buf });
      if (isErr(dmabuf)) buf.free();
      return dmabuf;
    },
  };
}
