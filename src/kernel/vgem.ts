/**
 * vgem: the kernel's virtual GEM device (drivers/gpu/drm/vgem), the importer the dmabuf-heaps selftest
 * uses. It lets tests exercise import paths without a real device.
 *
 * Contract:
 * - `/dev/dri/card0`; DRM_IOCTL_VERSION names it "vgem". PRIME_FD_TO_HANDLE imports a dma-buf the way
 *   drm_gem_prime_import_dev does: `dma_buf_get`, a static `dma_buf_attach`, then a DMA_BIDIRECTIONAL
 *   `dma_buf_map_attachment_unlocked`. Importing the same buffer twice on one file returns the same
 *   handle. GEM_CLOSE (or closing the file) unmaps, detaches and drops the buffer reference.
 * - Unknown DRM ioctls are -EINVAL (drm_ioctl's default), not -ENOTTY.
 * - Fences (vgem_fence.c): FENCE_ATTACH puts a new fence in an imported buffer's resv, FENCE_SIGNAL
 *   signals it; each fence signals itself after VGEM_FENCE_TIMEOUT_MS, and closing the file signals all.
 * - `dmaRead`/`dmaWrite` are the device doing DMA through its mapping: they touch memory, never the CPU
 *   cache, so a CPU that skipped SYNC really sees stale data.
 */
import {
  type DmaBuf,
  type DmaBufAttachment,
  dmaBufAttach,
  dmaBufDetach,
  dmaBufDeviceSpans,
  dmaBufGet,
  dmaBufMapAttachmentUnlocked,
  dmaBufPut,
  dmaBufUnmapAttachmentUnlocked,
} from './dma-buf.js';
import {
  dmaFenceContextAlloc,
  dmaFenceInit,
  dmaFenceIsSignaled,
  dmaFencePut,
  dmaFenceSignal,
  type FenceHandle,
  registerFenceOps,
} from './dma-fence.js';
import { type Device, DMA_BIDIRECTIONAL, type SgTable } from './dma-mapping.js';
import {
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvTestSignaled,
  dmaResvUnlock,
  dmaResvUsageRw,
} from './dma-resv.js';
import { EBADF, EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM, type Errno, ETIMEDOUT, isErr } from './errno.js';
import { File, type FileOperations } from './file.js';
import type { KernelCore } from './kernel-core.js';
import { limits } from './limits.js';
import type { Process } from './process.js';
import {
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_VERSION,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  drm_gem_close,
  drm_prime_handle,
  drm_vgem_fence_attach,
  drm_vgem_fence_signal,
  VGEM_FENCE_WRITE,
} from './uapi.js';
import { copyFromUser, copyToUser, kget, kset } from './usercopy.js';
import type { Inode } from './vfs.js';

export const VGEM_DEVICE_PATH = '/dev/dri/card0';

interface VgemObject {
  readonly dmabuf: DmaBuf;
  readonly attach: DmaBufAttachment;
  readonly sgt: SgTable;
}

interface VgemFile {
  readonly handles: Map<number, VgemObject>;
  nextHandle: number;
  /** The fence idr: id → fence (with the file's reference) and its auto-signal timer. */
  readonly fences: Map<number, { fence: FenceHandle; timer: ReturnType<typeof setTimeout> }>;
  nextFence: number;
}

/** VGEM_FENCE_TIMEOUT: an attached fence signals itself after 10 s (vgem_fence.c). */
export const VGEM_FENCE_TIMEOUT_MS = 10_000;

export const vgemFenceOps = registerFenceOps('vgem', {
  getDriverName: () => 'vgem',
  getTimelineName: () => 'unbound',
});

export class Vgem {
  readonly device: Device = Object.freeze({ name: 'vgem' });
  private readonly k: KernelCore;

  constructor(k: KernelCore) {
    this.k = k;
  }

  readonly inode: Inode = {
    mode: 0o666,
    uid: 0,
    gid: 0,
    open: (flags: number) =>
      new File(this.fops, flags, {
        handles: new Map(),
        nextHandle: 1,
        fences: new Map(),
        nextFence: 1,
      } satisfies VgemFile),
  };

  private readonly fops: FileOperations = Object.freeze({
    name: 'drm',
    unlockedIoctl: (file: File, cmd: number, arg: unknown) => this.ioctl(file.privateData as VgemFile, cmd, arg),
    release: (file: File) => {
      const vf = file.privateData as VgemFile;
      // vgem_fence_close: every fence of this file signals.
      for (const { fence, timer } of vf.fences.values()) {
        clearTimeout(timer);
        dmaFenceSignal(this.k.fences, fence);
        dmaFencePut(this.k.fences, fence);
      }
      vf.fences.clear();
      for (const h of [...vf.handles.keys()]) this.gemClose(vf, h);
    },
  });

