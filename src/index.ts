/** dmafarm's library surface: re-exports only. */

export {
  type DeviceContext,
  type DeviceModel,
  type DeviceResult,
  defineDevice,
  type FenceCallback,
  FRAME_FAILED,
  FRAME_UNREAD,
  type Frame,
} from './devices/device.js';
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
export {
  type DmaFenceCb,
  type DmaFenceOps,
  dmaFenceAddCallback,
  dmaFenceContextAlloc,
  dmaFenceEnableSwSignaling,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceGetStub,
  dmaFenceInit,
  dmaFenceIsLater,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceRemoveCallback,
  dmaFenceSetError,
  dmaFenceSignal,
  dmaFenceSignalTimestamp,
  dmaFenceWaitAnyTimeout,
  dmaFenceWaitAnyTimeoutAsync,
  dmaFenceWaitTimeout,
  dmaFenceWaitTimeoutAsync,
  type FenceHandle,
  type FenceMisuse,
  FenceTable,
  MAX_SCHEDULE_TIMEOUT,
  registerFenceOps,
} from './kernel/dma-fence.js';
export { dmaFenceArrayCreate } from './kernel/dma-fence-array.js';
export { dmaFenceChainFindSeqno, dmaFenceChainInit, dmaFenceChainWalk } from './kernel/dma-fence-chain.js';
export { dmaFenceUnwrapForEach, dmaFenceUnwrapMerge } from './kernel/dma-fence-unwrap.js';
export type { DmaHeap, HeapBacking, HeapProperties, HeapRestriction, HeapStats } from './kernel/dma-heap.js';
export {
  type Device,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type SgEntry,
  type SgTable,
} from './kernel/dma-mapping.js';
export {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  DmaResv,
  dmaResvAddFence,
  dmaResvGetFences,
  dmaResvGetSingleton,
  dmaResvIsLocked,
  dmaResvLock,
  dmaResvLockSlow,
  dmaResvReserveFences,
  dmaResvTestSignaled,
  dmaResvTrylock,
  dmaResvUnlock,
  dmaResvUsageRw,
  dmaResvWaitTimeout,
  dmaResvWaitTimeoutAsync,
  type ResvEnv,
  ResvTable,
  type WwAcquireCtx,
  wwAcquireDone,
  wwAcquireFini,
  wwAcquireInit,
} from './kernel/dma-resv.js';
export * as errno from './kernel/errno.js';
export { errnoName, isErr } from './kernel/errno.js';
export {
  DEFAULT_FIREWALL,
  PROTECTED_USE_CASES,
  type ProtectedUseCase,
  protectedHeapName,
} from './kernel/heaps/tee-heap.js';
export { type ArenaUsage, Kernel, type KernelOptions } from './kernel/kernel.js';
export { Process, type ProcessOptions } from './kernel/process.js';
export { syncFileGetFence, syncFileInstall } from './kernel/sync-file.js';
export type { ChannelName, KernelChannels, Warning } from './kernel/trace.js';
export * from './kernel/uapi.js';
export {
  type ExploreOptions,
  type ExploreResult,
  explore,
  formatExploreResult,
  mergeResults,
  parseShard,
  type Shard,
} from './workers/explore.js';
export {
  type Finding,
  HANG_RECOVERIES_MAX,
  type HangDetail,
  type Report,
  type RunOptions,
  runScenario,
} from './workers/run-scenario.js';
export { defineScenario, type Scenario, ScenarioError } from './workers/scenario.js';
export { loadScenario } from './workers/scenario-loader.js';
export { parseScheduleSpec, RANDOM_SCHEDULE, type ScheduleSpec } from './workers/schedule-policy.js';
