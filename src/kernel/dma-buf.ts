/**
 * dma-buf: a buffer shared between devices and processes (drivers/dma-buf/dma-buf.c).
 *
 * Contract:
 * - `dmaBufExport` checks the exporter's ops table once: map_dma_buf, unmap_dma_buf and release are
 *   required, pin and unpin come as a pair (-EINVAL otherwise, as dma_buf_export's WARN_ON). Any op left
 *   out is the exporter's policy: no `mmap` means mmap(2) fails with -EINVAL, no `beginCpuAccess` means
 *   SYNC only waits for fences.
 * - `size` never changes. The buffer lives while its file has a reference: an fd, a `dmaBufGet`, a VMA.
 *   When the last one goes, `release` runs once; attachments still listed then are a misuse (WARN).
 * - Importers only ever see DMA addresses (an `SgTable`), never pages.
 * - Locking convention (DOC "locking convention"): `dmaBufPin/Unpin`, `dmaBufMapAttachment`,
 *   `dmaBufUnmapAttachment` and `dmaBufMoveNotify` need the resv lock held by the caller (asserted on the
 *   first line); the `…Unlocked` variants take it. `dmaBufAttach/Detach` and `dmaBufBegin/EndCpuAccess`
 *   must be called without it.
 * - Static importers get the buffer pinned on map (when the exporter can pin) and never get move_notify.
 *   Dynamic importers supply `moveNotify`, are not pinned on map, and must re-map after a move.
 */
import { assert, bugOn } from './assert.js';
import { dmaFenceGetStub, dmaFencePut, MAX_SCHEDULE_TIMEOUT } from './dma-fence.js';
import { dmaFenceUnwrapForEach } from './dma-fence-unwrap.js';
import type { HeapRestriction } from './dma-heap.js';
import {
  type Device,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  type SgTable,
  sgTableInvalidate,
  sgTableInvalidated,
  sgTableKill,
} from './dma-mapping.js';
import {
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvAssertHeld,
  dmaResvDescribe,
  dmaResvFini,
  dmaResvGetFences,
  dmaResvGetSingleton,
  dmaResvInit,
  dmaResvLock,
  dmaResvMightLock,
  dmaResvReserveFences,
  dmaResvTestSignaled,
  dmaResvUnlock,
  dmaResvUsageRw,
  dmaResvWaitTimeout,
  dmaResvWaitTimeoutAsync,
} from './dma-resv.js';
import { EBADF, EBUSY, EFAULT, EINTR, EINVAL, ENOMEM, ENOTTY, EOVERFLOW, type Errno, isErr } from './errno.js';
import { File, type FileOperations, FMODE_LSEEK } from './file.js';
import type { KernelCore } from './kernel-core.js';
import { limits } from './limits.js';
import type { PageRun } from './memory.js';
import type { Vma } from './mm.js';
import { syncFileCreate, syncFileGetFence } from './sync-file.js';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_NAME_LEN,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  DMA_BUF_SYNC_WRITE,
  dma_buf_export_sync_file,
  dma_buf_sync,
  O_CLOEXEC,
  PAGE_SHIFT,
  PAGE_SIZE,
  POLLIN,
  POLLOUT,
  SEEK_END,
  SEEK_SET,
} from './uapi.js';
import { copyFromUser, copyToUser, kget, kset, strndupUser } from './usercopy.js';

/** `struct dma_buf_attach_ops`: what a dynamic importer provides. */
export interface DmaBufAttachOps {
  readonly allowPeer2peer?: boolean;
  /** Called with the resv lock held; the importer must drop its mappings and re-map before more DMA. */
  moveNotify(attach: DmaBufAttachment): void;
}

/** `struct dma_buf_ops`. */
export interface DmaBufOps {
  attach?(dmabuf: DmaBuf, attach: DmaBufAttachment): number;
  detach?(dmabuf: DmaBuf, attach: DmaBufAttachment): void;
  pin?(attach: DmaBufAttachment): number;
  unpin?(attach: DmaBufAttachment): void;
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | Errno | null;
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void;
  release(dmabuf: DmaBuf): void;
  beginCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): number;
  endCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): number;
  mmap?(dmabuf: DmaBuf, vma: Vma): number;
  /** A kernel CPU mapping of the whole buffer; called once per 0→1 of the vmap count. */
  vmap?(dmabuf: DmaBuf): KernelVmap | Errno;
  /**
   * The pages a vmap of this buffer maps, and whether the mapping is cached: what a driver thread needs to
   * build its own CPU view (dmafarm's stand-in for a kernel virtual address shared across threads).
   * Exporters without `vmap` have no CPU path and leave this out too.
   */
  vmapPages?(dmabuf: DmaBuf): { runs: readonly PageRun[]; cached: boolean };
  vunmap?(dmabuf: DmaBuf, map: KernelVmap): void;
}

/** `struct iosys_map`: the kernel's CPU view of a buffer. Loads and stores go through the CPU cache
 * for a cached (PAGE_KERNEL) mapping, straight to memory for a write-combined one. */
