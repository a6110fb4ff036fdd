// The dma-heap framework and its heaps against kernel-semantics.md §1 (drivers/dma-buf/dma-heap.c,
// heaps/system_heap.c, heaps/cma_heap.c) and the corrections checked on a real 6.12 kernel in §11
// (C1 fd publication, A1 private mappings, A2 access modes, A11 the 32-byte struct).
//
// Kernel source quoted in the comments: dma-heap.c as of v6.12 before the stable fix ("v6.12"), the
// stable fix that moved fd installation after copy_to_user ("fix"), and Kingxukai/linux @ 9b44fff655e2
// for everything the fix did not touch.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  _IO,
  _IOC,
  _IOR,
  _IOW,
  _IOWR,
  DMA_HEAP_IOCTL_ALLOC,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  errno,
  type HeapProperties,
  Kernel,
  type KernelOptions,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_CREAT,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from '../../src/index.js';

const { EACCES, EBUSY, EFAULT, EINVAL, EIO, EMFILE, ENOENT, ENOMEM, ESPIPE } = errno;

const KiB = 1024;
const MiB = 1024 * 1024;
const ARENA_BYTES = 16 * MiB;
const memory = { systemBytes: ARENA_BYTES, cmaBytes: ARENA_BYTES, carveoutBytes: ARENA_BYTES };
const DEFAULT_HEAPS = ['carveout', 'default_cma_region', 'system', 'system-uncached'];
const RDWR_CLOEXEC = O_RDWR | O_CLOEXEC;
const FD_LIMIT = 1024;

type Publish = 'new' | 'legacy';
type AddHeapInfo = Parameters<Kernel['addHeap']>[0];

interface AllocArg {
  len: number | bigint;
  fd: number;
  fd_flags: number;
  heap_flags: number | bigint;
  [more: string]: unknown;
}

function boot(extra: KernelOptions = {}): { k: Kernel; p: Process } {
  const k = new Kernel({ memory, ...extra });
  return { k, p: k.createProcess({ name: 'dma-heap-test' }) };
}

function bootPublish(mode: Publish): { k: Kernel; p: Process } {
  return boot({ compat: { allocFdPublish: mode } });
}

function openHeap(p: Process, name: string, flags = O_RDWR): number {
  const fd = p.open(`/dev/dma_heap/${name}`, flags);
  expect(fd, `open /dev/dma_heap/${name}`).toBeGreaterThanOrEqual(3);
  return fd;
}

function allocArg(len: number | bigint, over: Partial<AllocArg> = {}): AllocArg {
  return { len, fd: 0, fd_flags: RDWR_CLOEXEC, heap_flags: 0, ...over };
}

/** DMA_HEAP_IOCTL_ALLOC with the 24-byte struct; returns the ioctl result and the written-back fd. */
function alloc(p: Process, heapFd: number, len: number | bigint, over: Partial<AllocArg> = {}) {
  const arg = allocArg(len, over);
  const ret = p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
  return { ret, fd: arg.fd, arg };
}

/** Allocate and insist it worked; returns the dma-buf fd. */
function mustAlloc(p: Process, heapFd: number, len: number, fdFlags = RDWR_CLOEXEC): number {
  const { ret, fd } = alloc(p, heapFd, len, { fd_flags: fdFlags });
  expect(ret, `ALLOC of ${len} bytes`).toBe(0);
  expect(fd).toBeGreaterThanOrEqual(3);
  return fd;
}

function heapOf(k: Kernel, name: string) {
  const h = k.heaps.all().find((x) => x.name === name);
  if (h === undefined) throw new Error(`no heap ${name}`);
  return h;
}

function statsOf(k: Kernel, name: string) {
  return { ...heapOf(k, name).stats };
}

function expectAllFree(k: Kernel): void {
  for (const a of k.memoryUsage()) expect(a.freePages, `arena ${a.arena}`).toBe(a.totalPages);
}

function freePages(k: Kernel, arena: string): number {
  const a = k.memoryUsage().find((x) => x.arena === arena);
  if (a === undefined) throw new Error(`no arena ${arena}`);
  return a.freePages;
}

/** Open /dev/null until the table is full; returns the fds opened (the last open's errno is checked). */
function fillFdTable(p: Process): number[] {
  const opened: number[] = [];
  for (;;) {
    const fd = p.open('/dev/null', O_RDWR);
    if (fd < 0) {
      expect(fd).toBe(-EMFILE);
      break;
    }
    opened.push(fd);
    if (opened.length > FD_LIMIT) throw new Error('fd table never filled');
  }
  expect(p.files.fds().length).toBe(FD_LIMIT);
  return opened;
}

/** Import a dma-buf into vgem and return the sg entries the device was given (then drop the import). */
function sgEntries(k: Kernel, p: Process, dmabufFd: number): { dmaAddress: number; lengthBytes: number }[] {
  const drm = p.open('/dev/dri/card0', O_RDWR);
  expect(drm).toBeGreaterThanOrEqual(0);
  const imp = { fd: dmabufFd, flags: 0, handle: 0 };
  expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, imp)).toBe(0);
  const entries = k.vgem.dmaAddresses(p, drm, imp.handle);
  if (typeof entries === 'number') throw new Error(`dmaAddresses: ${entries}`);
  const copy = entries.map((e) => ({ dmaAddress: e.dmaAddress, lengthBytes: e.lengthBytes }));
  expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: imp.handle, pad: 0 })).toBe(0);
  expect(p.close(drm)).toBe(0);
  return copy;
}

const pageAlign = (len: number): number => Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;

/** `get_order(size)`. */
function getOrder(sizeBytes: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < sizeBytes) order++;
  return order;
}

const baseProperties: HeapProperties = {
  backing: 'carveout',
  contiguity: 'physical',
  cpuCache: 'cached',
  restriction: { kind: 'none' },
  granularityBytes: PAGE_SIZE,
  capacityBytes: 0,
  zeroed: true,
};

/** A heap whose allocate op records its arguments and fails with `result`. */
function recorderHeap(name: string, result = -ENOMEM) {
  const calls: { lenBytes: number; fdFlags: number; heapFlags: bigint }[] = [];
  const info: AddHeapInfo = {
    name,
    ops: {
      allocate: (_heap, lenBytes, fdFlags, heapFlags) => {
        calls.push({ lenBytes, fdFlags, heapFlags });
        return result;
      },
    },
    priv: null,
    properties: baseProperties,
  };
  return { info, calls };
}

function heapNamesIn(p: Process): string[] {
  const entries = p.readdir('/dev/dma_heap');
  if (typeof entries === 'number') throw new Error(`readdir: ${entries}`);
  return entries.filter((n) => n !== '.' && n !== '..');
}

