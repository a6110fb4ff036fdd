/**
 * dma_resv: the reservation object every dma-buf carries (drivers/dma-buf/dma-resv.c).
 *
 * Contract (this part):
 * - The lock is a ww_mutex of the Wait-Die class `reservation_ww_class`. The attachment API relies on it:
 *   map/unmap/pin/unpin and move_notify require it held (DOC "locking convention" in dma-buf.c);
 *   attach/detach/begin_cpu_access must be called without it.
 * - `dmaResvAssertHeld` is lockdep's assertion: a caller that does not hold the lock is a misuse, reported
 *   as a `lockdep-assert-held` warning; the operation still proceeds, as it does on a kernel with lockdep.
 *
 * Scope note: fence slots, usages, waits and the cross-thread Atomics ww_mutex with -EDEADLK/-EALREADY are
 * the fences issue's. Today all callers run on the kernel thread, so a lock held by another task cannot
 * be waited for: `dmaResvLock` returns -EBUSY there instead of sleeping. No resv has fences yet, so every
 * wait below completes at once.
 */
import { EALREADY, EBUSY, EDEADLK } from './errno.js';
import type { KernelCore, Task } from './kernel-core.js';

/** `enum dma_resv_usage`: KERNEL < WRITE < READ < BOOKKEEP (include/linux/dma-resv.h). */
export const DMA_RESV_USAGE_KERNEL = 0;
export const DMA_RESV_USAGE_WRITE = 1;
export const DMA_RESV_USAGE_READ = 2;
export const DMA_RESV_USAGE_BOOKKEEP = 3;
export type DmaResvUsage = 0 | 1 | 2 | 3;

/** `dma_resv_usage_rw`: a new writer waits for readers and writers, a new reader only for writers. */
export function dmaResvUsageRw(write: boolean): DmaResvUsage {
  return write ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE;
}

/** `struct ww_acquire_ctx`: a task's attempt to take several resv locks. */
export interface WwAcquireCtx {
  readonly stamp: number;
  readonly task: Task;
  acquired: number;
}

let nextResvId = 1;

export class DmaResv {
  readonly id = nextResvId++;
  readonly kernel: KernelCore;
  holder: Task | null = null;
  holderCtx: WwAcquireCtx | null = null;

  constructor(kernel: KernelCore) {
    this.kernel = kernel;
  }
}

/** `dma_resv_lock(obj, ctx)`. */
export function dmaResvLock(resv: DmaResv, ctx: WwAcquireCtx | null): number {
  const task = ctx?.task ?? resv.kernel.current;
  if (resv.holder !== null) {
    if (ctx !== null && resv.holderCtx === ctx) return -EALREADY;
    if (resv.holder === task) {
      resv.kernel.warn('ww-mutex-recursive', 'resv lock taken twice by the same task without a context', {
        resv: resv.id,
      });
      return -EDEADLK;
    }
    return -EBUSY;
  }
  resv.holder = task;
  resv.holderCtx = ctx;
  if (ctx !== null) ctx.acquired++;
  return 0;
}

/** `dma_resv_trylock(obj)`. */
export function dmaResvTrylock(resv: DmaResv): boolean {
  if (resv.holder !== null) return false;
  resv.holder = resv.kernel.current;
  resv.holderCtx = null;
  return true;
}

/** `dma_resv_unlock(obj)`. */
export function dmaResvUnlock(resv: DmaResv): void {
  if (resv.holder === null) {
    resv.kernel.warn('ww-mutex-unlock-unlocked', 'dma_resv_unlock of an unlocked resv', { resv: resv.id });
    return;
  }
  if (resv.holder !== resv.kernel.current) {
    resv.kernel.warn('ww-mutex-unlock-foreign', 'dma_resv_unlock by a task that does not hold it', {
      resv: resv.id,
      holder: resv.holder.comm,
    });
  }
  if (resv.holderCtx !== null) resv.holderCtx.acquired--;
  resv.holder = null;
  resv.holderCtx = null;
}

export function dmaResvIsLocked(resv: DmaResv): boolean {
  return resv.holder !== null;
}

/** `dma_resv_assert_held(obj)`: lockdep_assert_held. Returns whether the lock was held by `current`. */
export function dmaResvAssertHeld(resv: DmaResv, site: string): boolean {
  if (resv.holder === resv.kernel.current) return true;
  resv.kernel.warn('lockdep-assert-held', `${site} called without the dma_resv lock held`, { resv: resv.id });
  return false;
}

/** `might_lock(&resv->lock)`: taking it here would self-deadlock if the caller holds it. */
export function dmaResvMightLock(resv: DmaResv, site: string): boolean {
  if (resv.holder !== resv.kernel.current) return true;
  resv.kernel.warn('lockdep-might-lock', `${site} called with the dma_resv lock held (would deadlock)`, {
    resv: resv.id,
  });
  return false;
}

/**
 * `dma_resv_wait_timeout(obj, usage, intr, timeout)`: > 0 when every fence of usage ≤ `usage` has
 * signalled. With no fences it returns `timeout` (1 for timeout 0), as the kernel does.
 */
export function dmaResvWaitTimeout(_resv: DmaResv, _usage: DmaResvUsage, _intr: boolean, timeout: number): number {
  return timeout === 0 ? 1 : timeout;
}

/** `dma_resv_test_signaled(obj, usage)`. */
export function dmaResvTestSignaled(_resv: DmaResv, _usage: DmaResvUsage): boolean {
  return true;
}

/** Lines for debugfs bufinfo (`dma_resv_describe`): none until fences exist. */
export function dmaResvDescribe(_resv: DmaResv): string[] {
  return [];
}
