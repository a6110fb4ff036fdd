// dma_buf userspace and export semantics: kernel-semantics.md §2 (2.1 export, 2.2 lifetime, 2.3 ioctls,
// 2.6 mmap/llseek/fdinfo, 2.9 debugfs) and §11 A1–A4. Every expectation cites the kernel source it comes
// from: drivers/dma-buf/dma-buf.c [ML v6.17], drivers/dma-buf/heaps/{system,cma}_heap.c, mm/mmap.c,
// mm/memory.c. poll() (§2.4) is not implemented yet and is not tested here.
import { describe, expect, it } from 'vitest';
import {
  _IO,
  _IOW,
  _IOWR,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  type DmaBufOps,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  errno,
  errnoName,
  Kernel,
  type KernelChannels,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  type Process,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from '../../src/index.js';
import { type DmaBuf, dmaBufExport, dmaBufFd } from '../../src/kernel/dma-buf.js';

const { EACCES, EBADF, EFAULT, EINVAL, ENODEV, ENOTTY, EOPNOTSUPP, ESPIPE } = errno;

const PAGE = 4096;
const KiB = 1024;
const MiB = 1024 * 1024;
const RW = PROT_READ | PROT_WRITE;
const BUFINFO = '/sys/kernel/debug/dma_buf/bufinfo';
const HEADER = '\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n';

type SignalEvent = KernelChannels['kernel:signal'];

function boot(): Kernel {
  return new Kernel({ memory: { systemBytes: 8 * MiB, cmaBytes: 4 * MiB, carveoutBytes: 4 * MiB } });
}

/** DMA_HEAP_IOCTL_ALLOC on `/dev/dma_heap/<heap>`; returns the new dma-buf fd. */
function alloc(p: Process, len: number, heap = 'system', fdFlags = O_RDWR | O_CLOEXEC): number {
  const heapFd = p.open(`/dev/dma_heap/${heap}`, O_RDWR);
  if (heapFd < 0) throw new Error(`open ${heap}: ${errnoName(heapFd)}`);
  const a: Record<string, unknown> = { len, fd: 0, fd_flags: fdFlags, heap_flags: 0 };
  const ret = p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, a);
  p.close(heapFd);
  if (ret !== 0) throw new Error(`ALLOC ${heap} ${len}: ${errnoName(ret)}`);
  return a.fd as number;
}

function mmapOk(p: Process, fd: number, len: number, prot = RW, flags = MAP_SHARED, offset = 0): number {
  const addr = p.mmap(fd, len, prot, flags, offset);
  if (addr < 0) throw new Error(`mmap: ${errnoName(addr)}`);
  return addr;
}

function read(p: Process, addr: number, n: number): Uint8Array {
  const r = p.readMem(addr, n);
  if (typeof r === 'number') throw new Error(`readMem: ${errnoName(r)}`);
  return r;
}

function text(r: string | number): string {
  if (typeof r === 'number') throw new Error(`readFile: ${errnoName(r)}`);
  return r;
}

/** `/proc/self/fdinfo/<fd>` as key → value (the value may be empty). */
function fdinfo(p: Process, fd: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text(p.readFile(`/proc/self/fdinfo/${fd}`)).split('\n')) {
    if (line === '') continue;
    const tab = line.indexOf(':\t');
    out.set(line.slice(0, tab), line.slice(tab + 2));
  }
  return out;
}

const count = (p: Process, fd: number): string | undefined => fdinfo(p, fd).get('count');

function importVgem(p: Process, fd: number): { drm: number; handle: number } {
  const drm = p.open('/dev/dri/card0', O_RDWR);
  if (drm < 0) throw new Error(`open vgem: ${errnoName(drm)}`);
  const h: Record<string, unknown> = { fd, flags: 0, handle: 0 };
  const ret = p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, h);
  if (ret !== 0) throw new Error(`PRIME_FD_TO_HANDLE: ${errnoName(ret)}`);
  return { drm, handle: h.handle as number };
}

function devRead(k: Kernel, p: Process, drm: number, handle: number, off: number, n: number): Uint8Array {
  const r = k.vgem.dmaRead(p, drm, handle, off, n);
  if (typeof r === 'number') throw new Error(`dmaRead: ${errnoName(r)}`);
  return r;
}

function signalsOf(k: Kernel): SignalEvent[] {
  const out: SignalEvent[] = [];
  k.channels.subscribe('kernel:signal', (m) => out.push(m));
  return out;
}

const filled = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
const sync = (p: Process, fd: number, flags: number | bigint): number => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags });
const systemArena = (k: Kernel) => k.memoryUsage().find((a) => a.arena === 'system');

/** An exporter ops table with only the three ops dma_buf_export requires. */
function minimalOps(extra: Partial<DmaBufOps> = {}): DmaBufOps {
  return {
    mapDmaBuf: () => -errno.ENOMEM,
    unmapDmaBuf: () => {},
    release: () => {},
    ...extra,
  };
}

function without(ops: DmaBufOps, name: string): DmaBufOps {
  return Object.fromEntries(Object.entries(ops).filter(([key]) => key !== name)) as unknown as DmaBufOps;
}