// ------------------------------------------------------------------------------------------------
describe('dma_heap_ioctl: command decoding (§1.3)', () => {
  it('a command number ≥ 1 is -EINVAL, not -ENOTTY, whatever its type, size or direction', () => {
    // dma-heap.c dma_heap_ioctl: if (nr >= ARRAY_SIZE(dma_heap_ioctl_cmds)) return -EINVAL;
    // The `default: ret = -ENOTTY` branch is unreachable: kcmd always comes from the table.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    const fdsBefore = p.files.fds();
    const cmds = [
      _IOWR('H', 1, 24),
      _IOWR('H', 2, 24),
      _IOW('H', 1, 24),
      _IOR('H', 1, 24),
      _IO('H', 1),
      _IOWR('H', 0xff, 24),
      _IOW('b', 1, 8), // DMA_BUF_SET_NAME on a heap fd
      _IOWR('d', 0x2e, 12), // DRM_IOCTL_PRIME_FD_TO_HANDLE on a heap fd
    ];
    for (const cmd of cmds) {
      const arg = allocArg(4096);
      expect(p.ioctl(heapFd, cmd, arg), `cmd 0x${cmd.toString(16)}`).toBe(-EINVAL);
      expect(arg.fd).toBe(0);
    }
    expect(p.files.fds()).toEqual(fdsBefore);
    expect(statsOf(k, 'system').bytesHighWater).toBe(0);
  });

  it('the type (magic) is not checked: any command with nr 0 is ALLOC', () => {
    // dma-heap.c dma_heap_ioctl: kcmd = dma_heap_ioctl_cmds[_IOC_NR(ucmd)]; the 'H' magic is never compared.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const magic of ['X', 'b', 'd', '>']) {
      const arg = allocArg(8192);
      expect(p.ioctl(heapFd, _IOWR(magic, 0, 24), arg), `magic ${magic}`).toBe(0);
      expect(arg.fd).toBeGreaterThan(heapFd);
      expect(p.lseek(arg.fd, 0, SEEK_END)).toBe(8192);
    }
    expect(statsOf(k, 'system').buffers).toBe(4);
  });

  it('an older 16-byte struct works: heap_flags past in_size reads as 0 even if user memory holds garbage', () => {
    // dma-heap.c dma_heap_ioctl: copy_from_user(kdata, arg, in_size); memset(kdata + in_size, 0, ksize - in_size);
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    // The same bytes with the full 24-byte size are rejected: the garbage really is there.
    expect(alloc(p, heapFd, 4096, { heap_flags: 0x111111 }).ret).toBe(-EINVAL);

    const arg = allocArg(4096, { heap_flags: 0x111111 });
    expect(p.ioctl(heapFd, _IOWR('H', 0, 16), arg)).toBe(0);
    expect(arg.fd).toBeGreaterThan(heapFd);
    expect(p.lseek(arg.fd, 0, SEEK_END)).toBe(4096);
    // copy_to_user(out_size = 16) does not reach heap_flags.
    expect(arg.heap_flags).toBe(0x111111);
  });

  it('a newer, larger struct works: bytes past 24 are ignored, even non-zero, and come back unchanged', () => {
    // dma-heap.c dma_heap_ioctl: ksize = max(in_size, out_size, drv_size); only the first 24 bytes are read;
    // copy_to_user(out_size) writes back what was copied in. ksize > 128 takes the kmalloc path.
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const size of [32, 48, 129, 0x3fff]) {
      const arg = allocArg(4096, { garbage1: 0xffffffff, garbage2: 0x88888888, garbage3: 0x11111111 });
      expect(p.ioctl(heapFd, _IOWR('H', 0, size), arg), `size ${size}`).toBe(0);
      expect(arg.fd).toBeGreaterThan(heapFd);
      expect([arg.garbage1, arg.garbage2, arg.garbage3]).toEqual([0xffffffff, 0x88888888, 0x11111111]);
      expect(p.close(arg.fd)).toBe(0);
    }
  });

  it.each<Publish>(['new', 'legacy'])(
    '_IOW(H,0,24) (%s): out_size is 0, so it allocates and installs an fd the caller never learns',
    (mode) => {
      // dma-heap.c dma_heap_ioctl: if ((ucmd & kcmd & IOC_OUT) == 0) out_size = 0; copy_to_user(arg, kdata, 0)
      // cannot fail, so the fd is installed (kernel-semantics §11 C1 "Unchanged in both").
      const { k, p } = bootPublish(mode);
      const heapFd = openHeap(p, 'system');
      const before = p.files.fds();
      const arg = allocArg(3 * PAGE_SIZE);
      expect(p.ioctl(heapFd, _IOW('H', 0, 24), arg)).toBe(0);
      expect(arg.fd).toBe(0);
      const after = p.files.fds();
      expect(after.length).toBe(before.length + 1);
      const hidden = after.find((fd) => !before.includes(fd));
      if (hidden === undefined) throw new Error('no new fd');
      expect(p.lseek(hidden, 0, SEEK_END)).toBe(3 * PAGE_SIZE);
      expect(statsOf(k, 'system').buffers).toBe(1);

      // With nothing to copy out, even a read-only argument succeeds.
      expect(p.ioctl(heapFd, _IOW('H', 0, 24), Object.freeze(allocArg(PAGE_SIZE)))).toBe(0);
      expect(p.files.fds().length).toBe(before.length + 2);
    },
  );

  it.each<Publish>(['new', 'legacy'])(
    '_IOR, _IO and size 0 (%s): in_size is 0, so len reads as 0 → -EINVAL',
    (mode) => {
      // dma-heap.c dma_heap_ioctl: if ((ucmd & kcmd & IOC_IN) == 0) in_size = 0; the zero-filled len then fails
      // dma_heap_buffer_alloc: len = PAGE_ALIGN(len); if (!len) return -EINVAL;
      const { k, p } = bootPublish(mode);
      const heapFd = openHeap(p, 'system');
      const before = p.files.fds();
      for (const cmd of [_IOR('H', 0, 24), _IO('H', 0), _IOC(0, 'H', 0, 24), _IOWR('H', 0, 0)]) {
        expect(p.ioctl(heapFd, cmd, allocArg(MiB)), `cmd 0x${cmd.toString(16)}`).toBe(-EINVAL);
      }
      expect(p.files.fds()).toEqual(before);
      expect(statsOf(k, 'system')).toEqual({ buffers: 0, bytes: 0, bytesHighWater: 0, allocFailures: 0 });
    },
  );

  it('_IOR(H,0,24) failure, new order: nothing is copied back', () => {
    // fix: dma_heap_ioctl: if (IS_ERR(dmabuf)) { ret = PTR_ERR(dmabuf); break; } — copy_to_user only on success.
    const { p } = bootPublish('new');
    const heapFd = openHeap(p, 'system');
    const arg = allocArg(MiB);
    expect(p.ioctl(heapFd, _IOR('H', 0, 24), arg)).toBe(-EINVAL);
    expect(arg).toEqual(allocArg(MiB));
  });

  it('_IOR(H,0,24) failure, legacy order: the zero-filled kernel struct is still copied back', () => {
    // v6.12 dma_heap_ioctl: ret = dma_heap_ioctl_allocate(file, kdata); then unconditionally
    // if (copy_to_user(arg, kdata, out_size) != 0) ret = -EFAULT; (kernel-semantics §1.3 step 8)
    const { p } = bootPublish('legacy');
    const heapFd = openHeap(p, 'system');
    const arg = allocArg(MiB);
    expect(p.ioctl(heapFd, _IOR('H', 0, 24), arg)).toBe(-EINVAL);
    expect(arg).toEqual({ len: 0, fd: 0, fd_flags: 0, heap_flags: 0 });
  });
});

