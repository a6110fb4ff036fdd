/**
 * DMA-BUF heaps: the allocator registry and `/dev/dma_heap/<name>` (drivers/dma-buf/dma-heap.c).
 *
 * Contract:
 * - `dmaHeapAdd` checks the heap once: a non-empty name, an `allocate` op, a unique name, a free minor
 *   among `limits.heapCountMax` (-EINVAL / -EINVAL / -EINVAL / -EBUSY). Heaps are never removed.
 * - A heap declares typed `properties` (backing, contiguity, CPU caching, restriction, granularity,
 *   capacity). Policy elsewhere (mmap, selection, permissions) reads these; nothing matches heap names.
 * - ALLOC follows `dma_heap_ioctl` exactly: the command number alone selects ALLOC (type, direction and
 *   size are not checked); the struct is copied in `_IOC_SIZE` bytes with the tail zero-filled, so older
 *   and newer struct sizes work. Fd publication follows the stable fix (C1 in kernel-semantics.md §11)
 *   unless `allocFdPublish: 'legacy'`.
 * - Per-heap stats (the 2019 heaps discussion): live buffers, bytes, high-water mark; `resetStats` resets
 *   the high-water mark to the current level. They are exact at all times: every release is booked.
 */
import { type DmaBuf, type DmaBufList, dmaBufPut } from './dma-buf.js';
import { EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM, type Errno, isErr } from './errno.js';
import { File, type FileOperations, noLlseek } from './file.js';
import type { ProtectedUseCase } from './heaps/tee-heap.js';
import type { KernelCore } from './kernel-core.js';
import { limits } from './limits.js';
import {
  _IOC_NR,
  _IOC_SIZE,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_VALID_FD_FLAGS,
  DMA_HEAP_VALID_HEAP_FLAGS,
  dma_heap_allocation_data,
  IOC_IN,
  IOC_OUT,
  PAGE_SIZE,
} from './uapi.js';
import { copyFromUser, copyToUser, kget, kset } from './usercopy.js';

/** How the heap's memory is obtained. */
export type HeapBacking = 'buddy' | 'cma-area' | 'carveout' | 'tee-pool-static' | 'tee-pool-dynamic' | 'device-local';

/**
 * Who may touch the heap's buffers. 'protected' (tee-heap.ts): no CPU path at all, and a hardware firewall
 * that admits only the DMA masters in `firewall` (device names or models). 'cpu-unmappable' and
 * 'cpu-refused' are the two CPU policies of kernel-semantics §9.3 (no op → -EINVAL; MTK's explicit refusal).
 */
export type HeapRestriction =
  | { readonly kind: 'none' }
  | { readonly kind: 'cpu-unmappable' }
  | { readonly kind: 'cpu-refused'; readonly errno: number }
  | {
      readonly kind: 'protected';
      readonly useCase: ProtectedUseCase;
      readonly firewall: readonly string[];
    };

export interface HeapProperties {
  readonly backing: HeapBacking;
  /** 'physical': every buffer is one contiguous run (one sg entry). */
  readonly contiguity: 'virtual' | 'physical';
  /** How CPU mappings are made: cached needs SYNC for coherency; uncached/write-combined does not. */
  readonly cpuCache: 'cached' | 'uncached';
  readonly restriction: HeapRestriction;
  /** Allocation unit in bytes. */
  readonly granularityBytes: number;
  /** Most bytes the heap can ever hand out. */
  readonly capacityBytes: number;
  /** Allocations are zeroed (every heap here; the kernel's heaps all zero). */
  readonly zeroed: boolean;
  /** Other heap names sharing this heap's pool (the `linux,cma` legacy alias). */
  readonly poolShares?: readonly string[];
}

export interface DmaHeapOps {
  /** `allocate(heap, len, fd_flags, heap_flags)`: an exported dma-buf with one reference, or -errno. */
  allocate(heap: DmaHeap, lenBytes: number, fdFlags: number, heapFlags: bigint): DmaBuf | Errno;
}

