/**
 * The buffer ops the page-backed heaps share (system, system-uncached, CMA, carveout): what
 * system_heap.c and cma_heap.c both do, parameterised by the two things that differ between them —
 * whether CPU mappings are cached, and how mmap installs pages.
 *
 * Contract:
 * - Each attachment has a `mapped` flag (system_heap's `dma_heap_attachment.mapped`): begin/end_cpu_access
 *   maintain the cache only for mapped attachments, exactly as the kernel heaps do. So a SYNC with no
 *   device mapped does no cache maintenance at all; `dma_map_sgtable` cleans on map instead.
 * - Uncached buffers map with DMA_ATTR_SKIP_CPU_SYNC, mmap write-combined, and do no maintenance (the
 *   Android system-uncached heap).
 * - `release` hands the pages back to the heap's allocator through `free`; nothing else frees them.
 */
import { assert } from '../assert.js';
import type { DmaBuf, DmaBufAttachment, DmaBufOps, KernelVmap } from '../dma-buf.js';
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDataDirection, type SgTable } from '../dma-mapping.js';
import { EINVAL } from '../errno.js';
import type { PageRun } from '../memory.js';
import { isCowMapping, VM_FAULT_SIGBUS, VM_IO, VM_MAYSHARE, VM_PFNMAP, VM_SHARED, type Vma } from '../mm.js';
import { PAGE_SIZE } from '../uapi.js';

/**
 * How the exporter's mmap installs pages:
 * - 'remap-per-page': `remap_pfn_range` once per page (system_heap_mmap); on a private mapping that only
 *   works when the VMA is exactly one page (kernel-semantics §11 A1).
 * - 'fault-shared-only': lazy faults, shared mappings only (cma_heap_mmap: MAP_PRIVATE is -EINVAL).
 * - 'remap-whole': one `remap_pfn_range` over the whole VMA (our carveout heap; private mappings allowed).
 */
export type MmapStyle = 'remap-per-page' | 'fault-shared-only' | 'remap-whole';

export interface PageBuffer {
  readonly runs: readonly PageRun[];
  readonly pageCount: number;
  readonly cached: boolean;
  /** Give the pages back to the allocator. Called exactly once, from release. */
  readonly free: () => void;
  /** pfn of each page, built on first mmap. */
  pfns?: Float64Array;
}

interface HeapAttachment {
  mapped: boolean;
}

function pfnTable(buf: PageBuffer): Float64Array {
  if (buf.pfns) return buf.pfns;
  const pfns = new Float64Array(buf.pageCount);
  let i = 0;
  for (const r of buf.runs) for (let p = 0; p < r.pageCount; p++) pfns[i++] = r.pfn + p;
  assert(i === buf.pageCount, 'page runs do not add up to the buffer');
  buf.pfns = pfns;
  return pfns;
}

export function pageBufferOps(style: MmapStyle): DmaBufOps {
  const bufOf = (d: DmaBuf): PageBuffer => d.priv as PageBuffer;
  const attrsOf = (buf: PageBuffer): number => (buf.cached ? 0 : DMA_ATTR_SKIP_CPU_SYNC);
  const mapped = (d: DmaBuf): DmaBufAttachment[] => d.attachments.filter((a) => (a.priv as HeapAttachment).mapped);

  return Object.freeze({
    attach(_d: DmaBuf, attach: DmaBufAttachment): number {
      attach.priv = { mapped: false } satisfies HeapAttachment;
      return 0;
    },
    detach(_d: DmaBuf, attach: DmaBufAttachment): void {
      attach.priv = null;
    },
    mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable {
      const buf = bufOf(attach.dmabuf);
      const sgt = attach.dmabuf.kernel.dma.mapSgtable(attach.dev, buf.runs, dir, attrsOf(buf));
      (attach.priv as HeapAttachment).mapped = true;
      return sgt;
    },
    unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
      const buf = bufOf(attach.dmabuf);
      (attach.priv as HeapAttachment).mapped = false;
      attach.dmabuf.kernel.dma.unmapSgtable(sgt, dir, attrsOf(buf));
    },
    beginCpuAccess(d: DmaBuf, dir: DmaDataDirection): number {
      const buf = bufOf(d);
      if (!buf.cached) return 0;
      for (const _a of mapped(d)) d.kernel.dma.syncForCpu(buf.runs, dir);
      return 0;
    },
    endCpuAccess(d: DmaBuf, dir: DmaDataDirection): number {
      const buf = bufOf(d);
      if (!buf.cached) return 0;
      for (const _a of mapped(d)) d.kernel.dma.syncForDevice(buf.runs, dir);
      return 0;
    },
    mmap(d: DmaBuf, vma: Vma): number {
      const buf = bufOf(d);
      const pages = (vma.end - vma.start) / PAGE_SIZE;
      if (style === 'remap-per-page' && isCowMapping(vma.vmFlags) && pages !== 1) return -EINVAL;
      if (style === 'fault-shared-only') {
        if (!(vma.vmFlags & (VM_SHARED | VM_MAYSHARE))) return -EINVAL;
        vma.vmFlags |= VM_IO | VM_PFNMAP;
      }
      const pfns = pfnTable(buf);
      vma.cached = buf.cached;
      vma.vmOps = {
        fault: (_v: Vma, pgoff: number) => (pgoff < buf.pageCount ? (pfns[pgoff] ?? VM_FAULT_SIGBUS) : VM_FAULT_SIGBUS),
      };
      return 0;
    },
    vmap(d: DmaBuf): KernelVmap {
      const buf = bufOf(d);
      const pfns = pfnTable(buf);
      const { cache, mem } = d.kernel;
      // Walk the buffer page by page: a vmap is virtually contiguous, its pages need not be.
      const walk = (offset: number, lengthBytes: number, fn: (phys: number, at: number, n: number) => void) => {
        assert(offset >= 0 && offset + lengthBytes <= buf.pageCount * PAGE_SIZE, 'vmap access out of bounds');
        let done = 0;
        while (done < lengthBytes) {
          const off = offset + done;
          const n = Math.min(PAGE_SIZE - (off % PAGE_SIZE), lengthBytes - done);
          fn((pfns[Math.floor(off / PAGE_SIZE)] ?? 0) * PAGE_SIZE + (off % PAGE_SIZE), done, n);
          done += n;
        }
      };
      return {
        read(offset: number, lengthBytes: number): Uint8Array {
          const out = new Uint8Array(lengthBytes);
          walk(offset, lengthBytes, (phys, at, n) => {
            if (buf.cached) cache.read(phys, out.subarray(at, at + n));
            else out.set(mem.view(phys, n), at);
          });
          return out;
        },
        write(offset: number, data: Uint8Array): void {
          walk(offset, data.length, (phys, at, n) => {
            if (buf.cached) cache.write(phys, data.subarray(at, at + n));
            else mem.view(phys, n).set(data.subarray(at, at + n));
          });
        },
      };
    },
    vunmap(): void {},
    vmapPages(d: DmaBuf): { runs: readonly PageRun[]; cached: boolean } {
      const buf = bufOf(d);
      return { runs: buf.runs, cached: buf.cached };
    },
    release(d: DmaBuf): void {
      bufOf(d).free();
    },
  });
}
