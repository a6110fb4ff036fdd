/**
 * A process address space: VMAs created by mmap(2), and the CPU's loads and stores through them
 * (mm/mmap.c, mm/memory.c, reduced to file-backed mappings of our files).
 *
 * Contract:
 * - VMAs are page aligned, never overlap, and each holds one reference on its file for its whole life
 *   (a split VMA takes another), so a dma-buf outlives its last fd while it is mapped.
 * - A VMA's pages come from its `vmOps.fault(pgoff)` (the exporter's choice: remap at mmap time or fault
 *   lazily). CPU accesses through a cached mapping go through the CPU cache model; through an uncached or
 *   write-combined one they go straight to memory. A MAP_PRIVATE page is copied on first write and is
 *   anonymous memory from then on.
 * - A bad access is SIGSEGV (no VMA, or the VMA lacks the protection) or SIGBUS (the fault handler has no
 *   page); the model publishes the signal on `kernel:signal` and the access returns -EFAULT instead of
 *   killing the process.
 */
import { assert } from './assert.js';
import type { CpuCache } from './cpu-cache.js';
import { EFAULT, EINVAL, ENOMEM } from './errno.js';
import type { File } from './file.js';
import { limits } from './limits.js';
import type { PhysicalMemory } from './memory.js';
import type { Channels } from './trace.js';
import { MAP_PRIVATE, MAP_TYPE, PAGE_SIZE, PROT_READ, PROT_WRITE } from './uapi.js';

export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYSHARE = 0x80;
export const VM_IO = 0x4000;
export const VM_PFNMAP = 0x400;

export const VM_FAULT_SIGBUS = -1;

export interface VmOperations {
  /** The pfn backing page `pgoff` of the file, or VM_FAULT_SIGBUS. */
  fault(vma: Vma, pgoff: number): number;
}

export interface Vma {
  start: number;
  end: number;
  /** File offset of `start`, in pages. */
  pgoff: number;
  readonly prot: number;
  readonly mapFlags: number;
  vmFlags: number;
  readonly file: File;
  /** Set by the file's mmap op. */
  vmOps?: VmOperations;
  /** Mapping attribute from the exporter: false for uncached / write-combined pgprot. */
  cached: boolean;
  /** COW copies of MAP_PRIVATE pages, by page index within the file. */
  privatePages?: Map<number, Uint8Array>;
}