export interface DmaHeapExportInfo {
  readonly name: string;
  readonly ops: DmaHeapOps;
  readonly priv: unknown;
  readonly properties: HeapProperties;
  /** Device-node permissions (DAC); heaps are root-owned 0666 unless a scenario says otherwise. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

export interface HeapStats {
  buffers: number;
  bytes: number;
  bytesHighWater: number;
  allocFailures: number;
}

export class DmaHeap {
  readonly name: string;
  readonly ops: DmaHeapOps;
  readonly priv: unknown;
  readonly properties: HeapProperties;
  readonly minor: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly stats: HeapStats = { buffers: 0, bytes: 0, bytesHighWater: 0, allocFailures: 0 };

  constructor(info: DmaHeapExportInfo, minor: number) {
    this.name = info.name;
    this.ops = info.ops;
    this.priv = info.priv;
    this.properties = Object.freeze({ ...info.properties });
    this.minor = minor;
    this.mode = info.mode ?? 0o666;
    this.uid = info.uid ?? 0;
    this.gid = info.gid ?? 0;
  }

  resetStats(): void {
    this.stats.bytesHighWater = this.stats.bytes;
    this.stats.allocFailures = 0;
  }
}

export type AllocFdPublish = 'new' | 'legacy';

export class DmaHeapRegistry {
  private readonly heaps: DmaHeap[] = [];
  private readonly k: KernelCore;
  readonly list: DmaBufList;
  readonly allocFdPublish: AllocFdPublish;

  constructor(k: KernelCore, list: DmaBufList, allocFdPublish: AllocFdPublish) {
    this.k = k;
    this.list = list;
    this.allocFdPublish = allocFdPublish;
  }

  /** `dma_heap_add`. */
  add(info: DmaHeapExportInfo): DmaHeap | Errno {
    if (!info.name) return -EINVAL;
    if (!info.ops?.allocate) return -EINVAL;
    if (this.heaps.length >= limits.heapCountMax) return -EBUSY;
    if (this.heaps.some((h) => h.name === info.name)) return -EINVAL;
    const heap = new DmaHeap(info, this.heaps.length);
    this.heaps.push(heap);
    return heap;
  }

  /** `dma_heap_find`-like lookup by name. */
  find(name: string): DmaHeap | undefined {
    return this.heaps.find((h) => h.name === name);
  }
  byMinor(minor: number): DmaHeap | undefined {
    return this.heaps[minor];
  }
  all(): readonly DmaHeap[] {
    return this.heaps;
  }

  /** `dma_heap_open`: -ENODEV for a minor with no heap. */
  open(minor: number, flags: number): File | Errno {
    const heap = this.byMinor(minor);
    if (heap === undefined) return -ENODEV;
    return new File(this.fops, flags, heap);
  }

  /** Book a new buffer against its heap and hook its release, so stats stay exact. */
  account(heap: DmaHeap, dmabuf: DmaBuf): void {
    const size = dmabuf.sizeBytes;
    heap.stats.buffers++;
    heap.stats.bytes += size;
    heap.stats.bytesHighWater = Math.max(heap.stats.bytesHighWater, heap.stats.bytes);
    const pid = this.k.current.pid;
    dmabuf.restriction = heap.properties.restriction;
    dmabuf.owner = {
      pid,
      heapName: heap.name,
      onRelease: (b) => {
        heap.stats.buffers--;
        heap.stats.bytes -= b.sizeBytes;
        this.k.channels.publish('kernel:heap:free', { heap: heap.name, ino: b.ino, sizeBytes: b.sizeBytes, pid });
      },
    };
    this.k.channels.publish('kernel:heap:alloc', { heap: heap.name, ino: dmabuf.ino, sizeBytes: size, pid });
  }

  private readonly fops: FileOperations = Object.freeze({
    name: 'dma_heap',
    llseek: noLlseek,
    unlockedIoctl: (file: File, cmd: number, arg: unknown) => this.ioctl(file.privateData as DmaHeap, cmd, arg),
  });

  /** `dma_heap_ioctl`. */
  private ioctl(heap: DmaHeap, ucmd: number, arg: unknown): number {
    // Only the command number is looked at: any nr ≥ the table size (1) is -EINVAL, not -ENOTTY.
    if (_IOC_NR(ucmd) >= 1) return -EINVAL;
    const kcmd = DMA_HEAP_IOCTL_ALLOC;
    const drvSize = _IOC_SIZE(kcmd);
    let outSize = _IOC_SIZE(ucmd);
    let inSize = outSize;
    if ((ucmd & kcmd & IOC_IN) >>> 0 === 0) inSize = 0;
    if ((ucmd & kcmd & IOC_OUT) >>> 0 === 0) outSize = 0;
    const kSize = Math.max(drvSize, inSize, outSize);
    const kbuf = copyFromUser(arg, dma_heap_allocation_data, inSize, kSize);
    if (typeof kbuf === 'number') return kbuf;
    if (this.allocFdPublish === 'legacy') {
      const ret = this.allocateLegacy(heap, kbuf);
      const copied = copyToUser(arg, dma_heap_allocation_data, kbuf, outSize);
      return copied < 0 ? -EFAULT : ret;
    }
    return this.allocate(heap, kbuf, (filled) => copyToUser(arg, dma_heap_allocation_data, filled, outSize));
  }

