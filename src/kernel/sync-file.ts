/**
 * sync_file: a fence as a file descriptor (drivers/dma-buf/sync_file.c, include/uapi/linux/sync_file.h).
 *
 * Contract:
 * - A sync_file wraps exactly one fence (possibly an array) and holds one reference on it for its whole
 *   life; release drops it. `user_name` is set only by MERGE.
 * - ioctls follow sync_file.c's order of checks exactly: MERGE reserves its fd before reading anything
 *   (so a full table is -EMFILE whatever the arguments), then copy-in, flags/pad, fd2 (-ENOENT if not a
 *   sync_file), the merge (dma_fence_unwrap_merge), and installs the fd only after a successful copy-out.
 *   FILE_INFO implements the count-query protocol (num_fences 0 → count only, the pointer ignored).
 * - poll reports POLLIN once the fence has signalled (with or without an error), never POLLOUT. The first
 *   poll enables signalling on the fence, as arming the kernel's callback does; that matters for an array,
 *   whose error reaches it only through enabled signalling (kernel-semantics §11 C2).
 */
import {
  dmaFenceDriverName,
  dmaFenceEnableSwSignaling,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSetDeadline,
  dmaFenceTimelineName,
  type FenceHandle,
} from './dma-fence.js';
import { dmaFenceUnwrapForEach, dmaFenceUnwrapMerge } from './dma-fence-unwrap.js';
import { EFAULT, EINVAL, ENOENT, ENOMEM, ENOTTY, type Errno } from './errno.js';
import { File, type FileOperations } from './file.js';
import type { KernelCore } from './kernel-core.js';
import {
  O_CLOEXEC,
  POLLIN,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  SYNC_IOC_SET_DEADLINE,
  sync_file_info,
  sync_merge_data,
  sync_set_deadline,
} from './uapi.js';
import { copyFromUser, copyToUser, kget, kset } from './usercopy.js';

export interface SyncFile {
  readonly kernel: KernelCore;
  readonly fence: FenceHandle;
  /** Set by MERGE only; empty means "derive the name from the fence". */
  userName: string;
  pollEnabled: boolean;
}

/** `sync_file_create(fence)`: takes its own reference on the fence; the caller keeps theirs. */
export function syncFileCreate(k: KernelCore, fence: FenceHandle): File {
  dmaFenceGet(k.fences, fence);
  const sf: SyncFile = { kernel: k, fence, userName: '', pollEnabled: false };
  return new File(syncFileFops, 0, sf);
}

export function isSyncFile(file: File): boolean {
  return file.fops === syncFileFops;
}

/** `sync_file_get_fence(fd)`: a new reference on the fence, or null for a bad fd or a non-sync_file. */
export function syncFileGetFence(k: KernelCore, fd: number): FenceHandle | null {
  const file = k.currentFiles().lookup(fd);
  if (file === undefined || !isSyncFile(file)) return null;
  return dmaFenceGet(k.fences, (file.privateData as SyncFile).fence);
}

/** `sync_file_get_name`: the user name, or `driver-timeline<context>-<seqno>`. */
export function syncFileGetName(sf: SyncFile): string {
  if (sf.userName) return sf.userName;
  const t = sf.kernel.fences;
  const f = sf.fence;
  return `${dmaFenceDriverName(t, f)}-${dmaFenceTimelineName(t, f)}${t.contextOf(f)}-${t.seqnoOf(f)}`;
}

/** The leaves of a fence (an array's members, a chain's fences), in unwrap order. */
function leavesOf(k: KernelCore, f: FenceHandle): FenceHandle[] {
  return [...dmaFenceUnwrapForEach(k.fences, f)];
}

function syncFileIoctl(file: File, cmd: number, arg: unknown): number {
  const sf = file.privateData as SyncFile;
  switch (cmd) {
    case SYNC_IOC_MERGE:
      return syncFileIoctlMerge(sf, arg);
    case SYNC_IOC_FILE_INFO:
      return syncFileIoctlFenceInfo(sf, arg);
    case SYNC_IOC_SET_DEADLINE:
      return syncFileIoctlSetDeadline(sf, arg);
    default:
      return -ENOTTY;
  }
}

