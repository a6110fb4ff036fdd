/** dmafarm's library surface: re-exports only. */

export { KernelBug } from './kernel/assert.js';
export {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  type DmaBufOps,
  dmaBufAttach,
  dmaBufBeginCpuAccess,
  dmaBufDetach,
  dmaBufDeviceSpans,
  dmaBufDynamicAttach,
  dmaBufEndCpuAccess,
  dmaBufExport,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufMapAttachmentUnlocked,
  dmaBufMoveNotify,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnmapAttachmentUnlocked,
  dmaBufUnpin,
} from './kernel/dma-buf.js';
export type { DmaHeap, HeapBacking, HeapProperties, HeapRestriction, HeapStats } from './kernel/dma-heap.js';
export {
  type Device,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type SgEntry,
  type SgTable,
} from './kernel/dma-mapping.js';
export { dmaResvIsLocked, dmaResvLock, dmaResvTrylock, dmaResvUnlock } from './kernel/dma-resv.js';
export * as errno from './kernel/errno.js';
export { errnoName, isErr } from './kernel/errno.js';
export { type ArenaUsage, Kernel, type KernelOptions } from './kernel/kernel.js';
export { Process, type ProcessOptions } from './kernel/process.js';
export type { ChannelName, KernelChannels, Warning } from './kernel/trace.js';
export * from './kernel/uapi.js';