  private ioctl(vf: VgemFile, cmd: number, arg: unknown): number {
    switch (cmd) {
      case DRM_IOCTL_VERSION:
        return this.version(arg);
      case DRM_IOCTL_PRIME_FD_TO_HANDLE:
        return this.primeFdToHandle(vf, arg);
      case DRM_IOCTL_VGEM_FENCE_ATTACH:
        return this.fenceAttach(vf, arg);
      case DRM_IOCTL_VGEM_FENCE_SIGNAL:
        return this.fenceSignal(vf, arg);
      case DRM_IOCTL_GEM_CLOSE: {
        const kbuf = copyFromUser(arg, drm_gem_close, 8, 8);
        if (typeof kbuf === 'number') return kbuf;
        return this.gemClose(vf, kget(kbuf, drm_gem_close, 'handle') as number);
      }
      default:
        return -EINVAL;
    }
  }

  /** DRM_IOCTL_VERSION: copies at most `name_len` bytes of the name and reports its full length. */
  private version(arg: unknown): number {
    if (typeof arg !== 'object' || arg === null || Object.isFrozen(arg)) return -EFAULT;
    const v = arg as Record<string, unknown>;
    const fill = (field: string, value: string): void => {
      const room = Number(v[`${field}_len`] ?? 0);
      v[field] = value.slice(0, Math.max(0, room));
      v[`${field}_len`] = value.length;
    };
    v.version_major = 1;
    v.version_minor = 0;
    v.version_patchlevel = 0;
    fill('name', 'vgem');
    fill('date', '20120112');
    fill('desc', 'Virtual GEM provider');
    return 0;
  }

