/**
 * vgem: the kernel's virtual GEM device (drivers/gpu/drm/vgem), the importer the dmabuf-heaps selftest
 * uses. It lets tests exercise import paths without a real device.
 *
 * Contract:
 * - `/dev/dri/card0`; DRM_IOCTL_VERSION names it "vgem". PRIME_FD_TO_HANDLE imports a dma-buf the way
 *   drm_gem_prime_import_dev does: `dma_buf_get`, a static `dma_buf_attach`, then a DMA_BIDIRECTIONAL
 *   `dma_buf_map_attachment_unlocked`. Importing the same buffer twice on one file returns the same
 *   handle. GEM_CLOSE (or closing the file) unmaps, detaches and drops the buffer reference.
 * - Unknown DRM ioctls are -EINVAL (drm_ioctl's default), not -ENOTTY. The vgem fence ioctls arrive with
 *   the fences issue.
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
import { type Device, DMA_BIDIRECTIONAL, type SgTable } from './dma-mapping.js';
import { EBADF, EFAULT, EINVAL, ENOENT, ENOMEM, type Errno, isErr } from './errno.js';
import { File, type FileOperations } from './file.js';
import type { KernelCore } from './kernel-core.js';
import { limits } from './limits.js';
import type { Process } from './process.js';
import {
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_VERSION,
  drm_gem_close,
  drm_prime_handle,
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
}

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
    open: (flags: number) => new File(this.fops, flags, { handles: new Map(), nextHandle: 1 } satisfies VgemFile),
  };

  private readonly fops: FileOperations = Object.freeze({
    name: 'drm',
    unlockedIoctl: (file: File, cmd: number, arg: unknown) => this.ioctl(file.privateData as VgemFile, cmd, arg),
    release: (file: File) => {
      const vf = file.privateData as VgemFile;
      for (const h of [...vf.handles.keys()]) this.gemClose(vf, h);
    },
  });

  private ioctl(vf: VgemFile, cmd: number, arg: unknown): number {
    switch (cmd) {
      case DRM_IOCTL_VERSION:
        return this.version(arg);
      case DRM_IOCTL_PRIME_FD_TO_HANDLE:
        return this.primeFdToHandle(vf, arg);
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
    const spans = dmaBufDeviceSpans(obj.attach, obj.sgt, offset, length);
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
    const spans = dmaBufDeviceSpans(obj.attach, obj.sgt, offset, data.length);
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