/** `sync_file_ioctl_merge`. */
function syncFileIoctlMerge(sf: SyncFile, arg: unknown): number {
  const k = sf.kernel;
  const files = k.currentFiles();
  const fd = files.getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) return fd;
  const fail = (err: number): number => {
    files.putUnusedFd(fd);
    return err;
  };
  const kbuf = copyFromUser(arg, sync_merge_data, 48, 48);
  if (typeof kbuf === 'number') return fail(kbuf);
  if (kget(kbuf, sync_merge_data, 'flags') || kget(kbuf, sync_merge_data, 'pad')) return fail(-EINVAL);
  const fd2File = files.lookup(kget(kbuf, sync_merge_data, 'fd2') as number);
  if (fd2File === undefined || !isSyncFile(fd2File)) return fail(-ENOENT);
  const other = fd2File.privateData as SyncFile;
  // name[31] = '\0': at most 31 bytes of the user's name survive.
  const name = new TextDecoder().decode(
    new TextEncoder().encode(String(kget(kbuf, sync_merge_data, 'name'))).slice(0, 31),
  );
  const merged = dmaFenceUnwrapMerge(k.fences, sf.fence, other.fence);
  if (merged < 0) return fail(-ENOMEM);
  const out = syncFileCreate(k, merged);
  dmaFencePut(k.fences, merged); // the sync_file took its own reference
  (out.privateData as SyncFile).userName = name;
  kbuf.setUint8(31, 0); // the kernel's `data.name[31] = '\0'` is copied back too
  kset(kbuf, sync_merge_data, 'fence', fd);
  if (copyToUser(arg, sync_merge_data, kbuf, 48) < 0) {
    out.put();
    return fail(-EFAULT);
  }
  files.fdInstall(fd, out);
  return 0;
}

interface SyncFenceInfo {
  obj_name: string;
  driver_name: string;
  status: number;
  flags: number;
  timestamp_ns: number;
}

/** `sync_file_ioctl_fence_info`, with the count-query protocol. */
function syncFileIoctlFenceInfo(sf: SyncFile, arg: unknown): number {
  const k = sf.kernel;
  const t = k.fences;
  const kbuf = copyFromUser(arg, sync_file_info, 56, 56);
  if (typeof kbuf === 'number') return kbuf;
  if (kget(kbuf, sync_file_info, 'flags') || kget(kbuf, sync_file_info, 'pad')) return -EINVAL;
  const leaves = leavesOf(k, sf.fence);
  const wanted = kget(kbuf, sync_file_info, 'num_fences') as number;
  if (wanted === 0) {
    kset(kbuf, sync_file_info, 'status', dmaFenceGetStatus(t, sf.fence));
  } else {
    if (wanted < leaves.length) return -EINVAL;
    const infos: SyncFenceInfo[] = [];
    let status = 1;
    for (const leaf of leaves) {
      const s = dmaFenceGetStatus(t, leaf);
      if (status > 0 && s <= 0) status = s; // the first leaf that is not a success decides
      infos.push({
        obj_name: dmaFenceTimelineName(t, leaf),
        driver_name: dmaFenceDriverName(t, leaf),
        status: s,
        flags: 0,
        timestamp_ns: s !== 0 ? t.timestampOf(leaf) : 0,
      });
    }
    const dst = (arg as Record<string, unknown>).sync_fence_info;
    if (!Array.isArray(dst) || Object.isFrozen(dst)) return -EFAULT;
    dst.length = 0;
    dst.push(...infos);
    kset(kbuf, sync_file_info, 'status', status);
  }
  kset(kbuf, sync_file_info, 'num_fences', leaves.length);
  kset(kbuf, sync_file_info, 'name', syncFileGetName(sf));
  // The pointer field is the caller's array, not bytes: copy the struct back around it.
  const ptr = (arg as Record<string, unknown>).sync_fence_info;
  const ret = copyToUser(arg, sync_file_info, kbuf, 56);
  if (ret === 0) (arg as Record<string, unknown>).sync_fence_info = ptr;
  return ret;
}

/** `sync_file_ioctl_set_deadline`. */
function syncFileIoctlSetDeadline(sf: SyncFile, arg: unknown): number {
  const kbuf = copyFromUser(arg, sync_set_deadline, 16, 16);
  if (typeof kbuf === 'number') return kbuf;
  if (kget(kbuf, sync_set_deadline, 'pad')) return -EINVAL;
  dmaFenceSetDeadline(sf.kernel.fences, sf.fence, Number(kget(kbuf, sync_set_deadline, 'deadline_ns')));
  return 0;
}

function syncFilePoll(file: File): { mask: number; fences: readonly FenceHandle[] } {
  const sf = file.privateData as SyncFile;
  const t = sf.kernel.fences;
  if (!sf.pollEnabled) {
    sf.pollEnabled = true;
    dmaFenceEnableSwSignaling(t, sf.fence);
  }
  return dmaFenceIsSignaled(t, sf.fence)
    ? { mask: POLLIN, fences: [] }
    : { mask: 0, fences: [dmaFenceGet(t, sf.fence)] };
}

export const syncFileFops: FileOperations = Object.freeze({
  name: 'sync_file',
  unlockedIoctl: syncFileIoctl,
  poll: syncFilePoll,
  release: (file: File) => {
    const sf = file.privateData as SyncFile;
    dmaFencePut(sf.kernel.fences, sf.fence);
  },
  dname: () => 'anon_inode:sync_file',
});

/** Install a sync_file for `fence` at a new O_CLOEXEC fd of the current process; -errno on failure. */
export function syncFileInstall(k: KernelCore, fence: FenceHandle): number | Errno {
  const files = k.currentFiles();
  const fd = files.getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) return fd;
  files.fdInstall(fd, syncFileCreate(k, fence));
  return fd;
}