export interface KernelVmap {
  read(offset: number, lengthBytes: number): Uint8Array;
  write(offset: number, data: Uint8Array): void;
}

/** `struct dma_buf_export_info`. */
export interface DmaBufExportInfo {
  /** Defaults to the exporting module's name (KBUILD_MODNAME); heaps pass their heap name. */
  expName?: string;
  ops: DmaBufOps;
  sizeBytes: number;
  /** open(2)-style flags for the file: O_ACCMODE and O_NONBLOCK are kept. */
  flags: number;
  priv: unknown;
  /** Share another object's resv; otherwise one is embedded. */
  resv?: DmaResv;
}

/** The kernel's `dmabuf_list` plus the inode counter; one per kernel. */
export class DmaBufList {
  readonly bufs = new Set<DmaBuf>();
  nextIno = 1;
}

/** Who allocated a buffer, for per-process and per-heap accounting. */
/** The restriction of a buffer no heap booked: anyone may touch it. */
const NO_RESTRICTION: HeapRestriction = Object.freeze({ kind: 'none' });

export interface DmaBufOwner {
  readonly pid: number;
  readonly heapName: string | null;
  /** Called once at release so the allocator's ledger stays exact. */
  readonly onRelease?: (dmabuf: DmaBuf) => void;
}

let nextAttachId = 1;

export class DmaBufAttachment {
  readonly id = nextAttachId++;
  readonly dmabuf: DmaBuf;
  readonly dev: Device;
  readonly importerOps: DmaBufAttachOps | null;
  readonly importerPriv: unknown;
  readonly peer2peer: boolean;
  /** Exporter-private per-attachment state (system_heap's private sg copy and `mapped` flag). */
  priv: unknown;
  /** Tables handed out and not yet unmapped: map/unmap are balanced per call, not refcounted. */
  readonly liveMaps = new Set<SgTable>();
  detached = false;

  constructor(dmabuf: DmaBuf, dev: Device, ops: DmaBufAttachOps | null, importerPriv: unknown) {
    this.dmabuf = dmabuf;
    this.dev = dev;
    this.importerOps = ops;
    this.importerPriv = importerPriv;
    this.peer2peer = ops?.allowPeer2peer ?? false;
  }
  /** `dma_buf_attachment_is_dynamic`. */
  get dynamic(): boolean {
    return this.importerOps !== null;
  }
}

export class DmaBuf {
  readonly kernel: KernelCore;
  readonly ino: number;
  readonly sizeBytes: number;
  readonly ops: DmaBufOps;
  readonly priv: unknown;
  readonly expName: string;
  readonly resv: DmaResv;
  readonly file: File;
  /** `dmabuf->name`; null until DMA_BUF_SET_NAME (an empty string counts as set). */
  name: string | null = null;
  /** Newest first, as `list_add` leaves them. */
  readonly attachments: DmaBufAttachment[] = [];
  owner: DmaBufOwner | null = null;
  /**
   * Who may touch the bytes: the restriction of the heap it came from, set when the heap books it
   * (a protected heap's firewall; see heaps/tee-heap.ts). Exporters outside the heaps leave it 'none'.
   */
  restriction: HeapRestriction = NO_RESTRICTION;
  released = false;
  /** `vmapping_counter` and `vmap_ptr`. */
  vmappingCounter = 0;
  vmapPtr: KernelVmap | null = null;

  /** True when the resv is embedded (ours to finalise at release), not shared from another object. */
  readonly ownsResv: boolean;

  constructor(kernel: KernelCore, ino: number, info: DmaBufExportInfo, resv: DmaResv) {
    this.kernel = kernel;
    this.ino = ino;
    this.sizeBytes = info.sizeBytes;
    this.ops = info.ops;
    this.priv = info.priv;
    this.expName = info.expName ?? 'dmafarm';
    this.resv = resv;
    this.ownsResv = info.resv === undefined;
    this.file = new File(dmaBufFops, info.flags, this, FMODE_LSEEK);
    this.file.ino = ino;
  }
}

// --- export, fd, get, put ----------------------------------------------------------------------

/** `dma_buf_export`: validates the ops table once; a DmaBuf holding one file reference, or -errno. */
export function dmaBufExport(k: KernelCore, list: DmaBufList, info: DmaBufExportInfo): DmaBuf | Errno {
  const ops = info.ops;
  if (warnOn(k, !info.priv || !ops?.mapDmaBuf || !ops.unmapDmaBuf || !ops.release, 'dmabuf-export-bad-ops')) {
    return -EINVAL;
  }
  if (warnOn(k, !ops.pin !== !ops.unpin, 'dmabuf-export-pin-without-unpin')) return -EINVAL;
  if (list.bufs.size >= limits.dmaBufCountMax) return -ENOMEM;
  assert(info.sizeBytes > 0 && info.sizeBytes % (1 << PAGE_SHIFT) === 0, 'export of a non page-aligned size');
  const resv = info.resv ?? dmaResvInit(k.resvs);
  if (isErr(resv)) return resv;
  const dmabuf = new DmaBuf(k, list.nextIno++, info, resv);
  list.bufs.add(dmabuf);
  dmaBufLists.set(dmabuf, list);
  k.channels.publish('kernel:dmabuf:export', {
    ino: dmabuf.ino,
    expName: dmabuf.expName,
    sizeBytes: dmabuf.sizeBytes,
  });
  return dmabuf;
}