// ------------------------------------------------------------------------------------------------
describe('dma_heap_ioctl_allocate: validation (§1.4)', () => {
  it('a non-zero fd field → -EINVAL', () => {
    // dma-heap.c dma_heap_ioctl_allocate: if (heap_allocation->fd) return -EINVAL;
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const fd of [1, heapFd, 0x7fffffff, 0xffffffff]) {
      const r = alloc(p, heapFd, 4096, { fd });
      expect(r.ret, `fd ${fd}`).toBe(-EINVAL);
      expect(r.arg.fd).toBe(fd);
    }
    expect(statsOf(k, 'system').bytesHighWater).toBe(0);
  });

  it('fd_flags outside O_CLOEXEC|O_ACCMODE → -EINVAL; every flag inside is accepted', () => {
    // dma-heap.c dma_heap_ioctl_allocate: if (heap_allocation->fd_flags & ~DMA_HEAP_VALID_FD_FLAGS) return -EINVAL;
    // DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const flags of [O_RDWR | O_NONBLOCK, O_RDWR | O_CREAT, 0x80000000, ~(O_RDWR | O_CLOEXEC), 0x4]) {
      expect(alloc(p, heapFd, 4096, { fd_flags: flags }).ret, `fd_flags 0x${(flags >>> 0).toString(16)}`).toBe(-EINVAL);
    }
    for (const flags of [O_RDONLY, O_WRONLY, O_RDWR, O_CLOEXEC, O_WRONLY | O_CLOEXEC, RDWR_CLOEXEC]) {
      expect(alloc(p, heapFd, 4096, { fd_flags: flags }).ret, `fd_flags 0x${flags.toString(16)}`).toBe(0);
    }
  });

  it('any non-zero heap_flags bit, including the upper 32, → -EINVAL', () => {
    // dma-heap.c dma_heap_ioctl_allocate: if (heap_allocation->heap_flags & ~DMA_HEAP_VALID_HEAP_FLAGS) return -EINVAL;
    // DMA_HEAP_VALID_HEAP_FLAGS = 0ULL, and heap_flags is a __u64.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const hf of [1, 0x111111, 0x100000000, 1n << 63n, 0xffffffffffffffffn]) {
      expect(alloc(p, heapFd, 4096, { heap_flags: hf }).ret, `heap_flags ${hf.toString(16)}`).toBe(-EINVAL);
    }
    expect(statsOf(k, 'system').bytesHighWater).toBe(0);
  });

  it('fd, fd_flags, heap_flags and len are all checked before the heap allocates or an fd is reserved', () => {
    // dma-heap.c dma_heap_ioctl_allocate checks fd, then fd_flags, then heap_flags, then PAGE_ALIGN(len), and
    // only then calls heap->ops->allocate; the fd is reserved after that. All four failures are -EINVAL, so
    // their relative order cannot be told apart from userspace; what can is that none reaches the heap and
    // none is overridden by the heap's -ENOMEM or by -EMFILE.
    const { k, p } = boot();
    const rec = recorderHeap('recorder', -ENOMEM);
    expect(k.addHeap(rec.info)).not.toBeTypeOf('number');
    const heapFd = openHeap(p, 'recorder');
    const bad = { fd: 5, fd_flags: O_RDWR | O_NONBLOCK, heap_flags: 1 };
    const cases: Partial<AllocArg>[] = [];
    for (let mask = 1; mask < 8; mask++) {
      cases.push({
        ...(mask & 1 ? { fd: bad.fd } : {}),
        ...(mask & 2 ? { fd_flags: bad.fd_flags } : {}),
        ...(mask & 4 ? { heap_flags: bad.heap_flags } : {}),
      });
    }
    const check = (): void => {
      for (const c of cases) {
        for (const len of [0, 4096, 0xfffffffffffff000n]) {
          expect(alloc(p, heapFd, len, c).ret, `${JSON.stringify(c)} len ${len}`).toBe(-EINVAL);
        }
      }
      expect(alloc(p, heapFd, 0).ret).toBe(-EINVAL);
    };
    check();
    expect(rec.calls).toEqual([]);
    expect(heapOf(k, 'recorder').stats.allocFailures).toBe(0);

    // A full fd table does not turn any of them into -EMFILE.
    const nulls = fillFdTable(p);
    check();
    expect(rec.calls).toEqual([]);
    for (const fd of nulls) p.close(fd);

    // Positive control: a valid request does reach the heap.
    expect(alloc(p, heapFd, 4096).ret).toBe(-ENOMEM);
    expect(rec.calls).toEqual([{ lenBytes: 4096, fdFlags: RDWR_CLOEXEC, heapFlags: 0n }]);
  });

  it('len 0 and a len whose PAGE_ALIGN wraps past 2^64 → -EINVAL, before the heap is asked', () => {
    // dma-heap.c dma_heap_buffer_alloc: len = PAGE_ALIGN(len); if (!len) return -EINVAL;
    const { k, p } = boot();
    const rec = recorderHeap('recorder');
    expect(k.addHeap(rec.info)).not.toBeTypeOf('number');
    for (const name of ['recorder', 'system']) {
      const heapFd = openHeap(p, name);
      for (const len of [0, 0xfffffffffffff001n, 0xffffffffffffffffn]) {
        const r = alloc(p, heapFd, len);
        expect(r.ret, `${name} len ${len}`).toBe(-EINVAL);
        expect(r.fd).toBe(0);
      }
    }
    expect(rec.calls).toEqual([]);
    expect(statsOf(k, 'system').allocFailures).toBe(0);
  });

  it('a u64 len that does not wrap but is beyond any heap fails in the heap with -ENOMEM', () => {
    // dma-heap.c dma_heap_buffer_alloc: PAGE_ALIGN(0xfffffffffffff000) != 0, so heap->ops->allocate() runs and
    // system_heap_allocate fails with -ENOMEM (no totalram cap in mainline; kernel-semantics §1.4). It is the
    // heap's allocation failure, so the heap's stats count it like any other.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const len of [0xfffffffffffff000n, 1n << 62n, 2 ** 53 + 4096]) {
      expect(alloc(p, heapFd, len).ret, `len ${len}`).toBe(-ENOMEM);
    }
    expect(p.files.fds().length).toBe(4);
    expectAllFree(k);
    expect(statsOf(k, 'system').allocFailures).toBe(3);
  });

  it('a 1-byte request yields a 4096-byte dma-buf (PAGE_ALIGN)', () => {
    // dma-heap.c dma_heap_buffer_alloc: len = PAGE_ALIGN(len); heap->ops->allocate(heap, len, ...)
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    for (const [len, size] of [
      [1, 4096],
      [4095, 4096],
      [4096, 4096],
      [4097, 8192],
    ] as const) {
      const fd = mustAlloc(p, heapFd, len);
      expect(p.lseek(fd, 0, SEEK_END), `len ${len}`).toBe(size);
      expect(p.close(fd)).toBe(0);
    }
    const fd = mustAlloc(p, heapFd, 1);
    expect(statsOf(k, 'system').bytes).toBe(4096);
    expect(p.close(fd)).toBe(0);
  });

  it.each(DEFAULT_HEAPS)('an oversized request on %s → -ENOMEM and one allocation failure in its stats', (name) => {
    // system_heap_allocate: alloc_largest_available() == NULL → -ENOMEM;
    // cma_heap_allocate: cma_alloc() == NULL → -ENOMEM; the carveout pool likewise.
    const { k, p } = boot();
    const heapFd = openHeap(p, name);
    const fdsBefore = p.files.fds();
    const r = alloc(p, heapFd, ARENA_BYTES + PAGE_SIZE);
    expect(r.ret).toBe(-ENOMEM);
    expect(r.fd).toBe(0);
    expect(p.files.fds()).toEqual(fdsBefore);
    expect(statsOf(k, name)).toEqual({ buffers: 0, bytes: 0, bytesHighWater: 0, allocFailures: 1 });
    expectAllFree(k);
    // The heap still works after a failure.
    expect(p.close(mustAlloc(p, heapFd, MiB))).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
describe('fd publication and user copies (§1.3, §11 C1)', () => {
  it.each<Publish>(['new', 'legacy'])(
    '-EMFILE with a full fd table (%s): the buffer was allocated, then dropped; nothing leaks',
    (mode) => {
      // fix: fd = get_unused_fd_flags(fd_flags); if (fd < 0) { dma_buf_put(dmabuf); return ERR_PTR(fd); }
      // v6.12: dma_heap_buffer_alloc: fd = dma_buf_fd(dmabuf, fd_flags); if (fd < 0) dma_buf_put(dmabuf);
      const { k, p } = bootPublish(mode);
      const heapFd = openHeap(p, 'system');
      const nulls = fillFdTable(p);
      const r = alloc(p, heapFd, MiB);
      expect(r.ret).toBe(-EMFILE);
      expect(r.fd).toBe(0);
      expect(p.files.fds().length).toBe(FD_LIMIT);
      expectAllFree(k);
      // The heap did allocate (the high-water mark saw it) and the put released it.
      expect(statsOf(k, 'system')).toEqual({ buffers: 0, bytes: 0, bytesHighWater: MiB, allocFailures: 0 });

      for (const fd of nulls) expect(p.close(fd)).toBe(0);
      expectAllFree(k);
      const fd = mustAlloc(p, heapFd, MiB);
      expect(fd).toBe(nulls[0]);
      expect(p.close(fd)).toBe(0);
      expectAllFree(k);
    },
  );

  it.each<Publish>(['new', 'legacy'])('a NULL argument (%s) → -EFAULT before anything is allocated', (mode) => {
    // dma-heap.c dma_heap_ioctl: if (copy_from_user(kdata, (void __user *)arg, in_size) != 0) { ret = -EFAULT; goto err; }
    const { k, p } = bootPublish(mode);
    const heapFd = openHeap(p, 'system');
    const before = p.files.fds();
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, null)).toBe(-EFAULT);
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, undefined)).toBe(-EFAULT);
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC)).toBe(-EFAULT);
    expect(p.files.fds()).toEqual(before);
    expect(statsOf(k, 'system').bytesHighWater).toBe(0);
  });

  it('a read-only argument, new order → -EFAULT: the reserved fd is released and the buffer freed', () => {
    // fix: dma_heap_ioctl: if (copy_to_user(arg, kdata, out_size) != 0) { put_unused_fd(fd); dma_buf_put(dmabuf);
    // ret = -EFAULT; } else fd_install(fd, dmabuf->file);
    const { k, p } = bootPublish('new');
    const heapFd = openHeap(p, 'system');
    const before = p.files.fds();
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, Object.freeze(allocArg(MiB)))).toBe(-EFAULT);
    expect(p.files.fds()).toEqual(before);
    expectAllFree(k);
    expect(statsOf(k, 'system')).toEqual({ buffers: 0, bytes: 0, bytesHighWater: MiB, allocFailures: 0 });
    // The reservation was given back: the next buffer gets the lowest free fd.
    expect(mustAlloc(p, heapFd, PAGE_SIZE)).toBe(heapFd + 1);
  });

  it('a read-only argument, legacy order → -EFAULT, but the fd is already installed and leaks', () => {
    // v6.12: dma_heap_buffer_alloc: fd = dma_buf_fd(dmabuf, fd_flags) installs the fd; then dma_heap_ioctl:
    // if (copy_to_user(arg, kdata, out_size) != 0) ret = -EFAULT; — nothing undoes the install.
    const { k, p } = bootPublish('legacy');
    const heapFd = openHeap(p, 'system');
    const before = p.files.fds();
    const arg = Object.freeze(allocArg(MiB));
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg)).toBe(-EFAULT);
    expect(arg.fd).toBe(0);
    const after = p.files.fds();
    expect(after.length).toBe(before.length + 1);
    const leaked = heapFd + 1;
    expect(after).toContain(leaked);
    expect(p.lseek(leaked, 0, SEEK_END)).toBe(MiB);
    expect(statsOf(k, 'system').buffers).toBe(1);
    expect(freePages(k, 'system')).toBe(ARENA_BYTES / PAGE_SIZE - MiB / PAGE_SIZE);
    expect(p.close(leaked)).toBe(0);
    expectAllFree(k);
  });

  it('a read-only argument with a validation or allocation error, new order: that errno, not -EFAULT', () => {
    // fix: dma_heap_ioctl: if (IS_ERR(dmabuf)) { ret = PTR_ERR(dmabuf); break; } — no copy_to_user on failure
    // (kernel-semantics §11 C1: "The errno is the validation error even if the argument is read-only").
    const { k, p } = bootPublish('new');
    const heapFd = openHeap(p, 'system');
    const before = p.files.fds();
    const call = (a: AllocArg): number => p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, Object.freeze(a));
    expect(call(allocArg(MiB, { fd: 7 }))).toBe(-EINVAL);
    expect(call(allocArg(MiB, { fd_flags: O_NONBLOCK }))).toBe(-EINVAL);
    expect(call(allocArg(MiB, { heap_flags: 1 }))).toBe(-EINVAL);
    expect(call(allocArg(0))).toBe(-EINVAL);
    expect(call(allocArg(ARENA_BYTES + PAGE_SIZE))).toBe(-ENOMEM);
    expect(p.files.fds()).toEqual(before);
    expectAllFree(k);
  });

  it('a read-only argument with a validation error, legacy order: the copy-out still runs → -EFAULT', () => {
    // v6.12 dma_heap_ioctl: ret = dma_heap_ioctl_allocate(file, kdata); if (copy_to_user(arg, kdata, out_size)
    // != 0) ret = -EFAULT; — the copy-out is not skipped on error (kernel-semantics §1.3 step 8).
    const { k, p } = bootPublish('legacy');
    const heapFd = openHeap(p, 'system');
    const before = p.files.fds();
    const call = (a: AllocArg): number => p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, Object.freeze(a));
    expect(call(allocArg(MiB, { fd: 7 }))).toBe(-EFAULT);
    expect(call(allocArg(MiB, { heap_flags: 1 }))).toBe(-EFAULT);
    expect(call(allocArg(ARENA_BYTES + PAGE_SIZE))).toBe(-EFAULT);
    expect(p.files.fds()).toEqual(before);
    expectAllFree(k);
  });

  it('a 32-byte struct with charge_pid_fd = an fd of /dev/null allocates: the field is ignored (A11)', () => {
    // kernel-semantics §11 A11: on 6.12 dma_heap_ioctl copies 32 bytes in, ksize = 32, and
    // dma_heap_ioctl_allocate reads only the first 24; only the in-flight [MM] code would reject it.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    const nullFd = p.open('/dev/null', O_RDWR);
    expect(nullFd).toBeGreaterThan(heapFd);
    const arg = {
      len: 2 * PAGE_SIZE,
      fd: 0,
      fd_flags: RDWR_CLOEXEC,
      heap_flags: 0,
      charge_pid_fd: nullFd,
      __padding: 0,
    };
    expect(p.ioctl(heapFd, _IOWR('H', 0, 32), arg)).toBe(0);
    expect(arg.fd).toBe(nullFd + 1);
    expect(arg.charge_pid_fd).toBe(nullFd);
    expect(p.lseek(arg.fd, 0, SEEK_END)).toBe(2 * PAGE_SIZE);
    expect(statsOf(k, 'system').buffers).toBe(1);
  });
});

