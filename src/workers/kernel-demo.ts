/**
 * The built-in `kernel-demo` job: what `npm start` runs until the device farm lands. It drives the kernel
 * model through the syscall facade the way the kernel's dmabuf-heaps selftest and a camera→display
 * hand-off would, on every registered heap, and checks every byte that crosses a device boundary:
 *   1. a producer process allocates from the heap, mmaps, fills the buffer with seeded bytes inside
 *      SYNC START/END;
 *   2. vgem imports the fd (attach + map: DMA addresses only) and reads the buffer by DMA; the bytes must
 *      match;
 *   3. on cached heaps, the same hand-off with SYNC skipped shows what a non-coherent cache does: the
 *      device reads stale bytes;
 *   4. every process exits and every page must be back in its allocator.
 */
import { isErr } from '../kernel/errno.js';
import { Kernel, type KernelOptions } from '../kernel/kernel.js';
import type { Process } from '../kernel/process.js';
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_HEAP_IOCTL_ALLOC,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from '../kernel/uapi.js';
import { Prng } from './prng.js';

export interface HeapDemoResult {
  heap: string;
  cpuCache: 'cached' | 'uncached';
  contiguity: 'virtual' | 'physical';
  sizeBytes: number;
  sgEntries: number;
  /** Bytes vgem read by DMA that differ from what the CPU wrote with SYNC. Must be 0. */
  mismatchedBytesWithSync: number;
  /** The same hand-off without SYNC END: on a cached heap most bytes are still in the CPU cache. */
  staleBytesWithoutSync: number;
}

export interface DemoReport {
  seed: number;
  heaps: HeapDemoResult[];
  leakedPages: number;
  warnings: number;
  ok: boolean;
}

const BUFFER_BYTES = 1 << 20;

function must(ret: number, what: string): number {
  if (ret < 0) throw new Error(`kernel-demo: ${what} failed: ${ret}`);
  return ret;
}

function handOff(k: Kernel, proc: Process, heap: string, prng: Prng, sync: boolean): HeapDemoResult {
  const heapFd = must(proc.open(`/dev/dma_heap/${heap}`, O_RDWR), `open ${heap}`);
  const alloc = { len: BUFFER_BYTES, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  must(proc.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, alloc), `alloc from ${heap}`);
  const addr = must(proc.mmap(alloc.fd, BUFFER_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, 0), 'mmap');
  const drmFd = must(proc.open('/dev/dri/card0', O_RDWR), 'open vgem');
  const prime = { fd: alloc.fd, flags: 0, handle: 0 };
  must(proc.ioctl(drmFd, DRM_IOCTL_PRIME_FD_TO_HANDLE, prime), 'vgem import');
  // The device touches the buffer first (a previous frame), so the CPU cache holds its lines.
  must(proc.readMem(addr, BUFFER_BYTES) instanceof Uint8Array ? 0 : -1, 'cpu read');
  const pattern = prng.fill(new Uint8Array(BUFFER_BYTES));
  if (sync) must(proc.ioctl(alloc.fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW }), 'sync');
  must(proc.writeMem(addr, pattern), 'cpu write');
  if (sync) must(proc.ioctl(alloc.fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW }), 'sync');
  const seen = k.vgem.dmaRead(proc, drmFd, prime.handle, 0, BUFFER_BYTES);
  if (isErr(seen)) throw new Error(`kernel-demo: vgem DMA read failed: ${seen}`);
  let differing = 0;
  for (let i = 0; i < BUFFER_BYTES; i++) if (seen[i] !== pattern[i]) differing++;
  const sgEntries = (k.vgem.dmaAddresses(proc, drmFd, prime.handle) as readonly unknown[]).length;
  const h = k.heaps.find(heap);
  proc.munmap(addr, BUFFER_BYTES);
  proc.close(drmFd);
  proc.close(alloc.fd);
  proc.close(heapFd);
  return {
    heap,
    cpuCache: h?.properties.cpuCache ?? 'cached',
    contiguity: h?.properties.contiguity ?? 'virtual',
    sizeBytes: BUFFER_BYTES,
    sgEntries,
    mismatchedBytesWithSync: sync ? differing : 0,
    staleBytesWithoutSync: sync ? 0 : differing,
  };
}

export function runKernelDemo(seed: number, options: KernelOptions = {}): DemoReport {
  const k = new Kernel(options);
  const prng = new Prng(seed);
  const proc = k.createProcess({ name: 'kernel-demo' });
  const heaps: HeapDemoResult[] = [];
  for (const heap of k.heaps.all()) {
    const withSync = handOff(k, proc, heap.name, prng, true);
    const withoutSync = handOff(k, proc, heap.name, prng, false);
    heaps.push({ ...withSync, staleBytesWithoutSync: withoutSync.staleBytesWithoutSync });
  }
  proc.exit();
  let leakedPages = 0;
  for (const u of k.memoryUsage()) leakedPages += u.totalPages - u.freePages;
  const ok = leakedPages === 0 && heaps.every((h) => h.mismatchedBytesWithSync === 0);
  return { seed, heaps, leakedPages, warnings: k.warningCount, ok };
}