// ------------------------------------------------------------------------------------------------
describe('dma_buf_export validation (§2.1)', () => {
  it.each(['mapDmaBuf', 'unmapDmaBuf', 'release'])('an ops table without %s is -EINVAL with a WARN', (op) => {
    // dma_buf_export(): WARN_ON(!priv || !ops || !ops->map_dma_buf || !ops->unmap_dma_buf || !ops->release)
    const k = boot();
    const ret = dmaBufExport(k, k.dmaBufList, {
      ops: without(minimalOps(), op),
      sizeBytes: PAGE,
      flags: O_RDWR,
      priv: {},
    });
    expect(ret).toBe(-EINVAL);
    expect(k.warnings.map((w) => w.rule)).toEqual(['dmabuf-export-bad-ops']);
    expect(k.dmaBufList.bufs.size).toBe(0);
  });

  it('a missing priv is -EINVAL with a WARN', () => {
    // dma_buf_export(): the same WARN_ON also tests !exp_info->priv.
    const k = boot();
    const ret = dmaBufExport(k, k.dmaBufList, { ops: minimalOps(), sizeBytes: PAGE, flags: O_RDWR, priv: null });
    expect(ret).toBe(-EINVAL);
    expect(k.warnings.map((w) => w.rule)).toEqual(['dmabuf-export-bad-ops']);
    expect(k.dmaBufList.bufs.size).toBe(0);
  });

  it('pin without unpin, or unpin without pin, is -EINVAL with a WARN', () => {
    // dma_buf_export(): WARN_ON(!exp_info->ops->pin != !exp_info->ops->unpin)
    const k = boot();
    const pinOnly = dmaBufExport(k, k.dmaBufList, {
      ops: minimalOps({ pin: () => 0 }),
      sizeBytes: PAGE,
      flags: O_RDWR,
      priv: {},
    });
    const unpinOnly = dmaBufExport(k, k.dmaBufList, {
      ops: minimalOps({ unpin: () => {} }),
      sizeBytes: PAGE,
      flags: O_RDWR,
      priv: {},
    });
    expect(pinOnly).toBe(-EINVAL);
    expect(unpinOnly).toBe(-EINVAL);
    expect(k.warnings.map((w) => w.rule)).toEqual([
      'dmabuf-export-pin-without-unpin',
      'dmabuf-export-pin-without-unpin',
    ]);
    expect(k.dmaBufList.bufs.size).toBe(0);
  });

  it('pin and unpin together export fine', () => {
    // dma_buf_export(): both set passes the pair check.
    const k = boot();
    const buf = dmaBufExport(k, k.dmaBufList, {
      ops: minimalOps({ pin: () => 0, unpin: () => {} }),
      sizeBytes: PAGE,
      flags: O_RDWR,
      priv: {},
    });
    expect(typeof buf).toBe('object');
    expect(k.warnings).toEqual([]);
  });

  it('a minimal ops table exports: listed, fd-installable, released once on the last put', () => {
    // dma_buf_export() → __dma_buf_list_add(); dma_buf_fd() installs the file; the final fput runs
    // dma_buf_file_release (list_del) and dma_buf_release → ops->release exactly once.
    const k = boot();
    const p = k.createProcess({ name: 'exp' });
    let released = 0;
    const buf = dmaBufExport(k, k.dmaBufList, {
      expName: 'test-exporter',
      ops: minimalOps({ release: () => void released++ }),
      sizeBytes: 2 * PAGE,
      flags: O_RDWR,
      priv: { tag: 1 },
    }) as DmaBuf;
    expect(k.dmaBufList.bufs.has(buf)).toBe(true);
    const fd = k.runAs(p, () => dmaBufFd(buf, O_CLOEXEC));
    expect(fd).toBeGreaterThanOrEqual(0);
    const info = fdinfo(p, fd);
    expect(info.get('size')).toBe(String(2 * PAGE));
    expect(info.get('count')).toBe('1');
    expect(info.get('exp_name')).toBe('test-exporter');
    expect(p.lseek(fd, 0, SEEK_END)).toBe(2 * PAGE);
    expect(released).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(released).toBe(1);
    expect(k.dmaBufList.bufs.size).toBe(0);
    expect(k.warnings).toEqual([]);
  });

  it('an exporter without an mmap op makes mmap(2) fail with -EINVAL and leaves no mapping', () => {
    // dma_buf_mmap_internal(): if (!dmabuf->ops->mmap) return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'exp' });
    const buf = dmaBufExport(k, k.dmaBufList, { ops: minimalOps(), sizeBytes: PAGE, flags: O_RDWR, priv: {} });
    const fd = k.runAs(p, () => dmaBufFd(buf as DmaBuf, O_CLOEXEC));
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, PAGE, PROT_READ, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mm.mapCount).toBe(0);
    expect(count(p, fd)).toBe('1');
  });

  it('an exporter without begin/end_cpu_access ops makes every valid SYNC return 0', () => {
    // dma_buf_begin_cpu_access(): the op is called only "if (dmabuf->ops->begin_cpu_access)", then the
    // fence wait; dma_buf_end_cpu_access() likewise. No op is not an error.
    const k = boot();
    const p = k.createProcess({ name: 'exp' });
    const buf = dmaBufExport(k, k.dmaBufList, { ops: minimalOps(), sizeBytes: PAGE, flags: O_RDWR, priv: {} });
    const fd = k.runAs(p, () => dmaBufFd(buf as DmaBuf, O_CLOEXEC));
    for (const rw of [DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW]) {
      expect(sync(p, fd, DMA_BUF_SYNC_START | rw)).toBe(0);
      expect(sync(p, fd, DMA_BUF_SYNC_END | rw)).toBe(0);
    }
  });

  it('the file keeps only O_ACCMODE|O_NONBLOCK of the export flags, and inodes count up from 1', () => {
    // dma_buf_getfile(): flags &= O_ACCMODE | O_NONBLOCK; inode->i_ino = atomic64_inc_return(&dmabuf_inode)
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    const a = dmaBufExport(k, k.dmaBufList, {
      expName: 'exp-a',
      ops: minimalOps(),
      sizeBytes: PAGE,
      flags: O_RDWR | O_NONBLOCK | O_CLOEXEC,
      priv: {},
    }) as DmaBuf;
    const b = dmaBufExport(k, k.dmaBufList, {
      expName: 'exp-b',
      ops: minimalOps(),
      sizeBytes: PAGE,
      flags: O_RDONLY,
      priv: {},
    }) as DmaBuf;
    expect(a.ino).toBe(1);
    expect(b.ino).toBe(2);
    const lines = text(root.readFile(BUFINFO)).split('\n');
    expect(lines.find((l) => l.includes('\texp-a\t'))).toMatch(
      /^00004096\t00000802\t[0-9a-f]{8}\t00000001\texp-a\t00000001\t<none>$/,
    );
    expect(lines.find((l) => l.includes('\texp-b\t'))).toMatch(
      /^00004096\t00000000\t[0-9a-f]{8}\t00000001\texp-b\t00000002\t<none>$/,
    );
  });
});

