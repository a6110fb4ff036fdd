/**
 * TEE protected heaps (drivers/tee/tee_heap.c, merged for v6.18): one heap per use case, named
 * `protected,<use case>`, each over a pool of its own ("different use-cases require isolation from
 * different parts of the system"). The pool here is a static carveout, page granular, one contiguous run
 * per buffer (tee_protmem_static_pool_alloc builds one sg entry).
 *
 * Contract:
 * - The buffer ops are attach, detach, map, unmap and release, nothing else (tee_heap_buf_ops). So, in the
 *   dma-buf core: mmap and vmap fail with -EINVAL (no op), DMA_BUF_IOCTL_SYNC only waits for fences and
 *   returns 0 (no begin/end_cpu_access), and attach always succeeds — the kernel does no device check; the
 *   hardware firewall keeps other bus masters out (kernel-semantics.md §9.2).
 * - Map uses DMA_ATTR_SKIP_CPU_SYNC: no cache maintenance for memory the CPU never touches.
 * - The firewall is data on the heap (and, from allocation on, on each buffer: `DmaBuf.restriction`), not
 *   code: `restriction.firewall` lists the DMA masters (device names or device models) it admits. A master
 *   it does not admit reaches no memory — reads see zeros, writes go nowhere — and is reported: kernel-side
 *   importers (vgem) in dmaBufDeviceSpans (`restricted-dma`), farm devices at their attach
 *   (`restricted-attach`, device-service.ts; their accesses never pass through the kernel).
 * - Allocation failure is -ENOMEM (the static pool's gen_pool_alloc failing).
 */

import type { BitmapArea } from '../bitmap-area.js';
import { type DmaBuf, type DmaBufAttachment, type DmaBufList, type DmaBufOps, dmaBufExport } from '../dma-buf.js';
import type { DmaHeap, DmaHeapOps, HeapProperties } from '../dma-heap.js';
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDataDirection, type SgTable } from '../dma-mapping.js';
import { ENOMEM, type Errno, isErr } from '../errno.js';
import type { KernelCore } from '../kernel-core.js';
import type { PageRun } from '../memory.js';
import { PAGE_SIZE } from '../uapi.js';

/** `enum tee_dma_heap_id` (SECURE_VIDEO_PLAY = 1, TRUSTED_UI, SECURE_VIDEO_RECORD), by heap-name suffix. */
export const PROTECTED_USE_CASES = ['secure-video', 'trusted-ui', 'secure-video-record'] as const;
export type ProtectedUseCase = (typeof PROTECTED_USE_CASES)[number];

/**
 * Who the firewall admits when a scenario does not say: the devices each use case exists for (secure video
 * path: the decoder writes, the display scans out; trusted UI: the display; secure record: the camera), and
 * the TEE, which owns the pools. A GPU is admitted only where a scenario lists it (a GPU protected mode).
 */
export const DEFAULT_FIREWALL: Readonly<Record<ProtectedUseCase, readonly string[]>> = Object.freeze({
  'secure-video': Object.freeze(['video-decoder', 'display', 'tee']),
  'trusted-ui': Object.freeze(['display', 'tee']),
  'secure-video-record': Object.freeze(['camera', 'tee']),
});

export const protectedHeapName = (useCase: ProtectedUseCase): string => `protected,${useCase}`;

export function teeHeapProperties(
  pool: BitmapArea,
  useCase: ProtectedUseCase,
  firewall: readonly string[],
): HeapProperties {
  return {
    backing: 'tee-pool-static',
    contiguity: 'physical',
    cpuCache: 'uncached',
    restriction: { kind: 'protected', useCase, firewall: Object.freeze([...firewall]) },
    granularityBytes: PAGE_SIZE,
    capacityBytes: pool.totalPages * PAGE_SIZE,
    zeroed: true,
  };
}

interface TeeBuffer {
  readonly run: PageRun;
  readonly free: () => void;
}

const bufOf = (d: DmaBuf): TeeBuffer => d.priv as TeeBuffer;

/** tee_heap_buf_ops: the whole list. Everything missing is the policy. */
const teeBufOps: DmaBufOps = Object.freeze({
  attach(_d: DmaBuf, _attach: DmaBufAttachment): number {
    return 0;
  },
  detach(_d: DmaBuf, _attach: DmaBufAttachment): void {},
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    return attach.dmabuf.kernel.dma.mapSgtable(attach.dev, [bufOf(attach.dmabuf).run], dir, DMA_ATTR_SKIP_CPU_SYNC);
  },
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    attach.dmabuf.kernel.dma.unmapSgtable(sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
  },
  release(d: DmaBuf): void {
    bufOf(d).free();
  },
});

export function teeHeapOps(k: KernelCore, list: DmaBufList, pool: BitmapArea): DmaHeapOps {
  return {
    allocate(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
      const pageCount = lenBytes / PAGE_SIZE;
      const run = pool.takeRun(pageCount);
      if (run === null) return -ENOMEM;
      // The secure world hands out cleared memory; the CPU has no lines of it to invalidate.
      k.mem.zeroRun(run);
      const buf: TeeBuffer = { run, free: () => pool.release(run.pfn, pageCount) };
      const dmabuf = dmaBufExport(k, list, {
        expName: heap.name,
        ops: teeBufOps,
        sizeBytes: lenBytes,
        flags: fdFlags,
        priv: buf,
      });
      if (isErr(dmabuf)) buf.free();
      return dmabuf;
    },
  };
}