const dmaBufLists = new WeakMap<DmaBuf, DmaBufList>();

/** `dma_buf_fd`: installs the buffer's file reference at a new fd of the current process. */
export function dmaBufFd(dmabuf: DmaBuf, flags: number): number {
  return dmabuf.kernel.currentFiles().install(dmabuf.file, flags);
}

/** `is_dma_buf_file`. */
export function isDmaBufFile(file: File): boolean {
  return file.fops === dmaBufFops;
}

/** `dma_buf_get(fd)`: takes a file reference; -EBADF for a bad fd, -EINVAL for a non-dma-buf. */
export function dmaBufGet(k: KernelCore, fd: number): DmaBuf | Errno {
  const file = k.currentFiles().lookup(fd);
  if (file === undefined) return -EBADF;
  if (!isDmaBufFile(file)) return -EINVAL;
  file.get();
  return file.privateData as DmaBuf;
}

/** `dma_buf_put`. */
export function dmaBufPut(dmabuf: DmaBuf): void {
  dmabuf.file.put();
}

function dmaBufRelease(file: File): void {
  const dmabuf = file.privateData as DmaBuf;
  const k = dmabuf.kernel;
  bugOn(dmabuf.released, `dma-buf ${dmabuf.ino} released twice`);
  bugOn(dmabuf.vmappingCounter !== 0, `dma-buf ${dmabuf.ino} released while vmapped`);
  dmabuf.ops.release(dmabuf);
  if (dmabuf.attachments.length > 0) {
    k.warn('dmabuf-release-with-attachments', 'dma-buf released while importers are still attached', {
      ino: dmabuf.ino,
      devices: dmabuf.attachments.map((a) => a.dev.name).join(','),
    });
    // The pages are gone: any table still handed out now points at freed memory.
    for (const a of dmabuf.attachments) for (const sgt of a.liveMaps) sgTableKill(sgt);
  }
  if (dmabuf.ownsResv) dmaResvFini(dmabuf.resv);
  dmabuf.released = true;
  dmaBufLists.get(dmabuf)?.bufs.delete(dmabuf);
  dmabuf.owner?.onRelease?.(dmabuf);
  k.channels.publish('kernel:dmabuf:release', {
    ino: dmabuf.ino,
    expName: dmabuf.expName,
    sizeBytes: dmabuf.sizeBytes,
  });
}

// --- attachments ----------------------------------------------------------------------------

/**
 * `dma_buf_dynamic_attach`; `importerOps === null` is a static importer (`dma_buf_attach`).
 * `@internal callerLocked`: the caller took the resv lock already (the device farm's kernel thread, which
 * must not sleep on a lock a device holds, takes it with a trylock first); the kernel's API has no such
 * variant, so nothing else passes it.
 */
export function dmaBufDynamicAttach(
  dmabuf: DmaBuf,
  dev: Device,
  importerOps: DmaBufAttachOps | null,
  importerPriv: unknown = null,
  callerLocked = false,
): DmaBufAttachment | Errno {
  const k = dmabuf.kernel;
  if (warnOn(k, dmabuf.released || !dev, 'dmabuf-attach-bad-args', { ino: dmabuf.ino })) return -EINVAL;
  if (warnOn(k, importerOps !== null && !importerOps.moveNotify, 'dmabuf-dynamic-attach-no-move-notify')) {
    return -EINVAL;
  }
  if (callerLocked) dmaResvAssertHeld(dmabuf.resv, 'dma_buf_attach (caller-locked)');
  const mayLock = !callerLocked && dmaResvMightLock(dmabuf.resv, 'dma_buf_attach');
  if (dmabuf.attachments.length >= limits.attachmentsPerBufMax) return -ENOMEM;
  const attach = new DmaBufAttachment(dmabuf, dev, importerOps, importerPriv);
  if (dmabuf.ops.attach) {
    const ret = dmabuf.ops.attach(dmabuf, attach);
    if (ret) return ret;
  }
  // The list changes only under the resv lock (move_notify walks it with the lock held, from any thread).
  const locked = mayLock && dmaResvLock(dmabuf.resv, null) === 0;
  dmabuf.attachments.unshift(attach);
  if (locked) dmaResvUnlock(dmabuf.resv);
  k.channels.publish('kernel:dmabuf:attach', { ino: dmabuf.ino, device: dev.name, dynamic: attach.dynamic });
  return attach;
}

/** `dma_buf_attach`: a static importer. */
export function dmaBufAttach(dmabuf: DmaBuf, dev: Device): DmaBufAttachment | Errno {
  return dmaBufDynamicAttach(dmabuf, dev, null);
}

