/**
 * A carveout heap: a fixed reserved-memory region handed out by a gen_pool, first fit, page granular
 * (the shape of the 2025 reserved-memory heap series and of TEE static pools; not mainline).
 *
 * Contract: one contiguous run per buffer, no alignment beyond a page, zeroed before it is visible,
 * cached CPU mappings installed with one `remap_pfn_range` over the VMA (so MAP_PRIVATE works).
 */

import type { BitmapArea } from '../bitmap-area.js';
import { type DmaBuf, type DmaBufList, dmaBufExport } from '../dma-buf.js';
import type { DmaHeap, DmaHeapOps, HeapProperties } from '../dma-heap.js';
import { ENOMEM, type Errno, isErr } from '../errno.js';
import type { KernelCore } from '../kernel-core.js';
import { PAGE_SIZE } from '../uapi.js';
import { type PageBuffer, pageBufferOps } from './page-buffer.js';

export const CARVEOUT_HEAP_NAME = 'carveout';
const ops = pageBufferOps('remap-whole');

export function carveoutHeapProperties(pool: BitmapArea): HeapProperties {
  return {
    backing: 'carveout',
    contiguity: 'physical',
    cpuCache: 'cached',
    restriction: { kind: 'none' },
    granularityBytes: PAGE_SIZE,
    capacityBytes: pool.totalPages * PAGE_SIZE,
    zeroed: true,
  };
}

export function carveoutHeapOps(k: KernelCore, list: DmaBufList, pool: BitmapArea): DmaHeapOps {
  return {
    allocate(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
      const pageCount = lenBytes / PAGE_SIZE;
      const run = pool.takeRun(pageCount);
      if (run === null) return -ENOMEM;
      // Stale CPU lines go first (discarded, not written back), so none can land over the zeros.
      k.cache.invalidate(run.pfn * PAGE_SIZE, lenBytes);
      k.mem.zeroRun(run);
      const buf: PageBuffer = { runs: [run], pageCount, cached: true, free: () => pool.release(run.pfn, pageCount) };
      const dmabuf = dmaBufExport(k, list, { expName: heap.name, ops, sizeBytes: lenBytes, flags: fdFlags, priv: buf });
      if (isErr(dmabuf)) buf.free();
      return dmabuf;
    },
  };
}