// ------------------------------------------------------------------------------------------------
describe('references and lifetime (§2.2)', () => {
  it('a buffer survives close(fd) while mmapped; its pages return only after munmap', () => {
    // A VMA holds vma->vm_file (a file reference), so dma_buf_release runs on the last fput: munmap.
    const k = boot();
    const p = k.createProcess({ name: 'life' });
    const total = systemArena(k)?.totalPages;
    const released: number[] = [];
    k.channels.subscribe('kernel:dmabuf:release', (m) => released.push(m.ino));
    const fd = alloc(p, 64 * KiB);
    const addr = mmapOk(p, fd, 64 * KiB);
    expect(p.writeMem(addr + 5 * PAGE, filled(PAGE, 0x5c))).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(1);
    expect(released).toEqual([]);
    expect(systemArena(k)?.freePages).toBe((total ?? 0) - 16);
    expect(read(p, addr + 5 * PAGE, PAGE)).toEqual(filled(PAGE, 0x5c));
    expect(p.writeMem(addr, filled(16, 1))).toBe(0);
    expect(p.munmap(addr, 64 * KiB)).toBe(0);
    expect(released).toEqual([1]);
    expect(k.dmaBufList.bufs.size).toBe(0);
    expect(systemArena(k)?.freePages).toBe(total);
  });

  it("a dup'd fd keeps the buffer alive after the original fd is closed", () => {
    // dup() shares the struct file (get_file); release needs every reference gone.
    const k = boot();
    const p = k.createProcess({ name: 'dup' });
    const fd = alloc(p, PAGE);
    const fd2 = p.dup(fd);
    expect(fd2).toBeGreaterThanOrEqual(0);
    expect(fd2).not.toBe(fd);
    expect(p.close(fd)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(1);
    expect(p.lseek(fd2, 0, SEEK_END)).toBe(PAGE);
    expect(count(p, fd2)).toBe('1');
    expect(p.close(fd2)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(0);
  });

  it('fdinfo count follows every reference: fds, VMAs and an importer', () => {
    // dma_buf_show_fdinfo(): count = file_count(dmabuf->file) - 1 (procfs' own temporary reference
    // excluded), i.e. exactly the references userspace and importers hold.
    const k = boot();
    const p = k.createProcess({ name: 'refs' });
    const fd = alloc(p, 2 * PAGE);
    expect(count(p, fd)).toBe('1');
    const fd2 = p.dup(fd);
    expect(count(p, fd)).toBe('2');
    const addr = mmapOk(p, fd, 2 * PAGE);
    expect(count(p, fd)).toBe('3');
    const { drm, handle } = importVgem(p, fd); // dma_buf_get() in drm_gem_prime_fd_to_handle
    expect(count(p, fd)).toBe('4');
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle, pad: 0 })).toBe(0);
    expect(count(p, fd)).toBe('3');
    expect(p.munmap(addr, 2 * PAGE)).toBe(0);
    expect(count(p, fd)).toBe('2');
    expect(p.close(fd2)).toBe(0);
    expect(count(p, fd)).toBe('1');
  });

  it('an importer reference alone keeps the buffer; closing the DRM file drops it', () => {
    // drm_gem_prime_import holds the dma_buf_get reference until the GEM object goes.
    const k = boot();
    const p = k.createProcess({ name: 'imp' });
    const fd = alloc(p, PAGE);
    const { drm } = importVgem(p, fd);
    expect(p.close(fd)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(1);
    expect(p.close(drm)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(0);
    expect(k.warnings).toEqual([]);
  });

  it('process exit drops fds, mappings and imports, and every page comes back', () => {
    // do_exit → exit_mmap (fput per VMA) and exit_files (fput per fd).
    const k = boot();
    const p = k.createProcess({ name: 'exit' });
    const a = alloc(p, 64 * KiB);
    mmapOk(p, a, 64 * KiB);
    const b = alloc(p, 8 * PAGE, 'default_cma_region');
    mmapOk(p, b, 8 * PAGE);
    importVgem(p, b);
    alloc(p, 3 * PAGE, 'carveout');
    expect(k.dmaBufList.bufs.size).toBe(3);
    p.exit();
    expect(k.dmaBufList.bufs.size).toBe(0);
    for (const arena of k.memoryUsage()) expect(arena.freePages, arena.arena).toBe(arena.totalPages);
    expect(k.warnings).toEqual([]);
  });

  it('dma_buf_get: a bad fd is -EBADF, a file that is not a dma-buf is -EINVAL', () => {
    // dma_buf_get(): fget fails → -EBADF; !is_dma_buf_file → -EINVAL (reached through vgem's import).
    const k = boot();
    const p = k.createProcess({ name: 'get' });
    const drm = p.open('/dev/dri/card0', O_RDWR);
    const nul = p.open('/dev/null', O_RDWR);
    expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, { fd: 77, flags: 0, handle: 0 })).toBe(-EBADF);
    expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, { fd: nul, flags: 0, handle: 0 })).toBe(-EINVAL);
  });
});

