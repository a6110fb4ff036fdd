/**
 * Every capacity in the model, with its unit last. Relationships are asserted when the module loads,
 * so an inconsistent edit fails at import rather than deep inside a run.
 */
import { PAGE_SIZE } from './uapi.js';

export const limits = Object.freeze({
  /** `NUM_HEAP_MINORS` in dma-heap.c. */
  heapCountMax: 128,
  /** RLIMIT_NOFILE soft default; `get_unused_fd_flags` returns -EMFILE past it. */
  fdCountMax: 1024,
  /** `vm.max_map_count` default (include/linux/mm.h DEFAULT_MAX_MAP_COUNT). */
  vmaCountMax: 65530,
  /** Processes alive at once in one kernel. */
  processCountMax: 4096,
  /** Live dma-bufs in one kernel (the `dmabuf_list`); each owns one resv, so ≤ resvCountMax. */
  dmaBufCountMax: 1 << 14,
  /** Reservation objects in the shared resv table (dma-resv.ts). */
  resvCountMax: 1 << 14,
  /**
   * The kernel thread must never sleep for long: a synchronous syscall that waits on fences there gives
   * up after this, reports `hung-task` (khungtaskd's job) and returns -EINTR. Use the async twins
   * (`ioctlAsync`, `pollAsync`) when the same thread will signal.
   */
  kernelThreadWaitMsMax: 10_000,
  /** Attachments on one dma-buf. */
  attachmentsPerBufMax: 64,
  /** Misuse warnings kept in memory; later ones are counted, not stored. */
  warningsKeptMax: 4096,
  /** Largest buddy block: MAX_PAGE_ORDER in include/linux/mmzone.h (4 MiB with 4 KiB pages). */
  buddyOrderMax: 10,
  /** CONFIG_CMA_ALIGNMENT default (8 → 1 MiB). */
  cmaAlignmentOrderMax: 8,
  /** CPU cache line (arm64 CTR_EL0.DminLine is 64 bytes on the cores we model). */
  cacheLineBytes: 64,
  /** Largest arena one SharedArrayBuffer may back. */
  arenaBytesMax: 1 << 30,
  /** Bytes per `read()` of a debugfs file. */
  debugfsReadBytesMax: 1 << 20,
  /** Fences alive at once in the shared fence table (dma-fence.ts); past it dma_fence_init is -ENOMEM. */
  fenceCountMax: 1 << 16,
  /** Handles one vgem DRM file may hold. */
  vgemHandlesPerFileMax: 1 << 12,
});

/** Default sizes of the boot-time arenas. Every one is overridable in `KernelOptions`. */
export const defaultMemory = Object.freeze({
  systemBytes: 128 << 20,
  cmaBytes: 64 << 20,
  carveoutBytes: 32 << 20,
  cpuCacheBytes: 256 << 10,
  cpuCacheWays: 4,
});

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`limits.ts inconsistent: ${what}`);
}
check(PAGE_SIZE % limits.cacheLineBytes === 0, 'cache lines must tile a page');
check(limits.cmaAlignmentOrderMax <= limits.buddyOrderMax, 'CMA alignment beyond the largest block');
check(limits.dmaBufCountMax <= limits.resvCountMax, 'every dma-buf needs a resv');
check(defaultMemory.systemBytes % (PAGE_SIZE << limits.buddyOrderMax) === 0, 'system arena not whole blocks');
check(defaultMemory.cpuCacheBytes % (limits.cacheLineBytes * defaultMemory.cpuCacheWays) === 0, 'cache sets');