  /** `drm_gem_prime_fd_to_handle` with vgem's import path. */
  private primeFdToHandle(vf: VgemFile, arg: unknown): number {
    const kbuf = copyFromUser(arg, drm_prime_handle, 12, 12);
    if (typeof kbuf === 'number') return kbuf;
    const dmabuf = dmaBufGet(this.k, kget(kbuf, drm_prime_handle, 'fd') as number);
    if (isErr(dmabuf)) return dmabuf;
    let handle = [...vf.handles].find(([, o]) => o.dmabuf === dmabuf)?.[0];
    if (handle !== undefined) {
      dmaBufPut(dmabuf); // the existing object already holds its reference
    } else {
      if (vf.handles.size >= limits.vgemHandlesPerFileMax) {
        dmaBufPut(dmabuf);
        return -ENOMEM;
      }
      const attach = dmaBufAttach(dmabuf, this.device);
      if (isErr(attach)) {
        dmaBufPut(dmabuf);
        return attach;
      }
      const sgt = dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) {
        dmaBufDetach(dmabuf, attach);
        dmaBufPut(dmabuf);
        return sgt;
      }
      handle = vf.nextHandle++;
      vf.handles.set(handle, { dmabuf, attach, sgt });
    }
    kset(kbuf, drm_prime_handle, 'handle', handle);
    return copyToUser(arg, drm_prime_handle, kbuf, 12);
  }

  /**
   * `vgem_fence_attach_ioctl`: a new fence (its own context, seqno 1) in the buffer's resv as WRITE or
   * READ. -EBUSY if a conflicting fence is pending: any read or write fence for a write, a write fence for
   * a read (`dma_resv_test_signaled(resv, dma_resv_usage_rw(write))`).
   */
  private fenceAttach(vf: VgemFile, arg: unknown): number {
    const t = this.k.fences;
    const kbuf = copyFromUser(arg, drm_vgem_fence_attach, 16, 16);
    if (typeof kbuf === 'number') return kbuf;
    const flags = kget(kbuf, drm_vgem_fence_attach, 'flags') as number;
    if (flags & ~VGEM_FENCE_WRITE) return -EINVAL;
    if (kget(kbuf, drm_vgem_fence_attach, 'pad')) return -EINVAL;
    const obj = vf.handles.get(kget(kbuf, drm_vgem_fence_attach, 'handle') as number);
    if (obj === undefined) return -ENOENT;
    const write = (flags & VGEM_FENCE_WRITE) !== 0;
    const resv = obj.dmabuf.resv;
    if (!dmaResvTestSignaled(resv, dmaResvUsageRw(write))) return -EBUSY;
    const fence = dmaFenceInit(t, vgemFenceOps, dmaFenceContextAlloc(t, 1), 1);
    if (fence < 0) return fence;
    const locked = dmaResvLock(resv, null);
    if (locked) {
      dmaFencePut(t, fence);
      return locked;
    }
    let ret = dmaResvReserveFences(resv, 1);
    if (!ret) ret = dmaResvAddFence(resv, fence, write ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ);
    dmaResvUnlock(resv);
    if (ret) {
      dmaFencePut(t, fence);
      return ret;
    }
    const id = vf.nextFence++;
    const timer = setTimeout(() => dmaFenceSignal(t, fence), this.fenceTimeoutMs);
    timer.unref();
    vf.fences.set(id, { fence, timer });
    kset(kbuf, drm_vgem_fence_attach, 'out_fence', id);
    return copyToUser(arg, drm_vgem_fence_attach, kbuf, 16);
  }

  /** `vgem_fence_signal_ioctl`: the id is consumed; a fence that already timed out gives -ETIMEDOUT. */
  private fenceSignal(vf: VgemFile, arg: unknown): number {
    const t = this.k.fences;
    const kbuf = copyFromUser(arg, drm_vgem_fence_signal, 8, 8);
    if (typeof kbuf === 'number') return kbuf;
    if (kget(kbuf, drm_vgem_fence_signal, 'flags')) return -EINVAL;
    const id = kget(kbuf, drm_vgem_fence_signal, 'fence') as number;
    const entry = vf.fences.get(id);
    if (entry === undefined) return -ENOENT;
    vf.fences.delete(id);
    clearTimeout(entry.timer);
    const ret = dmaFenceIsSignaled(t, entry.fence) ? -ETIMEDOUT : 0;
    dmaFenceSignal(t, entry.fence);
    dmaFencePut(t, entry.fence);
    return ret;
  }

  /** How long an attached fence lives before it signals itself (tests shorten it). */
  fenceTimeoutMs = VGEM_FENCE_TIMEOUT_MS;

  /** `drm_gem_handle_delete`: -EINVAL for a handle this file does not have. */
  private gemClose(vf: VgemFile, handle: number): number {
    const obj = vf.handles.get(handle);
    if (obj === undefined) return -EINVAL;
    vf.handles.delete(handle);
    dmaBufUnmapAttachmentUnlocked(obj.attach, obj.sgt, DMA_BIDIRECTIONAL);
    dmaBufDetach(obj.dmabuf, obj.attach);
    dmaBufPut(obj.dmabuf);
    return 0;
  }

  private object(proc: Process, drmFd: number, handle: number): VgemObject | Errno {
    const file = proc.files.lookup(drmFd);
    if (file === undefined) return -EBADF;
    if (file.fops !== this.fops) return -EINVAL;
    return (file.privateData as VgemFile).handles.get(handle) ?? -ENOENT;
  }

  /** The device reads `length` bytes at `offset` of an imported buffer, by DMA. */
  dmaRead(proc: Process, drmFd: number, handle: number, offset: number, length: number): Uint8Array | Errno {
    const obj = this.object(proc, drmFd, handle);
    if (typeof obj === 'number') return obj;
    const spans = dmaBufDeviceSpans(obj.attach, obj.sgt, offset, length, 'read');
    if (typeof spans === 'number') return spans;
    const out = new Uint8Array(length);
    let at = 0;
    for (const s of spans) {
      out.set(s, at);
      at += s.length;
    }
    return out;
  }

  /** The device writes `data` at `offset` of an imported buffer, by DMA. */
  dmaWrite(proc: Process, drmFd: number, handle: number, offset: number, data: Uint8Array): number {
    const obj = this.object(proc, drmFd, handle);
    if (typeof obj === 'number') return obj;
    const spans = dmaBufDeviceSpans(obj.attach, obj.sgt, offset, data.length, 'write');
    if (typeof spans === 'number') return spans;
    let at = 0;
    for (const s of spans) {
      s.set(data.subarray(at, at + s.length));
      at += s.length;
    }
    return 0;
  }

  /** The DMA addresses vgem was given for a handle (what the device's page tables would hold). */
  dmaAddresses(
    proc: Process,
    drmFd: number,
    handle: number,
  ): readonly { dmaAddress: number; lengthBytes: number }[] | Errno {
    const obj = this.object(proc, drmFd, handle);
    return typeof obj === 'number' ? obj : obj.sgt.entries;
  }
}