// ------------------------------------------------------------------------------------------------
describe('access modes of the heap fd and the dma-buf (§1.4, §11 A2)', () => {
  it('fd_flags O_CLOEXEC alone gives an O_RDONLY dma-buf: PROT_WRITE|MAP_SHARED → -EACCES, PROT_READ works', () => {
    // dma_buf_export: alloc_file_pseudo(..., exp_info->flags) → f_mode = OPEN_FMODE(O_RDONLY) = FMODE_READ;
    // mm/mmap.c do_mmap: MAP_SHARED: if ((prot & PROT_WRITE) && !(file->f_mode & FMODE_WRITE)) return -EACCES;
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    const fd = mustAlloc(p, heapFd, 2 * PAGE_SIZE, O_CLOEXEC);
    expect(p.files.isCloexec(fd)).toBe(true);
    expect(p.mmap(fd, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, 2 * PAGE_SIZE, PROT_WRITE, MAP_SHARED, 0)).toBe(-EACCES);
    const addr = p.mmap(fd, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    expect(addr).toBeGreaterThan(0);
    expect(p.readMem(addr, 2 * PAGE_SIZE)).toEqual(new Uint8Array(2 * PAGE_SIZE));
    // The mapping really is read-only.
    expect(p.writeMem(addr, new Uint8Array([1]))).toBe(-EFAULT);
  });

  it('fd_flags O_RDWR without O_CLOEXEC: no close-on-exec, and a writable shared mapping works', () => {
    // dma-heap.c: dma_buf_fd(dmabuf, fd_flags) / get_unused_fd_flags(fd_flags): O_CLOEXEC only sets close-on-exec.
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    const fd = mustAlloc(p, heapFd, PAGE_SIZE, O_RDWR);
    expect(p.files.isCloexec(fd)).toBe(false);
    const addr = p.mmap(fd, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(addr).toBeGreaterThan(0);
    expect(p.writeMem(addr, new Uint8Array([7, 8, 9]))).toBe(0);
    expect(p.readMem(addr, 3)).toEqual(new Uint8Array([7, 8, 9]));
  });

  it('fd_flags O_WRONLY: even a PROT_READ mapping → -EACCES', () => {
    // mm/mmap.c do_mmap: if (!(file->f_mode & FMODE_READ)) return -EACCES; (kernel-semantics §11 A2)
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    const fd = mustAlloc(p, heapFd, PAGE_SIZE, O_WRONLY | O_CLOEXEC);
    expect(p.mmap(fd, PAGE_SIZE, PROT_READ, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 0)).toBe(-EACCES);
  });

  it('the heap fd is not seekable: lseek → -ESPIPE', () => {
    // dma-heap.c dma_heap_open: nonseekable_open(inode, file); → no_llseek → -ESPIPE (kernel-semantics §11 A2)
    const { p } = boot();
    for (const name of DEFAULT_HEAPS) {
      const heapFd = openHeap(p, name);
      for (const whence of [SEEK_SET, SEEK_CUR, SEEK_END]) expect(p.lseek(heapFd, 0, whence)).toBe(-ESPIPE);
    }
  });

  it('a heap fd opened O_RDONLY can allocate a read-write buffer', () => {
    // dma-heap.c dma_heap_ioctl: f_mode is never consulted (kernel-semantics §11 A2).
    const { p } = boot();
    const heapFd = openHeap(p, 'system', O_RDONLY);
    const fd = mustAlloc(p, heapFd, PAGE_SIZE);
    const addr = p.mmap(fd, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(addr).toBeGreaterThan(0);
    expect(p.writeMem(addr, new Uint8Array([0x5a]))).toBe(0);
  });

  it('opening a heap that does not exist → -ENOENT', () => {
    // No device node /dev/dma_heap/nope: path lookup fails before any dma_heap_open.
    const { p } = boot();
    expect(p.open('/dev/dma_heap/nope', O_RDWR)).toBe(-ENOENT);
    expect(p.open('/dev/dma_heap/nope', O_RDONLY)).toBe(-ENOENT);
    expect(heapNamesIn(p)).toEqual(DEFAULT_HEAPS);
  });

  it('CMA heap: MAP_PRIVATE → -EINVAL, MAP_SHARED works', () => {
    // cma_heap.c cma_heap_mmap: if ((vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) == 0) return -EINVAL;
    const { p } = boot();
    const heapFd = openHeap(p, 'default_cma_region');
    const fd = mustAlloc(p, heapFd, 2 * PAGE_SIZE);
    expect(p.mmap(fd, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0)).toBeGreaterThan(0);
  });

  it('system heap: MAP_PRIVATE works for exactly one page, -EINVAL for more (A1)', () => {
    // system_heap.c system_heap_mmap: remap_pfn_range() once per page; on a COW mapping remap_pfn_range
    // must cover the whole VMA, else -EINVAL (kernel-semantics §11 A1).
    const { p } = boot();
    const heapFd = openHeap(p, 'system');
    const fd = mustAlloc(p, heapFd, 2 * MiB);
    for (const len of [2 * PAGE_SIZE, 64 * KiB, MiB, 2 * MiB]) {
      expect(p.mmap(fd, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0), `len ${len}`).toBe(-EINVAL);
    }
    const priv = p.mmap(fd, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
    expect(priv).toBeGreaterThan(0);
    const shared = p.mmap(fd, PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    expect(p.writeMem(priv, new Uint8Array([0xab]))).toBe(0);
    expect(p.readMem(priv, 1)).toEqual(new Uint8Array([0xab]));
    // Copy-on-write: the buffer itself is unchanged.
    expect(p.readMem(shared, 1)).toEqual(new Uint8Array([0]));
  });
});

// ------------------------------------------------------------------------------------------------
describe('dma_heap_add (§1.1)', () => {
  it('an empty name → -EINVAL', () => {
    // dma-heap.c dma_heap_add: if (!exp_info->name || !strcmp(exp_info->name, "")) return ERR_PTR(-EINVAL);
    const { k, p } = boot();
    expect(k.addHeap(recorderHeap('').info)).toBe(-EINVAL);
    expect(heapNamesIn(p)).toEqual(DEFAULT_HEAPS);
    expect(k.heaps.all().length).toBe(4);
  });

  it('no ops, or ops without allocate → -EINVAL', () => {
    // dma-heap.c dma_heap_add: if (!exp_info->ops || !exp_info->ops->allocate) return ERR_PTR(-EINVAL);
    const { k, p } = boot();
    const { info } = recorderHeap('broken');
    expect(k.addHeap({ ...info, ops: {} } as unknown as AddHeapInfo)).toBe(-EINVAL);
    expect(k.addHeap({ ...info, ops: undefined } as unknown as AddHeapInfo)).toBe(-EINVAL);
    expect(p.open('/dev/dma_heap/broken', O_RDWR)).toBe(-ENOENT);
    expect(k.heaps.all().length).toBe(4);
  });

  it('a duplicate name → -EINVAL, and the first heap of that name stays in place', () => {
    // dma-heap.c dma_heap_add: list_for_each_entry(h, &heap_list, list) if (!strcmp(h->name, exp_info->name))
    // err_ret = ERR_PTR(-EINVAL); goto err3; (unwinds the device it just created)
    const { k, p } = boot();
    const impostor = recorderHeap('system');
    expect(k.addHeap(impostor.info)).toBe(-EINVAL);
    const mine = recorderHeap('mine');
    expect(k.addHeap(mine.info)).not.toBeTypeOf('number');
    expect(k.addHeap(recorderHeap('mine').info)).toBe(-EINVAL);
    expect(heapNamesIn(p)).toEqual([...DEFAULT_HEAPS, 'mine'].sort());

    // /dev/dma_heap/system is still the real system heap.
    const fd = mustAlloc(p, openHeap(p, 'system'), PAGE_SIZE);
    expect(p.lseek(fd, 0, SEEK_END)).toBe(PAGE_SIZE);
    expect(impostor.calls).toEqual([]);
    expect(statsOf(k, 'system').buffers).toBe(1);
  });

  it('the 129th heap → -EBUSY: there are NUM_HEAP_MINORS = 128 minors', () => {
    // dma-heap.c dma_heap_add: xa_alloc(&dma_heap_minors, &minor, heap, XA_LIMIT(0, NUM_HEAP_MINORS - 1), ...)
    // fails with -EBUSY when every minor is taken; the error is propagated.
    const { k, p } = boot();
    expect(k.heaps.all().length).toBe(4);
    for (let i = k.heaps.all().length; i < 128; i++) {
      const h = k.addHeap(recorderHeap(`extra-${i}`).info);
      expect(h, `heap ${i}`).not.toBeTypeOf('number');
    }
    expect(heapNamesIn(p).length).toBe(128);
    expect(new Set(k.heaps.all().map((h) => h.minor)).size).toBe(128);
    expect(k.addHeap(recorderHeap('one-too-many').info)).toBe(-EBUSY);
    expect(p.open('/dev/dma_heap/one-too-many', O_RDWR)).toBe(-ENOENT);
    expect(heapNamesIn(p).length).toBe(128);
    // The last heap that fit works.
    expect(p.open('/dev/dma_heap/extra-127', O_RDWR)).toBeGreaterThanOrEqual(3);
  });

  it('an added heap gets /dev/dma_heap/<name>; its allocate sees PAGE_ALIGN(len) and the flags; its errno propagates', () => {
    // dma-heap.c dma_heap_buffer_alloc: len = PAGE_ALIGN(len); dmabuf = heap->ops->allocate(heap, len, fd_flags,
    // heap_flags); if (IS_ERR(dmabuf)) return PTR_ERR(dmabuf);
    const { k, p } = boot();
    const rec = recorderHeap('recorder', -EIO);
    expect(k.addHeap(rec.info)).not.toBeTypeOf('number');
    expect(heapNamesIn(p)).toContain('recorder');
    const heapFd = openHeap(p, 'recorder');
    const r = alloc(p, heapFd, 5000, { fd_flags: O_WRONLY });
    expect(r.ret).toBe(-EIO);
    expect(r.fd).toBe(0);
    expect(rec.calls).toEqual([{ lenBytes: 8192, fdFlags: O_WRONLY, heapFlags: 0n }]);
    expect(heapOf(k, 'recorder').stats.allocFailures).toBe(1);
  });
});

// ------------------------------------------------------------------------------------------------
// The per-heap ledger has no kernel counterpart (dma-heap.ts contract, after the 2019 heaps discussion):
// live buffers, live bytes and a high-water mark, exact at every moment because every release is booked.
describe('per-heap stats', () => {
  it('buffers, bytes and high-water follow alloc and close; resetStats sets high-water to the current bytes', () => {
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    const a = mustAlloc(p, heapFd, 4 * KiB);
    const b = mustAlloc(p, heapFd, 64 * KiB);
    const c = mustAlloc(p, heapFd, MiB);
    expect(statsOf(k, 'system')).toEqual({
      buffers: 3,
      bytes: MiB + 68 * KiB,
      bytesHighWater: MiB + 68 * KiB,
      allocFailures: 0,
    });
    expect(p.close(c)).toBe(0);
    expect(statsOf(k, 'system')).toMatchObject({ buffers: 2, bytes: 68 * KiB, bytesHighWater: MiB + 68 * KiB });

    heapOf(k, 'system').resetStats();
    expect(statsOf(k, 'system')).toMatchObject({ buffers: 2, bytes: 68 * KiB, bytesHighWater: 68 * KiB });

    const d = mustAlloc(p, heapFd, 8 * KiB);
    expect(statsOf(k, 'system')).toMatchObject({ buffers: 3, bytes: 76 * KiB, bytesHighWater: 76 * KiB });
    for (const fd of [a, b, d]) expect(p.close(fd)).toBe(0);
    expect(statsOf(k, 'system')).toMatchObject({ buffers: 0, bytes: 0, bytesHighWater: 76 * KiB });
    heapOf(k, 'system').resetStats();
    expect(statsOf(k, 'system')).toMatchObject({ buffers: 0, bytes: 0, bytesHighWater: 0 });
    // system-uncached shares the allocator but not the ledger.
    expect(statsOf(k, 'system-uncached')).toEqual({ buffers: 0, bytes: 0, bytesHighWater: 0, allocFailures: 0 });
  });

  it('stats stay exact while a closed buffer is still mapped or imported, and drop with the last reference', () => {
    const { k, p } = boot();
    const heapFd = openHeap(p, 'default_cma_region');
    const mapped = mustAlloc(p, heapFd, 64 * KiB);
    const addr = p.mmap(mapped, 64 * KiB, PROT_READ, MAP_SHARED, 0);
    expect(addr).toBeGreaterThan(0);
    const imported = mustAlloc(p, heapFd, 128 * KiB);
    const drm = p.open('/dev/dri/card0', O_RDWR);
    const imp = { fd: imported, flags: 0, handle: 0 };
    expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, imp)).toBe(0);

    expect(p.close(mapped)).toBe(0);
    expect(p.close(imported)).toBe(0);
    expect(statsOf(k, 'default_cma_region')).toMatchObject({ buffers: 2, bytes: 192 * KiB });

    expect(p.munmap(addr, 64 * KiB)).toBe(0);
    expect(statsOf(k, 'default_cma_region')).toMatchObject({ buffers: 1, bytes: 128 * KiB });
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: imp.handle, pad: 0 })).toBe(0);
    expect(statsOf(k, 'default_cma_region')).toMatchObject({ buffers: 0, bytes: 0, bytesHighWater: 192 * KiB });
    expectAllFree(k);
  });

  it('after the process exits every heap is back to zero and every page is free', () => {
    // do_exit: exit_mmap drops the mappings, exit_files closes every fd (vgem's release drops its imports).
    const { k, p } = boot();
    const drm = p.open('/dev/dri/card0', O_RDWR);
    for (const name of DEFAULT_HEAPS) {
      const heapFd = openHeap(p, name);
      for (const len of [PAGE_SIZE, 68 * KiB, MiB]) mustAlloc(p, heapFd, len);
      const fd = mustAlloc(p, heapFd, 2 * PAGE_SIZE);
      expect(p.mmap(fd, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0)).toBeGreaterThan(0);
      expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, { fd, flags: 0, handle: 0 })).toBe(0);
      expect(statsOf(k, name).buffers).toBe(4);
    }
    expect(k.memoryUsage().every((a) => a.freePages < a.totalPages)).toBe(true);
    p.exit();
    const live = k.heaps.all().map((h) => ({ name: h.name, buffers: h.stats.buffers, bytes: h.stats.bytes }));
    expect(live).toEqual(k.heaps.all().map((h) => ({ name: h.name, buffers: 0, bytes: 0 })));
    expectAllFree(k);
    expect(k.warnings).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
describe('system heap chunking (§1.5)', () => {
  it.each(['system', 'system-uncached'])('%s: 1 MiB + 64 KiB + 4 KiB → sg entries [1 MiB, 64 KiB, 4 KiB]', (name) => {
    // system_heap.c: orders[] = {8, 4, 0}; alloc_largest_available() takes the largest order that fits what is
    // left; one sg entry per chunk, in allocation order.
    const { k, p } = boot();
    const fd = mustAlloc(p, openHeap(p, name), MiB + 64 * KiB + 4 * KiB);
    expect(sgEntries(k, p, fd).map((e) => e.lengthBytes)).toEqual([MiB, 64 * KiB, 4 * KiB]);
  });

  it('68 KiB → [64 KiB, 4 KiB]', () => {
    const { k, p } = boot();
    const fd = mustAlloc(p, openHeap(p, 'system'), 68 * KiB);
    expect(sgEntries(k, p, fd).map((e) => e.lengthBytes)).toEqual([64 * KiB, 4 * KiB]);
  });

  it('property: chunks are 1 MiB / 64 KiB / 4 KiB, non-increasing, greedy, and add up to PAGE_ALIGN(len)', () => {
    // system_heap.c system_heap_allocate: max_order = compound_order(page) after each chunk, so sizes never grow.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 * MiB }), (len) => {
        const fd = mustAlloc(p, heapFd, len);
        const lengths = sgEntries(k, p, fd).map((e) => e.lengthBytes);
        expect(p.close(fd)).toBe(0);
        const pages = pageAlign(len) / PAGE_SIZE;
        const greedy = [
          ...Array<number>(Math.floor(pages / 256)).fill(MiB),
          ...Array<number>(Math.floor((pages % 256) / 16)).fill(64 * KiB),
          ...Array<number>(pages % 16).fill(4 * KiB),
        ];
        expect(lengths).toEqual(greedy);
        for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeLessThanOrEqual(lengths[i - 1] ?? 0);
        expect(lengths.reduce((s, n) => s + n, 0)).toBe(pageAlign(len));
      }),
      { numRuns: 60 },
    );
    expectAllFree(k);
  });

  it('with no free order-8 block the heap falls back to 64 KiB chunks, then 4 KiB for the tail', () => {
    // system_heap.c alloc_largest_available: orders 8 and 4 use __GFP_NORETRY without reclaim; a NULL page
    // means `continue` to the next order down.
    const { k, p } = boot();
    const heapFd = openHeap(p, 'system');
    const fills: number[] = [];
    for (let i = 0; i < ARENA_BYTES / (64 * KiB); i++) fills.push(mustAlloc(p, heapFd, 64 * KiB));
    expect(alloc(p, heapFd, PAGE_SIZE).ret).toBe(-ENOMEM);
    // Free every other 64 KiB block: 8 MiB free, but no two free blocks are buddies.
    for (let i = 1; i < fills.length; i += 2) expect(p.close(fills[i] ?? -1)).toBe(0);
    const fd = mustAlloc(p, heapFd, MiB + 4 * KiB);
    const lengths = sgEntries(k, p, fd).map((e) => e.lengthBytes);
    expect(lengths).toEqual([...Array<number>(16).fill(64 * KiB), 4 * KiB]);
  });
});