// ------------------------------------------------------------------------------------------------
describe('DMA_BUF_SET_NAME (§2.3, A3)', () => {
  it('SET_NAME_A (_IOW b,1,u32) names the buffer in fdinfo, the fd link and bufinfo', () => {
    // dma_buf_ioctl(): case DMA_BUF_SET_NAME_A: case DMA_BUF_SET_NAME_B: dma_buf_set_name()
    const k = boot();
    const p = k.createProcess({ name: 'nm', uid: 0 });
    const fd = alloc(p, PAGE);
    expect(DMA_BUF_SET_NAME_A).toBe(0x40046201);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME_A, 'camera-a')).toBe(0);
    expect(fdinfo(p, fd).get('name')).toBe('camera-a');
    expect(p.fdLink(fd)).toBe('/dmabuf:camera-a');
    expect(text(p.readFile(BUFINFO))).toContain('\tsystem\t00000001\tcamera-a\n');
  });

  it('SET_NAME_B (_IOW b,1,u64, the 64-bit DMA_BUF_SET_NAME) names the buffer too', () => {
    // dma_buf_ioctl(): both command numbers reach dma_buf_set_name().
    const k = boot();
    const p = k.createProcess({ name: 'nm', uid: 0 });
    const fd = alloc(p, PAGE);
    expect(DMA_BUF_SET_NAME_B).toBe(0x40086201);
    expect(DMA_BUF_SET_NAME).toBe(DMA_BUF_SET_NAME_B);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME_B, 'camera-b')).toBe(0);
    expect(fdinfo(p, fd).get('name')).toBe('camera-b');
    expect(p.fdLink(fd)).toBe('/dmabuf:camera-b');
    expect(text(p.readFile(BUFINFO))).toContain('\tsystem\t00000001\tcamera-b\n');
  });

  it('31 visible characters fit; 32 are -EINVAL and keep the old name', () => {
    // strndup_user(buf, DMA_BUF_NAME_LEN=32): a string whose length with its NUL exceeds 32 → -EINVAL.
    const k = boot();
    const p = k.createProcess({ name: 'nm' });
    const fd = alloc(p, PAGE);
    const n31 = 'n'.repeat(31);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, n31)).toBe(0);
    expect(fdinfo(p, fd).get('name')).toBe(n31);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, 'x'.repeat(32))).toBe(-EINVAL);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, 'x'.repeat(200))).toBe(-EINVAL);
    expect(fdinfo(p, fd).get('name')).toBe(n31);
  });

  it('the 32-byte limit counts bytes of the user string, not characters', () => {
    // strndup_user works on the byte string userspace passes (UTF-8 here): 'é' is two bytes.
    const k = boot();
    const p = k.createProcess({ name: 'nm' });
    const fd = alloc(p, PAGE);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, 'é'.repeat(16))).toBe(-EINVAL); // 32 bytes
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, `${'é'.repeat(15)}a`)).toBe(0); // 31 bytes
    expect(fdinfo(p, fd).get('name')).toBe(`${'é'.repeat(15)}a`);
  });

  it('a non-string or null argument is -EFAULT and leaves the name unset', () => {
    // strndup_user(): strnlen_user/copy_from_user on a bad user pointer → -EFAULT.
    const k = boot();
    const p = k.createProcess({ name: 'nm' });
    const fd = alloc(p, PAGE);
    for (const bad of [null, undefined, 42, { name: 'x' }, ['x']]) {
      expect(p.ioctl(fd, DMA_BUF_SET_NAME, bad), String(bad)).toBe(-EFAULT);
    }
    expect(fdinfo(p, fd).has('name')).toBe(false);
    expect(p.fdLink(fd)).toBe('/dmabuf:');
  });

  it('renaming is allowed repeatedly, also while a device is attached (no -EBUSY since v5.16)', () => {
    // dma_buf_set_name(): kfree the old name, store the new one; the attachment check was removed (V3).
    const k = boot();
    const p = k.createProcess({ name: 'nm' });
    const fd = alloc(p, PAGE);
    for (const name of ['one', 'two', 'three']) {
      expect(p.ioctl(fd, DMA_BUF_SET_NAME, name)).toBe(0);
      expect(fdinfo(p, fd).get('name')).toBe(name);
    }
    importVgem(p, fd);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME_A, 'attached')).toBe(0);
    expect(p.fdLink(fd)).toBe('/dmabuf:attached');
  });

  it("an empty name returns 0: fdinfo shows 'name:\\t' empty, the link is '/dmabuf:', bufinfo an empty name", () => {
    // §11 A3: dmabuf->name = "" counts as set (dma_buf_show_fdinfo: if (dmabuf->name) ...);
    // dmabuffs_dname prints "/%s:%s" with the empty name; bufinfo prints name ?: "<none>" → "".
    const k = boot();
    const p = k.createProcess({ name: 'nm', uid: 0 });
    const fd = alloc(p, PAGE);
    expect(fdinfo(p, fd).has('name')).toBe(false);
    expect(text(p.readFile(BUFINFO))).toContain('\t00000001\t<none>\n');
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, 'temp')).toBe(0);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, '')).toBe(0);
    const raw = text(p.readFile(`/proc/self/fdinfo/${fd}`));
    expect(raw.endsWith('exp_name:\tsystem\nname:\t\n')).toBe(true);
    expect(p.fdLink(fd)).toBe('/dmabuf:');
    const bufinfo = text(p.readFile(BUFINFO));
    expect(bufinfo).toContain('\tsystem\t00000001\t\n');
    expect(bufinfo).not.toContain('<none>');
  });
});

// ------------------------------------------------------------------------------------------------
describe('DMA_BUF_IOCTL_SYNC (§2.3, A4)', () => {
  it('START and END with READ, WRITE or RW all return 0', () => {
    // dma_buf_ioctl(): direction from flags & RW, END → end_cpu_access, else begin_cpu_access; heaps return 0.
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    expect(DMA_BUF_IOCTL_SYNC).toBe(0x40086200);
    for (const rw of [DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW]) {
      expect(sync(p, fd, DMA_BUF_SYNC_START | rw)).toBe(0);
      expect(sync(p, fd, DMA_BUF_SYNC_END | rw)).toBe(0);
    }
  });

  it('flags outside the 0x7 mask are -EINVAL, including bits above 32', () => {
    // dma_buf_ioctl(): if (sync.flags & ~DMA_BUF_SYNC_VALID_FLAGS_MASK) return -EINVAL; (flags is __u64)
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    for (const flags of [8, 0x9, 0x10, 0xff, 0xffffffff, (1n << 32n) | 1n, (1n << 63n) | 3n]) {
      expect(sync(p, fd, flags), String(flags)).toBe(-EINVAL);
    }
  });

  it('START or END without READ or WRITE is -EINVAL', () => {
    // dma_buf_ioctl(): switch (flags & DMA_BUF_SYNC_RW) { ... default: return -EINVAL; }
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    expect(sync(p, fd, DMA_BUF_SYNC_START)).toBe(-EINVAL);
    expect(sync(p, fd, DMA_BUF_SYNC_END)).toBe(-EINVAL);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, {})).toBe(-EINVAL);
  });

  it('a null or non-struct argument is -EFAULT', () => {
    // dma_buf_ioctl(): copy_from_user(&sync, arg, sizeof(sync)) fails → -EFAULT.
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, null)).toBe(-EFAULT);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, undefined)).toBe(-EFAULT);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, 5)).toBe(-EFAULT);
  });

  it('a wrongly sized SYNC command (_IOW b,0,16) is -ENOTTY', () => {
    // §11 A4: dma_buf_ioctl() switches on the whole command number; _IOW('b',0,16) matches no case.
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    const arg = { flags: DMA_BUF_SYNC_READ };
    expect(p.ioctl(fd, _IOW('b', 0, 16), arg)).toBe(-ENOTTY);
    expect(p.ioctl(fd, _IOW('b', 0, 4), arg)).toBe(-ENOTTY);
    expect(p.ioctl(fd, _IOWR('b', 0, 8), arg)).toBe(-ENOTTY);
  });

  it('END without START, a double START and mismatched directions are accepted', () => {
    // §2.3: the kernel keeps no START/END state; dma_buf_ioctl just calls begin/end_cpu_access.
    const k = boot();
    const p = k.createProcess({ name: 'sync' });
    const fd = alloc(p, PAGE);
    importVgem(p, fd); // a mapped attachment, so the heap really does maintenance
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(k.warnings).toEqual([]);
  });

  it('an unknown dma-buf ioctl is -ENOTTY', () => {
    // dma_buf_ioctl(): default: return -ENOTTY;
    const k = boot();
    const p = k.createProcess({ name: 'ioctl' });
    const fd = alloc(p, PAGE);
    expect(p.ioctl(fd, _IOW('b', 9, 8), { flags: 0 })).toBe(-ENOTTY);
    expect(p.ioctl(fd, _IO('b', 0))).toBe(-ENOTTY);
    expect(p.ioctl(fd, DMA_HEAP_IOCTL_ALLOC, { len: PAGE, fd: 0, fd_flags: O_RDWR, heap_flags: 0 })).toBe(-ENOTTY);
    expect(p.ioctl(fd, 0)).toBe(-ENOTTY);
    expect(DMA_BUF_IOCTL_EXPORT_SYNC_FILE).toBe(0xc0086202);
  });
});