/**
 * `dma_buf_detach`. The importer must have unmapped first (current kernels do not do it for you).
 * `@internal callerLocked` as for `dmaBufDynamicAttach`.
 */
export function dmaBufDetach(dmabuf: DmaBuf, attach: DmaBufAttachment, callerLocked = false): void {
  const k = dmabuf.kernel;
  if (warnOn(k, attach.dmabuf !== dmabuf || attach.detached, 'dmabuf-detach-bad-args', { ino: dmabuf.ino })) {
    return;
  }
  if (callerLocked) dmaResvAssertHeld(dmabuf.resv, 'dma_buf_detach (caller-locked)');
  const mayLock = !callerLocked && dmaResvMightLock(dmabuf.resv, 'dma_buf_detach');
  if (attach.liveMaps.size > 0) {
    k.warn('dmabuf-detach-while-mapped', 'detach with mappings still live (importer must unmap first)', {
      ino: dmabuf.ino,
      device: attach.dev.name,
      mappings: attach.liveMaps.size,
    });
    for (const sgt of attach.liveMaps) sgTableKill(sgt);
    attach.liveMaps.clear();
  }
  const idx = dmabuf.attachments.indexOf(attach);
  assert(idx >= 0, 'attachment not on its buffer list');
  const locked = mayLock && dmaResvLock(dmabuf.resv, null) === 0;
  dmabuf.attachments.splice(idx, 1);
  if (locked) dmaResvUnlock(dmabuf.resv);
  attach.detached = true;
  dmabuf.ops.detach?.(dmabuf, attach);
  k.channels.publish('kernel:dmabuf:detach', { ino: dmabuf.ino, device: attach.dev.name, dynamic: attach.dynamic });
}

/** `dma_buf_pin`: dynamic importers only, resv held. */
export function dmaBufPin(attach: DmaBufAttachment): number {
  const dmabuf = attach.dmabuf;
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_pin');
  warnOn(dmabuf.kernel, !attach.dynamic, 'dmabuf-pin-static-importer', { ino: dmabuf.ino });
  return dmabuf.ops.pin ? dmabuf.ops.pin(attach) : 0;
}

/** `dma_buf_unpin`. */
export function dmaBufUnpin(attach: DmaBufAttachment): void {
  const dmabuf = attach.dmabuf;
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_unpin');
  warnOn(dmabuf.kernel, !attach.dynamic, 'dmabuf-pin-static-importer', { ino: dmabuf.ino });
  dmabuf.ops.unpin?.(attach);
}

/** Static importers are pinned for the life of a mapping, when the exporter can pin ([MM] rule). */
function pinOnMap(attach: DmaBufAttachment): boolean {
  return attach.dmabuf.ops.pin !== undefined && !attach.dynamic;
}