  /** Validation shared by both publication orders (`dma_heap_ioctl_allocate`). */
  private validate(kbuf: DataView): { lenBytes: number; fdFlags: number; heapFlags: bigint } | Errno {
    const fd = kget(kbuf, dma_heap_allocation_data, 'fd') as number;
    const fdFlags = kget(kbuf, dma_heap_allocation_data, 'fd_flags') as number;
    const heapFlags = BigInt(kget(kbuf, dma_heap_allocation_data, 'heap_flags'));
    const len = BigInt(kget(kbuf, dma_heap_allocation_data, 'len'));
    if (fd !== 0) return -EINVAL;
    if (fdFlags & ~DMA_HEAP_VALID_FD_FLAGS) return -EINVAL;
    if (heapFlags & ~BigInt(DMA_HEAP_VALID_HEAP_FLAGS)) return -EINVAL;
    // PAGE_ALIGN(len) in u64 arithmetic: 0 and a wrap past 2^64 both come out 0.
    const page = BigInt(PAGE_SIZE);
    const aligned = BigInt.asUintN(64, (len + page - 1n) & ~(page - 1n));
    if (aligned === 0n) return -EINVAL;
    // Past 2^53 a JS number is inexact, but it is also past every heap's capacity: the heap's
    // allocate still gets the call and fails it with -ENOMEM, as the kernel's would.
    return { lenBytes: Number(aligned), fdFlags, heapFlags };
  }

  private callAllocate(heap: DmaHeap, lenBytes: number, fdFlags: number, heapFlags: bigint): DmaBuf | Errno {
    // A length past 2^53 is inexact as a JS number; no heap could satisfy it, so it fails here with the
    // heap's errno and is booked as that heap's failure, exactly as if the heap had tried.
    const dmabuf = lenBytes > Number.MAX_SAFE_INTEGER ? -ENOMEM : heap.ops.allocate(heap, lenBytes, fdFlags, heapFlags);
    if (isErr(dmabuf)) {
      heap.stats.allocFailures++;
      this.k.channels.publish('kernel:heap:alloc-fail', {
        heap: heap.name,
        sizeBytes: lenBytes,
        pid: this.k.current.pid,
        errno: dmabuf,
      });
      return dmabuf;
    }
    this.account(heap, dmabuf);
    return dmabuf;
  }

  /**
   * An allocation by a kernel-side client (a device driver) rather than through the ioctl: the same
   * PAGE_ALIGN, heap call and accounting, no fd. Returns the buffer with one reference, or -errno.
   */
  allocateInKernel(heap: DmaHeap, lenBytes: number, fdFlags: number): DmaBuf | Errno {
    if (!Number.isSafeInteger(lenBytes) || lenBytes <= 0) return -EINVAL;
    const aligned = Math.ceil(lenBytes / PAGE_SIZE) * PAGE_SIZE;
    return this.callAllocate(heap, aligned, fdFlags & DMA_HEAP_VALID_FD_FLAGS, 0n);
  }

  /** Current order: allocate, reserve an fd, copy out, and only then install the fd. */
  private allocate(heap: DmaHeap, kbuf: DataView, copyOut: (kbuf: DataView) => number): number {
    const v = this.validate(kbuf);
    if (typeof v === 'number') return v;
    const dmabuf = this.callAllocate(heap, v.lenBytes, v.fdFlags, v.heapFlags);
    if (isErr(dmabuf)) return dmabuf;
    const files = this.k.currentFiles();
    const fd = files.getUnusedFdFlags(v.fdFlags);
    if (fd < 0) {
      dmaBufPut(dmabuf);
      return fd;
    }
    kset(kbuf, dma_heap_allocation_data, 'fd', fd);
    if (copyOut(kbuf) < 0) {
      files.putUnusedFd(fd);
      dmaBufPut(dmabuf);
      return -EFAULT;
    }
    files.fdInstall(fd, dmabuf.file);
    return 0;
  }

  /** Legacy order: `dma_buf_fd` installs inside the allocate step; the caller copies out regardless. */
  private allocateLegacy(heap: DmaHeap, kbuf: DataView): number {
    const v = this.validate(kbuf);
    if (typeof v === 'number') return v;
    const dmabuf = this.callAllocate(heap, v.lenBytes, v.fdFlags, v.heapFlags);
    if (isErr(dmabuf)) return dmabuf;
    const fd = this.k.currentFiles().install(dmabuf.file, v.fdFlags);
    if (fd < 0) {
      dmaBufPut(dmabuf);
      return fd;
    }
    kset(kbuf, dma_heap_allocation_data, 'fd', fd);
    return 0;
  }
}