// ------------------------------------------------------------------------------------------------
describe('llseek (§2.6, A2)', () => {
  it('SEEK_END with offset 0 returns the size; SEEK_SET with offset 0 returns 0', () => {
    // dma_buf_llseek(): base = size (SEEK_END) or 0 (SEEK_SET); return base + offset.
    const k = boot();
    const p = k.createProcess({ name: 'seek' });
    const fd = alloc(p, 3 * PAGE);
    expect(p.lseek(fd, 0, SEEK_END)).toBe(3 * PAGE);
    expect(p.lseek(fd, 0, SEEK_SET)).toBe(0);
    expect(p.lseek(fd, 0, SEEK_END)).toBe(3 * PAGE);
  });

  it('SEEK_CUR (and any other whence) is -EINVAL', () => {
    // dma_buf_llseek(): else return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'seek' });
    const fd = alloc(p, PAGE);
    expect(p.lseek(fd, 0, SEEK_CUR)).toBe(-EINVAL);
    expect(p.lseek(fd, 0, 3)).toBe(-EINVAL);
    expect(p.lseek(fd, 0, 4)).toBe(-EINVAL);
  });

  it('a non-zero offset is -EINVAL', () => {
    // dma_buf_llseek(): if (offset != 0) return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'seek' });
    const fd = alloc(p, 2 * PAGE);
    expect(p.lseek(fd, 1, SEEK_SET)).toBe(-EINVAL);
    expect(p.lseek(fd, -PAGE, SEEK_END)).toBe(-EINVAL);
    expect(p.lseek(fd, PAGE, SEEK_END)).toBe(-EINVAL);
  });

  it('the heap device fd is not seekable (-ESPIPE)', () => {
    // §11 A2: dma_heap_fops has no llseek and the heap is opened nonseekable.
    const k = boot();
    const p = k.createProcess({ name: 'seek' });
    const heapFd = p.open('/dev/dma_heap/system', O_RDWR);
    expect(p.lseek(heapFd, 0, SEEK_END)).toBe(-ESPIPE);
    expect(p.lseek(heapFd, 0, SEEK_SET)).toBe(-ESPIPE);
  });
});