/** `dma_buf_map_attachment`: caller holds the resv lock. Returns DMA addresses only. */
export function dmaBufMapAttachment(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | Errno {
  const dmabuf = attach.dmabuf;
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_map_attachment');
  const k = dmabuf.kernel;
  if (warnOn(k, attach.detached || dmabuf.released, 'dmabuf-map-detached', { ino: dmabuf.ino })) return -EINVAL;
  if (pinOnMap(attach)) {
    const ret = dmabuf.ops.pin?.(attach) ?? 0;
    // WARN_ON_ONCE(ret == -EBUSY): an exporter may not make a buffer inaccessible to a static importer.
    if (ret === -EBUSY) {
      k.warn('dmabuf-pin-on-map-busy', 'exporter refused to pin for a static importer (-EBUSY)', {
        ino: dmabuf.ino,
        device: attach.dev.name,
      });
    }
    if (ret) return ret;
  }
  let sgt = dmabuf.ops.mapDmaBuf(attach, dir);
  if (sgt === null) sgt = -ENOMEM;
  if (isErr(sgt)) {
    if (pinOnMap(attach)) dmabuf.ops.unpin?.(attach);
    return sgt;
  }
  if (!attach.dynamic) {
    // Static importers may not have seen a move's fence: wait for KERNEL fences, interruptibly.
    const ret = waitForFences(dmabuf, DMA_RESV_USAGE_KERNEL, 'dma_buf_map_attachment');
    if (ret < 0) {
      dmabuf.ops.unmapDmaBuf(attach, sgt, dir);
      if (pinOnMap(attach)) dmabuf.ops.unpin?.(attach);
      return ret;
    }
  }
  attach.liveMaps.add(sgt);
  k.channels.publish('kernel:dmabuf:map', {
    ino: dmabuf.ino,
    device: attach.dev.name,
    dir,
    dmaAddresses: sgt.entries.map((e) => e.dmaAddress),
  });
  return sgt;
}

/** `dma_buf_unmap_attachment`: caller holds the resv lock. */
export function dmaBufUnmapAttachment(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
  const dmabuf = attach.dmabuf;
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_unmap_attachment');
  if (warnOn(dmabuf.kernel, !attach.liveMaps.has(sgt), 'dmabuf-unmap-unknown', { ino: dmabuf.ino, sgt: sgt.id })) {
    return;
  }
  attach.liveMaps.delete(sgt);
  dmabuf.ops.unmapDmaBuf(attach, sgt, dir);
  if (pinOnMap(attach)) dmabuf.ops.unpin?.(attach);
  dmabuf.kernel.channels.publish('kernel:dmabuf:unmap', {
    ino: dmabuf.ino,
    device: attach.dev.name,
    dir,
    dmaAddresses: sgt.entries.map((e) => e.dmaAddress),
  });
}

/** `dma_buf_map_attachment_unlocked`: takes and drops the resv lock around the map. */
export function dmaBufMapAttachmentUnlocked(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | Errno {
  const resv = attach.dmabuf.resv;
  const ret = dmaResvLock(resv, null);
  if (ret) return ret;
  try {
    return dmaBufMapAttachment(attach, dir);
  } finally {
    dmaResvUnlock(resv);
  }
}

/** `dma_buf_unmap_attachment_unlocked`. */
export function dmaBufUnmapAttachmentUnlocked(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
  const resv = attach.dmabuf.resv;
  const ret = dmaResvLock(resv, null);
  if (ret) return;
  try {
    dmaBufUnmapAttachment(attach, sgt, dir);
  } finally {
    dmaResvUnlock(resv);
  }
}

/** `dma_buf_move_notify`: exporter holds the resv lock; every dynamic importer is told. */
export function dmaBufMoveNotify(dmabuf: DmaBuf): void {
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_move_notify');
  const told: string[] = [];
  for (const a of [...dmabuf.attachments]) {
    if (a.importerOps === null) continue;
    told.push(a.dev.name);
    // Until it unmaps, the importer may still read (speculatively) through these tables, never write.
    for (const sgt of a.liveMaps) sgTableInvalidate(sgt);
    a.importerOps.moveNotify(a);
  }
  dmabuf.kernel.channels.publish('kernel:dmabuf:move-notify', { ino: dmabuf.ino, importers: told });
}

// --- CPU access --------------------------------------------------------------------------------

/** `dma_buf_begin_cpu_access`: exporter's cache maintenance, then wait for the fences that conflict. */
export function dmaBufBeginCpuAccess(dmabuf: DmaBuf, dir: DmaDataDirection): number {
  dmaResvMightLock(dmabuf.resv, 'dma_buf_begin_cpu_access');
  const write = dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE;
  let ret = dmabuf.ops.beginCpuAccess ? dmabuf.ops.beginCpuAccess(dmabuf, dir) : 0;
  if (ret === 0) {
    ret = waitForFences(dmabuf, dmaResvUsageRw(write), 'dma_buf_begin_cpu_access');
  }
  return ret;
}

/**
 * An interruptible, unbounded fence wait as the kernel does it — except that a synchronous wait may not
 * hold the thread past `blockingWaitNsMax`: then it is reported as a hung task and ends as if a signal
 * interrupted it (-EINTR). 0 when every fence of usage ≤ `usage` has signalled.
 */
function waitForFences(dmabuf: DmaBuf, usage: DmaResvUsage, site: string): number {
  const k = dmabuf.kernel;
  const budget = k.blockingWaitNsMax;
  const r = dmaResvWaitTimeout(
    dmabuf.resv,
    usage,
    true,
    budget === Number.POSITIVE_INFINITY ? MAX_SCHEDULE_TIMEOUT : budget,
  );
  if (r > 0) return 0;
  if (r === 0) {
    k.warn('hung-task', `${site} blocked the kernel thread on unsignalled fences; interrupted`, { ino: dmabuf.ino });
    return -EINTR;
  }
  return r;
}

/** `dma_buf_end_cpu_access`: exporter's cache maintenance only; never waits. */
export function dmaBufEndCpuAccess(dmabuf: DmaBuf, dir: DmaDataDirection): number {
  dmaResvMightLock(dmabuf.resv, 'dma_buf_end_cpu_access');
  return dmabuf.ops.endCpuAccess ? dmabuf.ops.endCpuAccess(dmabuf, dir) : 0;
}

// --- kernel mappings: vmap and dma_buf_mmap --------------------------------------------------

/** `dma_buf_vmap`: resv held; refcounted, the exporter's vmap runs on the first map only. */
export function dmaBufVmap(dmabuf: DmaBuf): KernelVmap | Errno {
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_vmap');
  if (!dmabuf.ops.vmap) return -EINVAL;
  if (dmabuf.vmappingCounter > 0) {
    assert(dmabuf.vmapPtr !== null, 'vmap counted without a pointer');
    dmabuf.vmappingCounter++;
    return dmabuf.vmapPtr;
  }
  const map = dmabuf.ops.vmap(dmabuf);
  if (isErr(map)) {
    dmabuf.kernel.warn('dmabuf-vmap-failed', `exporter vmap failed with ${map}`, { ino: dmabuf.ino });
    return map;
  }
  dmabuf.vmapPtr = map;
  dmabuf.vmappingCounter = 1;
  return map;
}

/** `dma_buf_vunmap`: resv held; BUG on an unbalanced or foreign map, exporter vunmap at zero. */
export function dmaBufVunmap(dmabuf: DmaBuf, map: KernelVmap): void {
  dmaResvAssertHeld(dmabuf.resv, 'dma_buf_vunmap');
  bugOn(dmabuf.vmappingCounter === 0, `dma_buf_vunmap of ino ${dmabuf.ino} with no vmap`);
  bugOn(dmabuf.vmapPtr !== map, `dma_buf_vunmap of ino ${dmabuf.ino} with a foreign map`);
  dmabuf.vmappingCounter--;
  if (dmabuf.vmappingCounter === 0) {
    dmabuf.ops.vunmap?.(dmabuf, map);
    dmabuf.vmapPtr = null;
  }
}

/** `dma_buf_vmap_unlocked`. */
export function dmaBufVmapUnlocked(dmabuf: DmaBuf): KernelVmap | Errno {
  const ret = dmaResvLock(dmabuf.resv, null);
  if (ret) return ret;
  try {
    return dmaBufVmap(dmabuf);
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

/** `dma_buf_vunmap_unlocked`. */
export function dmaBufVunmapUnlocked(dmabuf: DmaBuf, map: KernelVmap): void {
  const ret = dmaResvLock(dmabuf.resv, null);
  if (ret) return;
  try {
    dmaBufVunmap(dmabuf, map);
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

/**
 * `dma_buf_mmap(dmabuf, vma, pgoff)`: an importer forwarding its own mmap to the exporter. The VMA is
 * retargeted at the dma-buf's file (taking a reference, dropping the importer file's), as the kernel does.
 */
export function dmaBufMmap(dmabuf: DmaBuf, vma: Vma, pgoff: number): number {
  if (!dmabuf.ops.mmap) return -EINVAL;
  const pages = (vma.end - vma.start) / PAGE_SIZE; // not >>: VMAs may exceed 2^31 bytes
  if (pgoff + pages < pgoff || pgoff + pages > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
  if (pgoff + pages > dmabuf.sizeBytes / PAGE_SIZE) return -EINVAL;
  vma.pgoff = pgoff;
  return dmabuf.ops.mmap(dmabuf, vma);
}

// --- device access through a mapping (what a DMA engine does) ---------------------------------

/**
 * A device reads or writes bytes of a buffer through one of its live mappings. A table that was unmapped,
 * invalidated by detach or freed with its buffer is a misuse (an IOMMU fault on real hardware): reported,
 * and the access is refused with -EFAULT. A write through a table after move_notify (before the importer
 * unmapped it) is reported too, and lands in the old pages, as it would (kernel-semantics §3.5). A device
 * outside a protected buffer's firewall is reported (`restricted-dma`) and reaches no memory.
 */
export function dmaBufDeviceSpans(
  attach: DmaBufAttachment,
  sgt: SgTable,
  offset: number,
  lengthBytes: number,
  access: 'read' | 'write' = 'write',
): Uint8Array[] | Errno {
  const k = attach.dmabuf.kernel;
  if (access === 'write' && sgTableInvalidated(sgt) && attach.liveMaps.has(sgt)) {
    k.warn('dma-write-after-move-notify', `${attach.dev.name} wrote through a mapping the exporter invalidated`, {
      ino: attach.dmabuf.ino,
      device: attach.dev.name,
      sgt: sgt.id,
    });
  }
  if (!attach.liveMaps.has(sgt) || !sgt.live) {
    k.warn('dma-access-unmapped', `${attach.dev.name} accessed a mapping that is no longer live`, {
      ino: attach.dmabuf.ino,
      device: attach.dev.name,
      sgt: sgt.id,
    });
    return -EFAULT;
  }
  if (offset < 0 || lengthBytes < 0 || offset + lengthBytes > sgt.totalBytes) return -EINVAL;
  const r = attach.dmabuf.restriction;
  if (r.kind === 'protected' && !r.firewall.includes(attach.dev.name)) {
    k.warn(
      'restricted-dma',
      `${attach.dev.name} ${access === 'read' ? 'read' : 'wrote'} protected buffer ${attach.dmabuf.ino}, whose firewall admits only ${r.firewall.join(', ')}`,
      { ino: attach.dmabuf.ino, device: attach.dev.name, useCase: r.useCase },
    );
    // The firewall answers the transaction without memory: a read sees zeros, a write goes nowhere.
    return [new Uint8Array(lengthBytes)];
  }
  return k.dma.deviceSpans(sgt, offset, lengthBytes);
}

// --- the file: ioctl, mmap, llseek, fdinfo -----------------------------------------------------

function dmaBufIoctl(file: File, cmd: number, arg: unknown): number {
  const dmabuf = file.privateData as DmaBuf;
  switch (cmd) {
    case DMA_BUF_IOCTL_SYNC:
      return dmaBufIoctlSync(dmabuf, arg);
    case DMA_BUF_SET_NAME_A:
    case DMA_BUF_SET_NAME_B:
      return dmaBufSetName(dmabuf, arg);
    case DMA_BUF_IOCTL_EXPORT_SYNC_FILE:
      return dmaBufExportSyncFile(dmabuf, arg);
    case DMA_BUF_IOCTL_IMPORT_SYNC_FILE:
      return dmaBufImportSyncFile(dmabuf, arg);
    default:
      return -ENOTTY;
  }
}

function dmaBufIoctlSync(dmabuf: DmaBuf, arg: unknown): number {
  const kbuf = copyFromUser(arg, dma_buf_sync, 8, 8);
  if (typeof kbuf === 'number') return kbuf;
  const flags = BigInt(kget(kbuf, dma_buf_sync, 'flags'));
  if (flags & ~BigInt(DMA_BUF_SYNC_VALID_FLAGS_MASK)) return -EINVAL;
  let dir: DmaDataDirection;
  switch (Number(flags) & DMA_BUF_SYNC_RW) {
    case DMA_BUF_SYNC_READ:
      dir = DMA_FROM_DEVICE;
      break;
    case DMA_BUF_SYNC_WRITE:
      dir = DMA_TO_DEVICE;
      break;
    case DMA_BUF_SYNC_RW:
      dir = DMA_BIDIRECTIONAL;
      break;
    default:
      return -EINVAL;
  }
  const end = (Number(flags) & DMA_BUF_SYNC_END) !== 0;
  const result = end ? dmaBufEndCpuAccess(dmabuf, dir) : dmaBufBeginCpuAccess(dmabuf, dir);
  dmabuf.kernel.channels.publish('kernel:dmabuf:cpu-access', {
    ino: dmabuf.ino,
    pid: dmabuf.kernel.current.pid,
    flags: Number(flags),
    result,
  });
  return result;
}

function syncFileFlags(kbuf: DataView): number {
  const flags = kget(kbuf, dma_buf_export_sync_file, 'flags') as number;
  if (flags & ~DMA_BUF_SYNC_RW) return -EINVAL;
  if ((flags & DMA_BUF_SYNC_RW) === 0) return -EINVAL;
  return flags;
}

/** `dma_buf_export_sync_file`: a snapshot of the fences a reader (or writer) would wait for. */
function dmaBufExportSyncFile(dmabuf: DmaBuf, arg: unknown): number {
  const k = dmabuf.kernel;
  const kbuf = copyFromUser(arg, dma_buf_export_sync_file, 8, 8);
  if (typeof kbuf === 'number') return kbuf;
  const flags = syncFileFlags(kbuf);
  if (flags < 0) return flags;
  const files = k.currentFiles();
  const fd = files.getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) return fd;
  const single = dmaResvGetSingleton(dmabuf.resv, dmaResvUsageRw((flags & DMA_BUF_SYNC_WRITE) !== 0));
  if (isErr(single)) {
    files.putUnusedFd(fd);
    return single;
  }
  const fence = single ?? dmaFenceGetStub(k.fences);
  const file = syncFileCreate(k, fence);
  dmaFencePut(k.fences, fence);
  kset(kbuf, dma_buf_export_sync_file, 'fd', fd);
  if (copyToUser(arg, dma_buf_export_sync_file, kbuf, 8) < 0) {
    file.put();
    files.putUnusedFd(fd);
    return -EFAULT;
  }
  files.fdInstall(fd, file);
  return 0;
}

/** `dma_buf_import_sync_file`: every leaf of the sync_file's fence joins the resv as WRITE or READ. */
function dmaBufImportSyncFile(dmabuf: DmaBuf, arg: unknown): number {
  const k = dmabuf.kernel;
  const kbuf = copyFromUser(arg, dma_buf_export_sync_file, 8, 8);
  if (typeof kbuf === 'number') return kbuf;
  const flags = syncFileFlags(kbuf);
  if (flags < 0) return flags;
  const fence = syncFileGetFence(k, kget(kbuf, dma_buf_export_sync_file, 'fd') as number);
  if (fence === null) return -EINVAL;
  const usage = flags & DMA_BUF_SYNC_WRITE ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ;
  const leaves = [...dmaFenceUnwrapForEach(k.fences, fence)];
  let ret = 0;
  if (leaves.length > 0) {
    const locked = dmaResvLock(dmabuf.resv, null);
    if (locked) {
      dmaFencePut(k.fences, fence);
      return locked;
    }
    ret = dmaResvReserveFences(dmabuf.resv, leaves.length);
    if (!ret) for (const f of leaves) dmaResvAddFence(dmabuf.resv, f, usage);
    dmaResvUnlock(dmabuf.resv);
  }
  dmaFencePut(k.fences, fence);
  return ret;
}

/** What a SYNC START would wait for, awaited without blocking (see Process.ioctlAsync). */
async function dmaBufIoctlWaitAsync(file: File, cmd: number, arg: unknown): Promise<void> {
  if (cmd !== DMA_BUF_IOCTL_SYNC || typeof arg !== 'object' || arg === null) return;
  const flags = Number((arg as { flags?: unknown }).flags ?? 0);
  if (!Number.isFinite(flags) || flags & DMA_BUF_SYNC_END || (flags & DMA_BUF_SYNC_RW) === 0) return;
  const dmabuf = file.privateData as DmaBuf;
  await dmaResvWaitTimeoutAsync(
    dmabuf.resv,
    dmaResvUsageRw((flags & DMA_BUF_SYNC_WRITE) !== 0),
    true,
    MAX_SCHEDULE_TIMEOUT,
  );
}

/** `dma_buf_poll`: POLLIN once writers are done (usage ≤ WRITE), POLLOUT once readers are too (≤ READ). */
function dmaBufPoll(file: File): { mask: number; fences: readonly number[] } {
  const dmabuf = file.privateData as DmaBuf;
  let mask = 0;
  if (dmaResvTestSignaled(dmabuf.resv, DMA_RESV_USAGE_WRITE)) mask |= POLLIN;
  if (dmaResvTestSignaled(dmabuf.resv, DMA_RESV_USAGE_READ)) mask |= POLLOUT;
  if (mask === (POLLIN | POLLOUT)) return { mask, fences: [] };
  return { mask, fences: dmaResvGetFences(dmabuf.resv, DMA_RESV_USAGE_READ).map((e) => e.fence) };
}

/** `dma_buf_set_name`: any time, any number of times (no -EBUSY since v5.16). */
function dmaBufSetName(dmabuf: DmaBuf, arg: unknown): number {
  const name = strndupUser(arg, DMA_BUF_NAME_LEN);
  if (typeof name === 'number') return name;
  dmabuf.name = name;
  return 0;
}

function dmaBufLlseek(file: File, offset: number, whence: number): number {
  const dmabuf = file.privateData as DmaBuf;
  let base: number;
  if (whence === SEEK_END) base = dmabuf.sizeBytes;
  else if (whence === SEEK_SET) base = 0;
  else return -EINVAL;
  if (offset !== 0) return -EINVAL;
  return base + offset;
}

function dmaBufMmapInternal(file: File, vma: Vma): number {
  const dmabuf = file.privateData as DmaBuf;
  if (!dmabuf.ops.mmap) return -EINVAL;
  const pages = (vma.end - vma.start) / PAGE_SIZE; // not >>: VMAs may exceed 2^31 bytes
  if (vma.pgoff + pages > dmabuf.sizeBytes / PAGE_SIZE) return -EINVAL;
  return dmabuf.ops.mmap(dmabuf, vma);
}

function dmaBufShowFdinfo(file: File): string {
  const dmabuf = file.privateData as DmaBuf;
  let s = `size:\t${dmabuf.sizeBytes}\ncount:\t${file.refCount}\nexp_name:\t${dmabuf.expName}\n`;
  if (dmabuf.name !== null) s += `name:\t${dmabuf.name}\n`;
  return s;
}

export const dmaBufFops: FileOperations = Object.freeze({
  name: 'dmabuf',
  llseek: dmaBufLlseek,
  unlockedIoctl: dmaBufIoctl,
  mmap: dmaBufMmapInternal,
  release: dmaBufRelease,
  poll: dmaBufPoll,
  ioctlWaitAsync: dmaBufIoctlWaitAsync,
  showFdinfo: dmaBufShowFdinfo,
  dname: (file: File) => `/dmabuf:${(file.privateData as DmaBuf).name ?? ''}`,
});

// --- debugfs --------------------------------------------------------------------------------

const pad8 = (n: number, base = 10): string => n.toString(base).padStart(8, '0');

/** `/sys/kernel/debug/dma_buf/bufinfo`, in `dma_buf_debug_show`'s exact format. */
export function dmaBufDebugShow(list: DmaBufList): string {
  let s = '\nDma-buf Objects:\n';
  s += `${'size'.padEnd(8)}\t${'flags'.padEnd(8)}\t${'mode'.padEnd(8)}\t${'count'.padEnd(8)}\texp_name\t${'ino'.padEnd(8)}\tname\n`;
  let count = 0;
  let sizeBytes = 0;
  // `__dma_buf_list_add` uses list_add: the newest buffer is listed first.
  for (const b of [...list.bufs].reverse()) {
    s += `${pad8(b.sizeBytes)}\t${pad8(b.file.fFlags, 16)}\t${pad8(b.file.fMode, 16)}\t${pad8(b.file.refCount)}\t${b.expName}\t${pad8(b.ino)}\t${b.name ?? '<none>'}\n`;
    for (const line of dmaResvDescribe(b.resv)) s += `\t${line}\n`;
    s += '\tAttached Devices:\n';
    for (const a of b.attachments) s += `\t${a.dev.name}\n`;
    s += `Total ${b.attachments.length} devices attached\n\n`;
    count++;
    sizeBytes += b.sizeBytes;
  }
  s += `\nTotal ${count} objects, ${sizeBytes} bytes\n`;
  return s;
}

function warnOn(k: KernelCore, cond: boolean, rule: string, objects: Record<string, string | number> = {}): boolean {
  if (cond) k.warn(rule, `WARN_ON: ${rule}`, objects);
  return cond;
}