/** `is_cow_mapping`: private and may be written. */
export function isCowMapping(vmFlags: number): boolean {
  return (vmFlags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

export interface MmDeps {
  mem: PhysicalMemory;
  cache: CpuCache;
  channels: Channels;
}

/** User addresses grow down from here, like mmap_base under the stack. */
const MMAP_TOP = 0x7f00_0000_0000;

export class MmStruct {
  private vmas: Vma[] = [];
  private readonly pid: number;
  private readonly deps: MmDeps;
  private nextTop = MMAP_TOP;

  constructor(pid: number, deps: MmDeps) {
    this.pid = pid;
    this.deps = deps;
  }

  get mapCount(): number {
    return this.vmas.length;
  }
  list(): readonly Vma[] {
    return this.vmas;
  }

  /** Reserve address space for a new VMA; -ENOMEM past `vm.max_map_count`. */
  newVma(file: File, lengthBytes: number, prot: number, mapFlags: number, pgoff: number): Vma | number {
    if (this.vmas.length >= limits.vmaCountMax) return -ENOMEM;
    const start = this.nextTop - lengthBytes;
    this.nextTop = start - PAGE_SIZE; // a guard page between mappings catches overruns as SIGSEGV
    const shared = (mapFlags & MAP_TYPE) !== MAP_PRIVATE;
    let vmFlags = VM_MAYREAD | VM_MAYWRITE;
    if (prot & PROT_READ) vmFlags |= VM_READ;
    if (prot & PROT_WRITE) vmFlags |= VM_WRITE;
    if (shared) {
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!(file.fMode & 0x2)) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
    return { start, end: start + lengthBytes, pgoff, prot, mapFlags, vmFlags, file, cached: true };
  }

  insert(vma: Vma): void {
    assert(!this.vmas.some((v) => v.start < vma.end && vma.start < v.end), 'overlapping VMAs');
    this.vmas.push(vma);
  }

  /** munmap(2): trims or splits every VMA the range touches. */
  munmap(addr: number, lengthBytes: number): number {
    if (addr % PAGE_SIZE !== 0 || !Number.isInteger(addr) || addr < 0) return -EINVAL;
    const len = Math.ceil(lengthBytes / PAGE_SIZE) * PAGE_SIZE;
    if (!Number.isInteger(lengthBytes) || len <= 0) return -EINVAL;
    const end = addr + len;
    const kept: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= addr || v.start >= end) {
        kept.push(v);
        continue;
      }
      if (v.start < addr) kept.push({ ...v, end: addr, privatePages: v.privatePages });
      if (v.end > end) {
        const tail: Vma = { ...v, start: end, pgoff: v.pgoff + (end - v.start) / PAGE_SIZE };
        kept.push(tail);
      }
      // Each surviving piece holds a file reference; the unmapped middle drops the original one.
      const pieces = (v.start < addr ? 1 : 0) + (v.end > end ? 1 : 0);
      for (let i = 0; i < pieces; i++) v.file.get();
      v.file.put();
    }
    this.vmas = kept;
    return 0;
  }

  /** exit_mmap: drop every mapping. */
  exitMmap(): void {
    const all = this.vmas;
    this.vmas = [];
    for (const v of all) v.file.put();
  }

  /** A CPU load of `lengthBytes` at `addr`, or -EFAULT after a SIGSEGV/SIGBUS. */
  read(addr: number, lengthBytes: number): Uint8Array | number {
    const out = new Uint8Array(lengthBytes);
    const r = this.access(addr, lengthBytes, false, (page, inPage, n, done) => {
      out.set(page.read(inPage, n), done);
    });
    return r < 0 ? r : out;
  }

  /** A CPU store of `data` at `addr`: 0, or -EFAULT after a SIGSEGV/SIGBUS (earlier pages stay written). */
  write(addr: number, data: Uint8Array): number {
    return this.access(addr, data.length, true, (page, inPage, n, done) => {
      page.write(inPage, data.subarray(done, done + n));
    });
  }

  private access(
    addr: number,
    lengthBytes: number,
    write: boolean,
    fn: (page: PageAccess, inPage: number, n: number, done: number) => void,
  ): number {
    let done = 0;
    while (done < lengthBytes) {
      const a = addr + done;
      const vma = this.vmas.find((v) => a >= v.start && a < v.end);
      const need = write ? VM_WRITE : VM_READ;
      if (vma === undefined || !(vma.vmFlags & need)) {
        return this.signal(
          'SIGSEGV',
          a,
          vma === undefined ? 'no mapping' : `mapping lacks ${write ? 'PROT_WRITE' : 'PROT_READ'}`,
        );
      }
      const pageIdx = vma.pgoff + Math.floor((a - vma.start) / PAGE_SIZE);
      const inPage = (a - vma.start) % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, lengthBytes - done);
      const page = this.pageAccess(vma, pageIdx, write);
      if (typeof page === 'number') return this.signal('SIGBUS', a, `no page at file offset ${pageIdx}`);
      fn(page, inPage, n, done);
      done += n;
    }
    return 0;
  }

  private pageAccess(vma: Vma, pageIdx: number, write: boolean): PageAccess | number {
    const priv = vma.privatePages?.get(pageIdx);
    if (priv !== undefined) return anonPage(priv);
    assert(vma.vmOps !== undefined, 'VMA without vm_ops survived mmap');
    const pfn = vma.vmOps.fault(vma, pageIdx);
    if (pfn === VM_FAULT_SIGBUS) return VM_FAULT_SIGBUS;
    const filePage = this.physPage(pfn, vma.cached);
    if (!write || !isCowMapping(vma.vmFlags)) return filePage;
    const copy = filePage.read(0, PAGE_SIZE).slice();
    vma.privatePages ??= new Map();
    vma.privatePages.set(pageIdx, copy);
    return anonPage(copy);
  }

  private physPage(pfn: number, cached: boolean): PageAccess {
    const phys = pfn * PAGE_SIZE;
    const { mem, cache } = this.deps;
    if (!cached) {
      const bytes = mem.view(phys, PAGE_SIZE);
      return anonPage(bytes);
    }
    return {
      read: (off, n) => {
        const out = new Uint8Array(n);
        cache.read(phys + off, out);
        return out;
      },
      write: (off, src) => cache.write(phys + off, src),
    };
  }

  private signal(signal: 'SIGSEGV' | 'SIGBUS', address: number, reason: string): number {
    this.deps.channels.publish('kernel:signal', { pid: this.pid, signal, address, reason });
    return -EFAULT;
  }
}

interface PageAccess {
  read(off: number, n: number): Uint8Array;
  write(off: number, src: Uint8Array): void;
}

function anonPage(bytes: Uint8Array): PageAccess {
  return {
    read: (off, n) => bytes.subarray(off, off + n),
    write: (off, src) => bytes.set(src, off),
  };
}