// ------------------------------------------------------------------------------------------------
describe('CMA heap (§1.6)', () => {
  it.each([
    [4 * KiB, 4 * KiB],
    [12 * KiB, 16 * KiB],
    [512 * KiB, 512 * KiB],
    [MiB + 4 * KiB, MiB],
    [4 * MiB, MiB],
  ])(
    'a %d-byte buffer is one sg entry aligned to %d bytes (min(get_order(size), CONFIG_CMA_ALIGNMENT=8))',
    (size, align) => {
      // cma_heap.c cma_heap_allocate: align = get_order(size); if (align > CONFIG_CMA_ALIGNMENT) align =
      // CONFIG_CMA_ALIGNMENT; cma_pages = cma_alloc(cma, pagecount, align, false);
      const { k, p } = boot();
      const heapFd = openHeap(p, 'default_cma_region');
      // Take the start of the area so the buffer cannot be aligned by accident.
      const first = sgEntries(k, p, mustAlloc(p, heapFd, PAGE_SIZE));
      expect(first.length).toBe(1);
      const base = first[0]?.dmaAddress ?? -1;
      const entries = sgEntries(k, p, mustAlloc(p, heapFd, size));
      expect(entries.length).toBe(1);
      const [e] = entries;
      expect(e?.lengthBytes).toBe(size);
      expect((e?.dmaAddress ?? -1) % align).toBe(0);
      expect(e?.dmaAddress).toBeGreaterThanOrEqual(base + PAGE_SIZE);
    },
  );

  it('property: after any earlier allocations, a buffer is one contiguous, correctly aligned entry', () => {
    const { k, p } = boot();
    const heapFd = openHeap(p, 'default_cma_region');
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 4 }),
        fc.integer({ min: 1, max: 4 * MiB }),
        (prefixPages, len) => {
          const prefix = prefixPages.map((n) => mustAlloc(p, heapFd, n * PAGE_SIZE));
          const fd = mustAlloc(p, heapFd, len);
          const entries = sgEntries(k, p, fd);
          for (const f of [...prefix, fd]) expect(p.close(f)).toBe(0);
          const alignBytes = PAGE_SIZE * 2 ** Math.min(getOrder(pageAlign(len)), 8);
          expect(entries.length).toBe(1);
          expect(entries[0]?.lengthBytes).toBe(pageAlign(len));
          expect((entries[0]?.dmaAddress ?? -1) % alignBytes).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
    expectAllFree(k);
  });

  it('the whole area, then one more page → -ENOMEM; after closing, a full-size allocation works again', () => {
    // cma_heap.c cma_heap_allocate: if (!cma_pages) goto free_buffer; → -ENOMEM
    const { k, p } = boot();
    const heapFd = openHeap(p, 'default_cma_region');
    const whole = mustAlloc(p, heapFd, ARENA_BYTES);
    expect(freePages(k, 'cma')).toBe(0);
    expect(alloc(p, heapFd, PAGE_SIZE).ret).toBe(-ENOMEM);
    expect(statsOf(k, 'default_cma_region').allocFailures).toBe(1);
    expect(p.close(whole)).toBe(0);
    expectAllFree(k);
    const again = mustAlloc(p, heapFd, ARENA_BYTES);
    expect(sgEntries(k, p, again).map((e) => e.lengthBytes)).toEqual([ARENA_BYTES]);
  });

  it('with the legacy alias, linux,cma and default_cma_region allocate from the same area', () => {
    // cma_heap.c (CONFIG_DMABUF_HEAPS_CMA_LEGACY): a second dma_heap_add() with the area's own name and the
    // same cma as priv (kernel-semantics §1.1).
    const { k, p } = boot({ heaps: { cmaLegacyAlias: true } });
    expect(heapNamesIn(p)).toContain('linux,cma');
    const legacy = mustAlloc(p, openHeap(p, 'linux,cma'), ARENA_BYTES);
    const modern = openHeap(p, 'default_cma_region');
    expect(alloc(p, modern, PAGE_SIZE).ret).toBe(-ENOMEM);
    expect(p.close(legacy)).toBe(0);
    expect(p.close(mustAlloc(p, modern, ARENA_BYTES))).toBe(0);
    expectAllFree(k);
  });
});

// ------------------------------------------------------------------------------------------------
describe('carveout heap', () => {
  it.each([4 * KiB, 68 * KiB, MiB + 64 * KiB + 4 * KiB, 8 * MiB])('a %d-byte buffer is one sg entry', (size) => {
    // Not mainline: the reserved-memory heap series (2025) hands out one gen_pool_alloc() run per buffer,
    // so the importer sees a single contiguous entry (carveout-heap.ts contract).
    const { k, p } = boot();
    const heapFd = openHeap(p, 'carveout');
    mustAlloc(p, heapFd, 3 * PAGE_SIZE);
    const entries = sgEntries(k, p, mustAlloc(p, heapFd, size));
    expect(entries.map((e) => e.lengthBytes)).toEqual([size]);
  });
});
