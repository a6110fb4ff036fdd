/**
 * sw_sync: software timelines for testing (drivers/dma-buf/sw_sync.c), opened at
 * `/sys/kernel/debug/sync/sw_sync` (debugfs, so root only).
 *
 * Contract:
 * - Each open creates a timeline: a fresh fence context, value 0 (u32 arithmetic), named after the
 *   opener's comm. Its points (sync_pt) are fences of kind 'sw_sync' on that context; a point is
 *   signalled iff `(s32)(seqno − value) <= 0` (the 32-bit wrap compare).
 * - CREATE_FENCE for a value already reached returns an already-signalled point that is not tracked;
 *   for a pending value it returns the existing unsignalled point with that seqno if there is one (the
 *   two sync_files then share one fence), else a new one. INC signals points in seqno order, stopping at
 *   the first that is still ahead, and splits increments above INT_MAX.
 * - Closing the timeline fd signals every pending point with -ENOENT. The timeline itself lives on while
 *   any point does (each point holds a reference).
 * - All of this runs on the kernel thread; points may be waited on from any thread via the fence table.
 */
import { assert } from './assert.js';
import {
  __dmaFenceIsLater,
  DMA_FENCE_FLAG_USER_BITS,
  dmaFenceContextAlloc,
  dmaFenceGet,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSetError,
  dmaFenceSignalTimestamp,
  type FenceHandle,
  type FenceTable,
  registerFenceOps,
  STATE_SIGNALED,
} from './dma-fence.js';
import { EFAULT, EINVAL, ENOENT, ENOTTY } from './errno.js';
import { File, type FileOperations } from './file.js';
import type { KernelCore, Task } from './kernel-core.js';
import { isSyncFile, type SyncFile, syncFileCreate } from './sync-file.js';
import {
  O_CLOEXEC,
  SW_SYNC_GET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  sw_sync_create_fence_data,
  sw_sync_get_deadline,
} from './uapi.js';
import { copyFromUser, copyToUser, kget, kset } from './usercopy.js';

export const SW_SYNC_PATH = '/sys/kernel/debug/sync/sw_sync';
/** `SW_SYNC_HAS_DEADLINE_BIT` = DMA_FENCE_FLAG_USER_BITS. */
const SW_SYNC_HAS_DEADLINE_BIT = DMA_FENCE_FLAG_USER_BITS;
const INT_MAX = 0x7fff_ffff;

export interface SyncTimeline {
  readonly kernel: KernelCore;
  readonly id: number;
  readonly name: string;
  readonly context: number;
  /** u32. */
  value: number;
  /** Pending points, ascending seqno (the kernel's pt_list/pt_tree). */
  readonly pts: FenceHandle[];
  /** The fd's reference plus one per live point. */
  refs: number;
  /** Earliest deadline per point (ns), set through SYNC_IOC_SET_DEADLINE. */
  readonly deadlines: Map<FenceHandle, number>;
}

/** Timelines by id, per fence table (points find theirs through the fence's aux word). */
const timelines = new WeakMap<FenceTable, Map<number, SyncTimeline>>();
let nextTimelineId = 1;

function timelineOf(t: FenceTable, f: FenceHandle): SyncTimeline {
  const tl = timelines.get(t)?.get(t.auxOf(f));
  assert(tl !== undefined, `sw_sync point ${f} has no timeline on this thread (timelines live on the kernel thread)`);
  return tl;
}

