// A port of the kernel's dma-buf heap selftest, tools/testing/selftests/dmabuf-heaps/dmabuf-heap.c
// (Kingxukai/linux @ 0291023e7330), run for every heap a kernel registers under /dev/dma_heap.
//
// main() opens /dev/dma_heap, skips "." and "..", and for each heap runs test_alloc_and_import,
// test_alloc_zeroed (4 KiB and 1 MiB), test_alloc_compat and test_alloc_errors. The port keeps that
// structure (one `describe` per readdir entry) and tightens every ksft_test_result(ret, ...) into an exact
// errno, plus the checks a C selftest cannot make cheaply: what the importing device sees, and that
// nothing leaks once the test's fds are gone.
import { describe, expect, it } from 'vitest';
import {
  _IOWR,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_HEAP_IOC_MAGIC,
  DMA_HEAP_IOCTL_ALLOC,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_VERSION,
  errno,
  Kernel,
  type KernelOptions,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type Process,
  SEEK_END,
} from '../../src/index.js';

const { EINVAL, ENOTTY } = errno;

const DEVPATH = '/dev/dma_heap';
const ONE_MEG = 1024 * 1024;
/** test_alloc_zeroed holds 32 one-MiB buffers at once, so every arena needs 32 MiB. */
const ARENA_BYTES = 32 << 20;
const memory = { systemBytes: ARENA_BYTES, cmaBytes: ARENA_BYTES, carveoutBytes: ARENA_BYTES };

const kernels: [string, KernelOptions, string[]][] = [
  ['default kernel', { memory }, ['carveout', 'default_cma_region', 'system', 'system-uncached']],
  [
    'kernel with CONFIG_DMABUF_HEAPS_CMA_LEGACY',
    { memory, heaps: { cmaLegacyAlias: true } },
    ['carveout', 'default_cma_region', 'linux,cma', 'system', 'system-uncached'],
  ],
];

/** numer_of_heaps()/main(): the readdir entries of /dev/dma_heap minus "." and "..". */
function heapNames(opts: KernelOptions): string[] {
  const k = new Kernel(opts);
  const p = k.createProcess({ name: 'ls' });
  const entries = p.readdir(DEVPATH);
  if (typeof entries === 'number') throw new Error(`readdir ${DEVPATH}: ${entries}`);
  expect(entries.slice(0, 2)).toEqual(['.', '..']);
  return entries.filter((n) => n !== '.' && n !== '..');
}

function boot(opts: KernelOptions): { k: Kernel; p: Process } {
  const k = new Kernel(opts);
  return { k, p: k.createProcess({ name: 'dmabuf-heap' }) };
}

/** dmabuf_heap_open: O_RDWR, and the selftest gives up if that fails. */
function heapOpen(p: Process, name: string): number {
  const fd = p.open(`${DEVPATH}/${name}`, O_RDWR);
  expect(fd, `open ${DEVPATH}/${name}`).toBeGreaterThanOrEqual(3);
  return fd;
}

/** dmabuf_heap_alloc_fdflags: the ioctl's return value and the fd it wrote back. */
function allocFdFlags(
  p: Process,
  fd: number,
  len: number,
  fdFlags: number,
  heapFlags: number,
): { ret: number; dmabufFd: number } {
  const data = { len, fd: 0, fd_flags: fdFlags, heap_flags: heapFlags };
  const ret = p.ioctl(fd, DMA_HEAP_IOCTL_ALLOC, data);
  return { ret, dmabufFd: data.fd };
}

/** dmabuf_heap_alloc: always O_RDWR | O_CLOEXEC. */
function alloc(p: Process, fd: number, len: number, heapFlags = 0): { ret: number; dmabufFd: number } {
  return allocFdFlags(p, fd, len, O_RDWR | O_CLOEXEC, heapFlags);
}

/** dmabuf_sync: START or END, always READ|WRITE. */
function dmabufSync(p: Process, fd: number, startStop: number): number {
  return p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: startStop | DMA_BUF_SYNC_RW });
}

/** open_vgem + check_vgem: the first /dev/dri/cardN whose DRM_IOCTL_VERSION name is "vgem". */
function openVgem(p: Process): number {
  for (let i = 0; i < 16; i++) {
    const fd = p.open(`/dev/dri/card${i}`, O_RDWR);
    if (fd < 0) continue;
    const version: { name_len: number; name?: string } = { name_len: 4 };
    const ret = p.ioctl(fd, DRM_IOCTL_VERSION, version);
    if (ret === 0 && version.name_len === 4 && version.name === 'vgem') return fd;
    p.close(fd);
  }
  return -1;
}

/** import_vgem_fd: PRIME_FD_TO_HANDLE; the handle is only meaningful when ret is 0. */
function importVgem(p: Process, vgemFd: number, dmabufFd: number): { ret: number; handle: number } {
  const arg = { fd: dmabufFd, flags: 0, handle: 0 };
  const ret = p.ioctl(vgemFd, DRM_IOCTL_PRIME_FD_TO_HANDLE, arg);
  return { ret, handle: arg.handle };
}

