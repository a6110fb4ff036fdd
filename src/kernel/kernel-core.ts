/**
 * What kernel objects may ask of the kernel that owns them. Objects depend on this interface, not on
 * the `Kernel` class, so each object file stays a leaf that tests can build with a stub core.
 */
import type { CpuCache } from './cpu-cache.js';
import type { FenceTable } from './dma-fence.js';
import type { DmaMapping } from './dma-mapping.js';
import type { ResvTable } from './dma-resv.js';
import type { FdTable } from './file.js';
import type { PhysicalMemory } from './memory.js';
import type { Channels, WarningDetail } from './trace.js';

/** The task on whose behalf the kernel is running: a process, or the kernel itself (pid 0). */
export interface Task {
  readonly pid: number;
  readonly comm: string;
  readonly uid: number;
  readonly gid: number;
}

export interface KernelCore {
  readonly mem: PhysicalMemory;
  readonly cache: CpuCache;
  readonly dma: DmaMapping;
  readonly channels: Channels;
  readonly fences: FenceTable;
  readonly resvs: ResvTable;
  /** Longest a synchronous wait may block this thread, in ns (see limits.kernelThreadWaitMsMax). */
  readonly blockingWaitNsMax: number;
  /** The running task. Syscalls set it for their duration. */
  readonly current: Task;
  /** Monotonic clock (CLOCK_MONOTONIC), nanoseconds. */
  nowNs(): number;
  /** Record a misuse the kernel survives (WARN_ON, lockdep); returns true so `if (k.warn(...))` reads. */
  warn(rule: string, message: string, objects: Record<string, string | number>, detail?: WarningDetail): true;
  /** `current->files`: the running process's fd table; the kernel task has none (our bug to ask). */
  currentFiles(): FdTable;
}