export const swSyncFenceOps = registerFenceOps('sw_sync', {
  getDriverName: () => 'sw_sync',
  getTimelineName: (t, f) => timelineOf(t, f).name,
  // timeline_fence_signaled: reached once the timeline's value is not earlier than the seqno. On a device
  // thread the timeline is not visible: "not yet" is the safe answer, since INC signals points actively.
  signaled: (t, f) => {
    const tl = timelines.get(t)?.get(t.auxOf(f));
    return tl !== undefined && !__dmaFenceIsLater(t.flagsOf(f), t.seqnoOf(f), tl.value);
  },
  enableSignaling: () => true,
  release: (t, f) => {
    const tl = timelines.get(t)?.get(t.auxOf(f));
    if (tl === undefined) {
      // The last reference went on a device thread: the timeline (on the kernel thread) keeps a handle that
      // is now stale; syncTimelineSignal skips such handles. Reported, because the kernel thread loses the
      // point's deadline and timeline reference bookkeeping.
      t.onMisuse({
        rule: 'sw-sync-foreign-release',
        message: `sw_sync point ${f} released off the kernel thread`,
        fence: f,
      });
      return;
    }
    const i = tl.pts.indexOf(f);
    if (i >= 0) tl.pts.splice(i, 1);
    tl.deadlines.delete(f);
    timelinePut(t, tl);
  },
  setDeadline: (t, f, deadlineNs) => {
    const tl = timelineOf(t, f);
    const had = t.orFlags(f, 1 << SW_SYNC_HAS_DEADLINE_BIT) & (1 << SW_SYNC_HAS_DEADLINE_BIT);
    const cur = tl.deadlines.get(f);
    if (!had || cur === undefined || deadlineNs < cur) tl.deadlines.set(f, deadlineNs);
  },
});

function timelinePut(t: FenceTable, tl: SyncTimeline): void {
  tl.refs--;
  if (tl.refs === 0) timelines.get(t)?.delete(tl.id);
}

/** `sync_timeline_create`. */
export function syncTimelineCreate(k: KernelCore, task: Task): SyncTimeline {
  const t = k.fences;
  const tl: SyncTimeline = {
    kernel: k,
    id: nextTimelineId++,
    name: task.comm,
    context: dmaFenceContextAlloc(t, 1),
    value: 0,
    pts: [],
    refs: 1,
    deadlines: new Map(),
  };
  let map = timelines.get(t);
  if (map === undefined) {
    map = new Map();
    timelines.set(t, map);
  }
  map.set(tl.id, tl);
  return tl;
}

/** `sync_pt_create`: a point at `value`, or the existing pending point with that seqno; -ENOMEM if full. */
export function syncPtCreate(k: KernelCore, tl: SyncTimeline, value: number): FenceHandle | number {
  const t = k.fences;
  const pt = dmaFenceInit(t, swSyncFenceOps, tl.context, value, { aux: tl.id });
  if (pt < 0) return pt;
  tl.refs++;
  // dma_fence_is_signaled_locked: a point whose value is already reached is born signalled, untracked.
  if (dmaFenceIsSignaled(t, pt)) return pt;
  const same = tl.pts.find((p) => t.seqnoOf(p) === value && t.stateOf(p) !== STATE_SIGNALED);
  if (same !== undefined) {
    dmaFencePut(t, pt);
    return dmaFenceGet(t, same);
  }
  const at = tl.pts.findIndex((p) => __dmaFenceIsLater(0, t.seqnoOf(p), value));
  tl.pts.splice(at < 0 ? tl.pts.length : at, 0, pt);
  return pt;
}

/** `sync_timeline_signal`: advance by `inc` and signal every point now reached, in order. */
export function syncTimelineSignal(k: KernelCore, tl: SyncTimeline, inc: number): void {
  const t = k.fences;
  tl.value = (tl.value + inc) >>> 0;
  const now = k.nowNs();
  while (tl.pts.length > 0) {
    const pt = tl.pts[0] as FenceHandle;
    if (!t.isLive(pt)) {
      tl.pts.shift(); // released on another thread (see the release op)
      continue;
    }
    if (__dmaFenceIsLater(t.flagsOf(pt), t.seqnoOf(pt), tl.value)) break;
    dmaFenceGet(t, pt);
    tl.pts.shift();
    dmaFenceSignalTimestamp(t, pt, now);
    dmaFencePut(t, pt);
  }
}

function swSyncIoctl(file: File, cmd: number, arg: unknown): number {
  const tl = file.privateData as SyncTimeline;
  const k = tl.kernel;
  switch (cmd) {
    case SW_SYNC_IOC_CREATE_FENCE:
      return swSyncIoctlCreateFence(k, tl, arg);
    case SW_SYNC_IOC_INC:
      return swSyncIoctlInc(k, tl, arg);
    case SW_SYNC_GET_DEADLINE:
      return swSyncIoctlGetDeadline(k, arg);
    default:
      return -ENOTTY;
  }
}