const filled = (n: number, value: number): Uint8Array => new Uint8Array(n).fill(value);

/** Index of the first byte that is not `value`, or -1 (a memcmp first, the scan only on mismatch). */
function firstNot(bytes: Uint8Array, value: number): number {
  const want = Buffer.alloc(bytes.length, value);
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(want)) return -1;
  return bytes.findIndex((b) => b !== value);
}

function readMem(p: Process, addr: number, n: number): Uint8Array {
  const bytes = p.readMem(addr, n);
  if (typeof bytes === 'number') throw new Error(`readMem at 0x${addr.toString(16)}: ${bytes}`);
  return bytes;
}

function expectNoLeaks(k: Kernel): void {
  for (const a of k.memoryUsage()) expect(a.freePages, `arena ${a.arena} leaked pages`).toBe(a.totalPages);
  for (const h of k.heaps.all()) {
    expect(h.stats.buffers, `heap ${h.name} live buffers`).toBe(0);
    expect(h.stats.bytes, `heap ${h.name} live bytes`).toBe(0);
  }
}

describe.each(kernels)('dmabuf-heap selftest on a %s', (_label, opts, expected) => {
  const names = heapNames(opts);

  it('lists every registered heap in /dev/dma_heap (the ksft plan is 11 per heap)', () => {
    expect(names).toEqual(expected);
  });

  describe.each(names)('heap %s', (heapName) => {
    it('test_alloc_and_import: 1 MiB, mmap, pattern under SYNC, vgem import, SYNC, 0xff, close handle', () => {
      const { k, p } = boot(opts);
      const heapFd = heapOpen(p, heapName);

      const { ret, dmabufFd } = alloc(p, heapFd, ONE_MEG);
      expect(ret).toBe(0);
      expect(dmabufFd).toBeGreaterThan(heapFd);

      const addr = p.mmap(dmabufFd, ONE_MEG, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
      expect(addr, 'mmap() failed').toBeGreaterThan(0);

      expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_START)).toBe(0);
      expect(p.writeMem(addr, filled(ONE_MEG / 2, 1))).toBe(0);
      expect(p.writeMem(addr + ONE_MEG / 2, filled(ONE_MEG / 2, 0))).toBe(0);
      expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_END)).toBe(0);

      const importerFd = openVgem(p);
      expect(importerFd, 'Could not open vgem').toBeGreaterThanOrEqual(0);
      const imp = importVgem(p, importerFd, dmabufFd);
      expect(imp.ret, 'Import buffer').toBe(0);
      expect(imp.handle).toBeGreaterThan(0);

      // Mapping for the device cleans the CPU's lines: vgem sees the pattern written before the import.
      const before = k.vgem.dmaRead(p, importerFd, imp.handle, 0, ONE_MEG);
      if (typeof before === 'number') throw new Error(`dmaRead: ${before}`);
      expect(firstNot(before.subarray(0, ONE_MEG / 2), 1)).toBe(-1);
      expect(firstNot(before.subarray(ONE_MEG / 2), 0)).toBe(-1);

      expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_START), 'DMA_BUF_SYNC_START failed').toBe(0);
      expect(p.writeMem(addr, filled(ONE_MEG, 0xff))).toBe(0);
      expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_END), 'DMA_BUF_SYNC_END failed').toBe(0);

      // END with a mapped attachment hands the CPU's writes to the device.
      const after = k.vgem.dmaRead(p, importerFd, imp.handle, 0, ONE_MEG);
      if (typeof after === 'number') throw new Error(`dmaRead: ${after}`);
      expect(firstNot(after, 0xff)).toBe(-1);

      // close_handle
      expect(p.ioctl(importerFd, DRM_IOCTL_GEM_CLOSE, { handle: imp.handle, pad: 0 })).toBe(0);
      expect(p.ioctl(importerFd, DRM_IOCTL_GEM_CLOSE, { handle: imp.handle, pad: 0 })).toBe(-EINVAL);

      expect(p.munmap(addr, ONE_MEG)).toBe(0);
      for (const fd of [importerFd, dmabufFd, heapFd]) expect(p.close(fd)).toBe(0);
      expectNoLeaks(k);
      expect(k.warnings).toEqual([]);
    });

    for (const size of [4 * 1024, ONE_MEG]) {
      it(`test_alloc_zeroed(${size / 1024}k): 32 buffers filled with 0xff and closed, then 32 new ones read all zero`, () => {
        const { k, p } = boot(opts);
        const heapFd = heapOpen(p, heapName);
        const dmabufFds: number[] = [];

        // Allocate and fill a bunch of buffers, all alive at once.
        for (let i = 0; i < 32; i++) {
          const { ret, dmabufFd } = alloc(p, heapFd, size);
          expect(ret, `Allocation (${i}) failed`).toBe(0);
          dmabufFds.push(dmabufFd);
          const addr = p.mmap(dmabufFd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
          expect(addr, 'mmap() failed').toBeGreaterThan(0);
          expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_START)).toBe(0);
          expect(p.writeMem(addr, filled(size, 0xff))).toBe(0);
          // The fill really landed: the zero check below is not vacuous.
          expect(readMem(p, addr, 1)[0]).toBe(0xff);
          expect(readMem(p, addr + size - 1, 1)[0]).toBe(0xff);
          expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_END)).toBe(0);
          expect(p.munmap(addr, size)).toBe(0);
        }
        expect(new Set(dmabufFds).size).toBe(32);
        for (const fd of dmabufFds) expect(p.close(fd)).toBe(0);
        expectNoLeaks(k);

        // Allocate and validate all buffers are zeroed.
        const again: number[] = [];
        for (let i = 0; i < 32; i++) {
          const { ret, dmabufFd } = alloc(p, heapFd, size);
          expect(ret, `Allocation (${i}) failed`).toBe(0);
          again.push(dmabufFd);
          const addr = p.mmap(dmabufFd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
          expect(addr, 'mmap() failed').toBeGreaterThan(0);
          expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_START)).toBe(0);
          expect(firstNot(readMem(p, addr, size), 0), `buffer ${i} not zeroed at`).toBe(-1);
          expect(dmabufSync(p, dmabufFd, DMA_BUF_SYNC_END)).toBe(0);
          expect(p.munmap(addr, size)).toBe(0);
        }
        for (const fd of again) expect(p.close(fd)).toBe(0);
        expect(p.close(heapFd)).toBe(0);
        expectNoLeaks(k);
      });
    }

    it('test_alloc_compat: an older 16-byte and a newer 48-byte struct both allocate', () => {
      const { k, p } = boot(opts);
      const heapFd = heapOpen(p, heapName);

      // dmabuf_heap_alloc_older: struct { __u64 len; __u32 fd; __u32 fd_flags; }, no heap_flags.
      const older = { len: ONE_MEG, fd: 0, fd_flags: O_RDWR | O_CLOEXEC };
      expect(p.ioctl(heapFd, _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, 16), older), 'dmabuf_heap_alloc_older').toBe(0);
      expect(older.fd).toBeGreaterThan(heapFd);
      expect(p.lseek(older.fd, 0, SEEK_END)).toBe(ONE_MEG);
      expect(p.close(older.fd)).toBe(0);

      // dmabuf_heap_alloc_newer: three non-zero __u64s past the kernel's 24 bytes.
      const newer = {
        len: ONE_MEG,
        fd: 0,
        fd_flags: O_RDWR | O_CLOEXEC,
        heap_flags: 0,
        garbage1: 0xffffffff,
        garbage2: 0x88888888,
        garbage3: 0x11111111,
      };
      expect(p.ioctl(heapFd, _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, 48), newer), 'dmabuf_heap_alloc_newer').toBe(0);
      expect(newer.fd).toBeGreaterThan(heapFd);
      expect(p.lseek(newer.fd, 0, SEEK_END)).toBe(ONE_MEG);
      // Bytes past the kernel's struct were copied in and come back unchanged.
      expect([newer.garbage1, newer.garbage2, newer.garbage3]).toEqual([0xffffffff, 0x88888888, 0x11111111]);
      expect(p.close(newer.fd)).toBe(0);

      expect(p.close(heapFd)).toBe(0);
      expectNoLeaks(k);
    });

    it('test_alloc_errors: fd 0, heap_flags 0x111111 and fd_flags ~(O_RDWR|O_CLOEXEC) fail with exact errnos', () => {
      const { k, p } = boot(opts);
      const heapFd = heapOpen(p, heapName);
      const fdsBefore = p.files.fds();

      // fd 0 is /dev/null: no unlocked_ioctl, so vfs_ioctl says -ENOTTY.
      const onStdin = alloc(p, 0, ONE_MEG, 0x111111);
      expect(onStdin.ret, 'Error expected on invalid fd').toBe(-ENOTTY);
      expect(onStdin.dmabufFd).toBe(0);

      const badHeapFlags = alloc(p, heapFd, ONE_MEG, 0x111111);
      expect(badHeapFlags.ret, 'Error expected on invalid heap flags').toBe(-EINVAL);
      expect(badHeapFlags.dmabufFd).toBe(0);

      const badFdFlags = allocFdFlags(p, heapFd, ONE_MEG, ~(O_RDWR | O_CLOEXEC), 0);
      expect(badFdFlags.ret, 'Error expected on invalid fd flags').toBe(-EINVAL);
      expect(badFdFlags.dmabufFd).toBe(0);

      expect(p.files.fds()).toEqual(fdsBefore);
      const heap = k.heaps.find(heapName);
      expect(heap?.stats.bytesHighWater, 'no buffer was ever allocated').toBe(0);
      expect(p.close(heapFd)).toBe(0);
      expectNoLeaks(k);
    });
  });
});