// ------------------------------------------------------------------------------------------------
describe('mmap (§2.6, A1, A2)', () => {
  it('the offset is in pages; partial and offset MAP_SHARED mappings see the right bytes', () => {
    // dma_buf_mmap_internal() passes vma->vm_pgoff (offset >> PAGE_SHIFT) to the exporter, which maps
    // page pgoff of the buffer at vm_start (system_heap_mmap walks the sg table from vm_pgoff).
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, 4 * PAGE);
    const full = mmapOk(p, fd, 4 * PAGE);
    for (let i = 0; i < 4; i++) expect(p.writeMem(full + i * PAGE, filled(PAGE, 0x10 + i))).toBe(0);
    const tail = mmapOk(p, fd, 2 * PAGE, RW, MAP_SHARED, 2 * PAGE);
    expect(read(p, tail, PAGE)).toEqual(filled(PAGE, 0x12));
    expect(read(p, tail + PAGE, PAGE)).toEqual(filled(PAGE, 0x13));
    const head = mmapOk(p, fd, PAGE, PROT_READ, MAP_SHARED, 0);
    expect(read(p, head, PAGE)).toEqual(filled(PAGE, 0x10));
    const one = mmapOk(p, fd, 100, PROT_READ, MAP_SHARED, 1 * PAGE); // length rounds up to a page
    expect(read(p, one, PAGE)).toEqual(filled(PAGE, 0x11));
    expect(p.writeMem(tail + PAGE + 7, Uint8Array.of(0xee))).toBe(0);
    expect(read(p, full + 3 * PAGE + 7, 1)).toEqual(Uint8Array.of(0xee));
  });

  it('pgoff + pages beyond the buffer is -EINVAL; exactly up to the end is fine', () => {
    // dma_buf_mmap_internal(): if (vma->vm_pgoff + vma_pages(vma) > dmabuf->size >> PAGE_SHIFT) -EINVAL
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, 4 * PAGE);
    expect(p.mmap(fd, 2 * PAGE, RW, MAP_SHARED, 3 * PAGE)).toBe(-EINVAL);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED, 4 * PAGE)).toBe(-EINVAL);
    expect(p.mmap(fd, 5 * PAGE, RW, MAP_SHARED, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, 4 * PAGE + 1, RW, MAP_SHARED, 0)).toBe(-EINVAL); // rounds up to 5 pages
    expect(p.mm.mapCount).toBe(0);
    expect(count(p, fd)).toBe('1');
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED, 3 * PAGE)).toBeGreaterThan(0);
    expect(p.mmap(fd, 4 * PAGE, RW, MAP_SHARED, 0)).toBeGreaterThan(0);
  });

  it('an offset that is not page aligned is -EINVAL', () => {
    // arch sys_mmap: if (offset_in_page(off) != 0) return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, 4 * PAGE);
    for (const off of [1, 2048, PAGE + 1, PAGE - 1]) expect(p.mmap(fd, PAGE, RW, MAP_SHARED, off)).toBe(-EINVAL);
  });

  it('a zero length is -EINVAL', () => {
    // do_mmap(): if (!len) return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE);
    expect(p.mmap(fd, 0, RW, MAP_SHARED, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, 0, PROT_READ, MAP_PRIVATE, 0)).toBe(-EINVAL);
  });

  it('a bad fd is -EBADF', () => {
    // ksys_mmap_pgoff(): file = fget(fd); if (!file) return -EBADF;
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE);
    expect(p.close(fd)).toBe(0);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED, 0)).toBe(-EBADF);
    expect(p.mmap(999, PAGE, RW, MAP_SHARED, 0)).toBe(-EBADF);
    expect(p.mmap(-1, PAGE, RW, MAP_SHARED, 0)).toBe(-EBADF);
  });

  it('flags with neither MAP_SHARED nor MAP_PRIVATE are -EINVAL', () => {
    // do_mmap(): switch (flags & MAP_TYPE) { ... default: return -EINVAL; }
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE);
    expect(p.mmap(fd, PAGE, RW, 0, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, PAGE, RW, 0x0f, 0)).toBe(-EINVAL);
  });

  it('MAP_SHARED_VALIDATE with an unknown flag is -EOPNOTSUPP; plain MAP_SHARED ignores it', () => {
    // do_mmap(): case MAP_SHARED_VALIDATE: if (flags & ~flags_mask) return -EOPNOTSUPP;
    // MAP_SHARED keeps the legacy behaviour of ignoring unknown bits.
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED_VALIDATE | 0x8000000, 0)).toBe(-EOPNOTSUPP);
    expect(p.mm.mapCount).toBe(0);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED | 0x8000000, 0)).toBeGreaterThan(0);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED_VALIDATE, 0)).toBeGreaterThan(0);
  });

  it('mmap of /dev/null is -ENODEV', () => {
    // do_mmap(): if (!file->f_op->mmap) return -ENODEV; (null_fops has no mmap)
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const nul = p.open('/dev/null', O_RDWR);
    expect(p.mmap(nul, PAGE, PROT_READ, MAP_SHARED, 0)).toBe(-ENODEV);
    expect(p.mmap(nul, PAGE, PROT_READ, MAP_PRIVATE, 0)).toBe(-ENODEV);
  });

  it('PROT_WRITE with MAP_SHARED on a read-only buffer is -EACCES; read-only and private mappings work', () => {
    // do_mmap(): MAP_SHARED: if ((prot & PROT_WRITE) && !(file->f_mode & FMODE_WRITE)) return -EACCES;
    // MAP_PRIVATE only needs FMODE_READ (a private write is copy-on-write).
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE, 'system', O_RDONLY | O_CLOEXEC);
    expect(p.mmap(fd, PAGE, RW, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, PAGE, PROT_WRITE, MAP_SHARED_VALIDATE, 0)).toBe(-EACCES);
    const ro = mmapOk(p, fd, PAGE, PROT_READ, MAP_SHARED);
    expect(read(p, ro, 8)).toEqual(new Uint8Array(8));
    const priv = mmapOk(p, fd, PAGE, RW, MAP_PRIVATE);
    expect(p.writeMem(priv, filled(8, 0x44))).toBe(0);
    expect(read(p, ro, 8)).toEqual(new Uint8Array(8));
  });

  it('a buffer allocated O_WRONLY cannot be mmapped at all (-EACCES)', () => {
    // §11 A2: do_mmap() requires FMODE_READ for every mapping type.
    const k = boot();
    const p = k.createProcess({ name: 'map' });
    const fd = alloc(p, PAGE, 'system', O_WRONLY | O_CLOEXEC);
    expect(p.mmap(fd, PAGE, PROT_READ, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, PAGE, PROT_WRITE, MAP_SHARED, 0)).toBe(-EACCES);
    expect(p.mmap(fd, PAGE, PROT_READ, MAP_PRIVATE, 0)).toBe(-EACCES);
  });

  it('a heap fd opened O_RDONLY can still allocate', () => {
    // §11 A2: dma_heap_ioctl() does not look at the heap file's mode.
    const k = boot();
    const p = k.createProcess({ name: 'heap' });
    const heapFd = p.open('/dev/dma_heap/system', O_RDONLY);
    const a: Record<string, unknown> = { len: PAGE, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
    expect(p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, a)).toBe(0);
    expect(p.lseek(a.fd as number, 0, SEEK_END)).toBe(PAGE);
  });

  it('A1: a one-page MAP_PRIVATE of the system heap works, and its writes never reach the buffer', () => {
    // §11 A1: system_heap_mmap (6.12) does remap_pfn_range per page; on a COW mapping that is only legal
    // when it covers the whole VMA, i.e. a one-page VMA. A write faults a private copy (do_wp_page).
    const k = boot();
    const p = k.createProcess({ name: 'a1' });
    const fd = alloc(p, 4 * PAGE);
    const { drm, handle } = importVgem(p, fd);
    expect(k.vgem.dmaWrite(p, drm, handle, PAGE, filled(PAGE, 0x5a))).toBe(0);
    const priv = mmapOk(p, fd, PAGE, RW, MAP_PRIVATE, PAGE);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(read(p, priv, PAGE)).toEqual(filled(PAGE, 0x5a)); // before COW it reads the buffer's page
    expect(p.writeMem(priv, filled(PAGE, 0xab))).toBe(0);
    expect(read(p, priv, PAGE)).toEqual(filled(PAGE, 0xab));
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW)).toBe(0);
    expect(devRead(k, p, drm, handle, PAGE, PAGE)).toEqual(filled(PAGE, 0x5a));
    const shared = mmapOk(p, fd, 4 * PAGE);
    expect(read(p, shared + PAGE, PAGE)).toEqual(filled(PAGE, 0x5a));
  });

  it.each([
    ['2 pages', 2 * PAGE, 2 * PAGE],
    ['64 KiB (one order-4 chunk)', 64 * KiB, 64 * KiB],
    ['1 MiB (one order-8 chunk)', MiB, MiB],
    ['2 MiB', 2 * MiB, 2 * MiB],
    ['2 pages of a 64 KiB buffer', 64 * KiB, 2 * PAGE],
  ])('A1: a system-heap MAP_PRIVATE of %s is -EINVAL', (_what, bufLen, mapLen) => {
    // §11 A1: remap_pfn_range(): if (is_cow_mapping(vm_flags)) and the range is not the whole VMA → -EINVAL.
    // MAP_PRIVATE keeps VM_MAYWRITE even with PROT_READ, so a read-only private mapping is COW too.
    const k = boot();
    const p = k.createProcess({ name: 'a1' });
    const fd = alloc(p, bufLen);
    expect(p.mmap(fd, mapLen, RW, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, mapLen, PROT_READ, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mm.mapCount).toBe(0);
    expect(count(p, fd)).toBe('1');
  });

  it('the CMA heap refuses MAP_PRIVATE (-EINVAL) and maps MAP_SHARED', () => {
    // cma_heap_mmap(): if ((vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) == 0) return -EINVAL;
    const k = boot();
    const p = k.createProcess({ name: 'cma' });
    const fd = alloc(p, 2 * PAGE, 'default_cma_region');
    expect(p.mmap(fd, PAGE, RW, MAP_PRIVATE, 0)).toBe(-EINVAL);
    expect(p.mmap(fd, 2 * PAGE, PROT_READ, MAP_PRIVATE, 0)).toBe(-EINVAL);
    const addr = mmapOk(p, fd, 2 * PAGE);
    expect(p.writeMem(addr + PAGE, filled(4, 9))).toBe(0);
    expect(read(p, addr + PAGE, 4)).toEqual(filled(4, 9));
  });

  it('the carveout heap allows multi-page MAP_PRIVATE; private writes stay private', () => {
    // carveout-heap.ts: one remap_pfn_range over the whole VMA, which is legal on a COW mapping.
    const k = boot();
    const p = k.createProcess({ name: 'carve' });
    const fd = alloc(p, 4 * PAGE, 'carveout');
    const { drm, handle } = importVgem(p, fd);
    expect(k.vgem.dmaWrite(p, drm, handle, 0, filled(4 * PAGE, 0x3c))).toBe(0);
    const priv = mmapOk(p, fd, 3 * PAGE, RW, MAP_PRIVATE, PAGE);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(read(p, priv, 3 * PAGE)).toEqual(filled(3 * PAGE, 0x3c));
    expect(p.writeMem(priv + PAGE, filled(PAGE, 0xee))).toBe(0);
    expect(read(p, priv + PAGE, PAGE)).toEqual(filled(PAGE, 0xee));
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW)).toBe(0);
    expect(devRead(k, p, drm, handle, 2 * PAGE, PAGE)).toEqual(filled(PAGE, 0x3c));
    const shared = mmapOk(p, fd, 4 * PAGE, PROT_READ);
    expect(read(p, shared + 2 * PAGE, PAGE)).toEqual(filled(PAGE, 0x3c));
  });

  it('a write through a PROT_READ mapping is -EFAULT with SIGSEGV, and nothing is written', () => {
    // do_user_addr_fault → access_error (no VM_WRITE) → SIGSEGV (SEGV_ACCERR).
    const k = boot();
    const p = k.createProcess({ name: 'segv' });
    const signals = signalsOf(k);
    const fd = alloc(p, PAGE);
    const ro = mmapOk(p, fd, PAGE, PROT_READ);
    expect(p.writeMem(ro + 16, filled(4, 0xff))).toBe(-EFAULT);
    expect(signals).toHaveLength(1);
    expect(signals[0]).toMatchObject({ pid: p.pid, signal: 'SIGSEGV', address: ro + 16 });
    expect(read(p, ro + 16, 4)).toEqual(new Uint8Array(4));
    expect(signals).toHaveLength(1);
  });

  it('reading an unmapped address, or past the end of a mapping, is -EFAULT with SIGSEGV', () => {
    // do_user_addr_fault: no VMA covers the address → bad_area → SIGSEGV (SEGV_MAPERR).
    const k = boot();
    const p = k.createProcess({ name: 'segv' });
    const signals = signalsOf(k);
    const fd = alloc(p, 2 * PAGE);
    const addr = mmapOk(p, fd, PAGE, RW);
    expect(p.readMem(0x1000, 4)).toBe(-EFAULT);
    expect(p.readMem(addr + PAGE - 2, 4)).toBe(-EFAULT); // the second page of the buffer is not mapped
    expect(signals.map((s) => [s.signal, s.address])).toEqual([
      ['SIGSEGV', 0x1000],
      ['SIGSEGV', addr + PAGE],
    ]);
  });

  it('munmap of the middle leaves head and tail usable, the middle faulting, and a ref per piece', () => {
    // __split_vma() gives the new VMA its own get_file(); unmapping the middle keeps both ends mapped
    // with the tail's vm_pgoff advanced.
    const k = boot();
    const p = k.createProcess({ name: 'split' });
    const signals = signalsOf(k);
    const fd = alloc(p, 3 * PAGE);
    const addr = mmapOk(p, fd, 3 * PAGE);
    for (let i = 0; i < 3; i++) expect(p.writeMem(addr + i * PAGE, filled(PAGE, 0x70 + i))).toBe(0);
    expect(count(p, fd)).toBe('2');
    expect(p.munmap(addr + PAGE, PAGE)).toBe(0);
    expect(count(p, fd)).toBe('3');
    expect(p.mm.mapCount).toBe(2);
    expect(read(p, addr, PAGE)).toEqual(filled(PAGE, 0x70));
    expect(read(p, addr + 2 * PAGE, PAGE)).toEqual(filled(PAGE, 0x72));
    expect(p.readMem(addr + PAGE, 1)).toBe(-EFAULT);
    expect(p.writeMem(addr + PAGE + 100, Uint8Array.of(1))).toBe(-EFAULT);
    expect(signals.map((s) => [s.signal, s.address])).toEqual([
      ['SIGSEGV', addr + PAGE],
      ['SIGSEGV', addr + PAGE + 100],
    ]);
    expect(p.writeMem(addr + 2 * PAGE, Uint8Array.of(0xaa))).toBe(0);
    const check = mmapOk(p, fd, PAGE, PROT_READ, MAP_SHARED, 2 * PAGE);
    expect(read(p, check, 2)).toEqual(Uint8Array.of(0xaa, 0x72));
    expect(read(p, check, PAGE).subarray(1)).toEqual(filled(PAGE - 1, 0x72));
    expect(p.munmap(addr, 3 * PAGE)).toBe(0);
    expect(p.munmap(check, PAGE)).toBe(0);
    expect(count(p, fd)).toBe('1');
    expect(p.mm.mapCount).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
describe('fdinfo (§2.6)', () => {
  it('prints size, count and exp_name in that order, and no name line until one is set', () => {
    // dma_buf_show_fdinfo(): "size:\t%zu\n" "count:\t%ld\n" "exp_name:\t%s\n" [ "name:\t%s\n" ]
    const k = boot();
    const p = k.createProcess({ name: 'fdi' });
    const fd = alloc(p, 3 * PAGE, 'default_cma_region');
    const raw = text(p.readFile(`/proc/self/fdinfo/${fd}`));
    expect(raw.endsWith(`size:\t${3 * PAGE}\ncount:\t1\nexp_name:\tdefault_cma_region\n`)).toBe(true);
    expect(p.ioctl(fd, DMA_BUF_SET_NAME, 'frame')).toBe(0);
    const named = text(p.readFile(`/proc/self/fdinfo/${fd}`));
    expect(named.endsWith(`size:\t${3 * PAGE}\ncount:\t1\nexp_name:\tdefault_cma_region\nname:\tframe\n`)).toBe(true);
  });

  it("fdinfo's ino is the dma-buf inode number that bufinfo shows", () => {
    // dma_buf_getfile(): inode->i_ino = atomic64_inc_return(&dmabuf_inode); procfs fdinfo prints
    // file_inode(file)->i_ino and dma_buf_debug_show prints the same i_ino.
    const k = boot();
    const p = k.createProcess({ name: 'fdi', uid: 0 });
    p.open('/dev/null', O_RDWR); // other files must not shift the dma-buf inode numbers
    const a = alloc(p, PAGE);
    const b = alloc(p, 2 * PAGE);
    expect(fdinfo(p, a).get('ino')).toBe('1');
    expect(fdinfo(p, b).get('ino')).toBe('2');
    expect(text(p.readFile(BUFINFO))).toMatch(/^00008192\t00000002\t[0-9a-f]{8}\t00000001\tsystem\t00000002\t<none>$/m);
  });
});

// ------------------------------------------------------------------------------------------------
describe('debugfs bufinfo (§2.9)', () => {
  it('with no buffers it is the header and a zero total', () => {
    // dma_buf_debug_show(): header seq_puts/seq_printf, then "\nTotal %d objects, %zu bytes\n".
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    expect(text(root.readFile(BUFINFO))).toBe(`${HEADER}\nTotal 0 objects, 0 bytes\n`);
  });

  it('one unnamed, unattached buffer: zero-padded fields, <none>, no devices', () => {
    // dma_buf_debug_show(): "%08zu\t%08x\t%08x\t%08ld\t%s\t%08lu\t%s\n" with name ?: "<none>"
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    alloc(root, 64 * KiB);
    const s = text(root.readFile(BUFINFO));
    const mode = /\n00065536\t00000002\t([0-9a-f]{8})\t/.exec(s)?.[1] ?? 'missing';
    expect(s).toBe(
      `${HEADER}00065536\t00000002\t${mode}\t00000001\tsystem\t00000001\t<none>\n` +
        '\tAttached Devices:\nTotal 0 devices attached\n\n' +
        '\nTotal 1 objects, 65536 bytes\n',
    );
    expect(Number.parseInt(mode, 16) & 0x3).toBe(0x3); // FMODE_READ | FMODE_WRITE
  });

  it("a named buffer imported by vgem lists 'vgem' under Attached Devices and counts the import", () => {
    // dma_buf_debug_show(): "\tAttached Devices:\n", "\t%s\n" per attachment (dev_name),
    // "Total %d devices attached\n\n"; file_count includes vgem's dma_buf_get reference.
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    const fd = alloc(root, 2 * PAGE, 'default_cma_region');
    expect(root.ioctl(fd, DMA_BUF_SET_NAME, 'preview')).toBe(0);
    importVgem(root, fd);
    const s = text(root.readFile(BUFINFO));
    const mode = /\n00008192\t00000002\t([0-9a-f]{8})\t/.exec(s)?.[1] ?? 'missing';
    expect(s).toBe(
      `${HEADER}00008192\t00000002\t${mode}\t00000002\tdefault_cma_region\t00000001\tpreview\n` +
        '\tAttached Devices:\n\tvgem\nTotal 1 devices attached\n\n' +
        '\nTotal 1 objects, 8192 bytes\n',
    );
  });

  it('two importers are both listed, and the totals cover every live buffer', () => {
    // dma_buf_debug_show(): one "\t%s\n" per attachment; count++ and size += buf_obj->size per buffer.
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    const a = alloc(root, 64 * KiB);
    const b = alloc(root, 3 * PAGE, 'carveout', O_RDONLY | O_CLOEXEC);
    const c = alloc(root, PAGE, 'system-uncached');
    importVgem(root, a);
    importVgem(root, a); // a second DRM file: a second attachment
    const s = text(root.readFile(BUFINFO));
    expect(s).toMatch(
      /\n00065536\t00000002\t[0-9a-f]{8}\t00000003\tsystem\t00000001\t<none>\n\tAttached Devices:\n\tvgem\n\tvgem\nTotal 2 devices attached\n\n/,
    );
    const bMode = /\n00012288\t00000000\t([0-9a-f]{8})\t00000001\tcarveout\t00000002\t<none>\n/.exec(s)?.[1] ?? '';
    expect(Number.parseInt(bMode, 16) & 0x3).toBe(0x1); // FMODE_READ only
    expect(s).toMatch(/\n00004096\t00000002\t[0-9a-f]{8}\t00000001\tsystem-uncached\t00000003\t<none>\n/);
    expect(s.endsWith(`\nTotal 3 objects, ${64 * KiB + 3 * PAGE + PAGE} bytes\n`)).toBe(true);
    expect(root.close(b)).toBe(0);
    expect(root.close(c)).toBe(0);
    expect(text(root.readFile(BUFINFO)).endsWith(`\nTotal 1 objects, ${64 * KiB} bytes\n`)).toBe(true);
  });

  it('lists buffers newest first (dmabuf_list is filled with list_add)', () => {
    // __dma_buf_list_add(): list_add(&dmabuf->list_node, &dmabuf_list) inserts at the head, and
    // dma_buf_debug_show() walks the list from the head.
    const k = boot();
    const root = k.createProcess({ name: 'root', uid: 0 });
    alloc(root, PAGE);
    alloc(root, 2 * PAGE);
    alloc(root, 3 * PAGE);
    const inos = [
      ...text(root.readFile(BUFINFO)).matchAll(/^\d{8}\t[0-9a-f]{8}\t[0-9a-f]{8}\t\d{8}\tsystem\t(\d{8})\t/gm),
    ].map((m) => Number(m[1]));
    expect(inos).toEqual([3, 2, 1]);
  });

  it('is root only: an unprivileged reader gets -EACCES', () => {
    // debugfs is mounted with DEBUGFS_DEFAULT_MODE 0700 (fs/debugfs/inode.c), so path lookup below
    // /sys/kernel/debug fails with -EACCES for a non-root task, whatever bufinfo's own 0444 mode.
    const k = boot();
    const user = k.createProcess({ name: 'user', uid: 1000 });
    alloc(user, PAGE);
    expect(user.readFile(BUFINFO)).toBe(-EACCES);
    const root = k.createProcess({ name: 'root', uid: 0 });
    expect(text(root.readFile(BUFINFO))).toContain('Total 1 objects, 4096 bytes');
  });
});