/** `sw_sync_ioctl_create_fence`: fd first, then copy-in, point, sync_file, copy-out, install. */
function swSyncIoctlCreateFence(k: KernelCore, tl: SyncTimeline, arg: unknown): number {
  const files = k.currentFiles();
  const fd = files.getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) return fd;
  const kbuf = copyFromUser(arg, sw_sync_create_fence_data, 40, 40);
  if (typeof kbuf === 'number') {
    files.putUnusedFd(fd);
    return kbuf;
  }
  const pt = syncPtCreate(k, tl, kget(kbuf, sw_sync_create_fence_data, 'value') as number);
  if (pt < 0) {
    files.putUnusedFd(fd);
    return pt;
  }
  const sf = syncFileCreate(k, pt);
  dmaFencePut(k.fences, pt);
  kset(kbuf, sw_sync_create_fence_data, 'fence', fd);
  if (copyToUser(arg, sw_sync_create_fence_data, kbuf, 40) < 0) {
    sf.put();
    files.putUnusedFd(fd);
    return -EFAULT;
  }
  files.fdInstall(fd, sf);
  return 0;
}

/** `sw_sync_ioctl_inc`: the argument is the u32 itself (C passes a pointer to it). */
function swSyncIoctlInc(k: KernelCore, tl: SyncTimeline, arg: unknown): number {
  if (typeof arg !== 'number' || !Number.isFinite(arg)) return -EFAULT;
  let value = Math.trunc(arg) >>> 0;
  while (value > INT_MAX) {
    syncTimelineSignal(k, tl, INT_MAX);
    value -= INT_MAX;
  }
  syncTimelineSignal(k, tl, value);
  return 0;
}

/** `sw_sync_ioctl_get_deadline`: any timeline fd will do; the fence must be a sw_sync point. */
function swSyncIoctlGetDeadline(k: KernelCore, arg: unknown): number {
  const kbuf = copyFromUser(arg, sw_sync_get_deadline, 16, 16);
  if (typeof kbuf === 'number') return kbuf;
  if (kget(kbuf, sw_sync_get_deadline, 'deadline_ns') || kget(kbuf, sw_sync_get_deadline, 'pad')) return -EINVAL;
  const file = k.currentFiles().lookup(kget(kbuf, sw_sync_get_deadline, 'fence_fd') as number);
  if (file === undefined || !isSyncFile(file)) return -EINVAL;
  const t = k.fences;
  const f = (file.privateData as SyncFile).fence;
  if (t.opsIdOf(f) !== swSyncFenceOps) return -EINVAL;
  const deadline = timelineOf(t, f).deadlines.get(f);
  if (!(t.flagsOf(f) & (1 << SW_SYNC_HAS_DEADLINE_BIT)) || deadline === undefined) return -ENOENT;
  kset(kbuf, sw_sync_get_deadline, 'deadline_ns', deadline);
  return copyToUser(arg, sw_sync_get_deadline, kbuf, 16);
}

/** `sw_sync_debugfs_release`: pending points end with -ENOENT; the timeline lives while points do. */
function swSyncRelease(file: File): void {
  const tl = file.privateData as SyncTimeline;
  const k = tl.kernel;
  const t = k.fences;
  for (const pt of [...tl.pts]) {
    dmaFenceSetError(t, pt, -ENOENT);
    dmaFenceSignalTimestamp(t, pt, k.nowNs());
  }
  tl.pts.length = 0;
  timelinePut(t, tl);
}

const swSyncFops: FileOperations = Object.freeze({
  name: 'sw_sync',
  unlockedIoctl: swSyncIoctl,
  release: swSyncRelease,
});

/** `sw_sync_debugfs_open`: a new timeline named after the opener. */
export function swSyncOpen(k: KernelCore, flags: number, task: Task): File {
  return new File(swSyncFops, flags, syncTimelineCreate(k, task));
}
