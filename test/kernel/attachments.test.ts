// dma-buf attachments (kernel-semantics.md §3), the locking convention (§2.8), the cross-object rules of §5
// and vgem as an importer (§11 A10). Importers here are test code calling the kernel-internal API the way a
// driver would; exporters are either a real heap or a mock written below.
import { describe, expect, it } from 'vitest';
import {
  _IOWR,
  type Device,
  DMA_BIDIRECTIONAL,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_FROM_DEVICE,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_TO_DEVICE,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  type DmaBufOps,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_VERSION,
  dmaBufAttach,
  dmaBufBeginCpuAccess,
  dmaBufDetach,
  dmaBufDeviceSpans,
  dmaBufDynamicAttach,
  dmaBufEndCpuAccess,
  dmaBufExport,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufMapAttachmentUnlocked,
  dmaBufMoveNotify,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnmapAttachmentUnlocked,
  dmaBufUnpin,
  dmaResvIsLocked,
  dmaResvLock,
  dmaResvUnlock,
  errno,
  Kernel,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SgTable,
} from '../../src/index.js';
import type { PageRun } from '../../src/kernel/memory.js';
import { BuddyAllocator } from '../../src/kernel/page-alloc.js';

const { EBADF, EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM } = errno;

// --- helpers ----------------------------------------------------------------------------------

function boot(): Kernel {
  return new Kernel({ memory: { systemBytes: 16 << 20, cmaBytes: 16 << 20, carveoutBytes: 16 << 20 } });
}

/** Unwraps a `T | -errno` return, failing the test on an errno. */
function ok<T>(x: T | number, what = 'call'): T {
  if (typeof x === 'number') throw new Error(`${what} failed with ${errno.errnoName(x)}`);
  return x;
}

/** Allocates a buffer from `heap` in `p` and returns its fd. */
function alloc(p: Process, len = 64 << 10, heap = 'system'): number {
  const hfd = p.open(`/dev/dma_heap/${heap}`, O_RDWR);
  expect(hfd).toBeGreaterThanOrEqual(0);
  const a = { len, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  expect(p.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, a)).toBe(0);
  expect(p.close(hfd)).toBe(0);
  return a.fd;
}

/** `dma_buf_get` of one of `p`'s fds, as a driver does inside p's syscall (takes a reference). */
function get(k: Kernel, p: Process, fd: number): DmaBuf {
  return ok(
    k.runAs(p, () => dmaBufGet(k, fd)),
    'dma_buf_get',
  );
}

/** Rules of the warnings raised while `fn` ran. */
function warningsDuring(k: Kernel, fn: () => void): string[] {
  const mark = k.warnings.length;
  fn();
  return k.warnings.slice(mark).map((w) => w.rule);
}

function withLock<T>(dmabuf: DmaBuf, fn: () => T): T {
  expect(dmaResvLock(dmabuf.resv, null)).toBe(0);
  try {
    return fn();
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

function expectNoLeaks(k: Kernel): void {
  expect(k.dmaBufList.bufs.size).toBe(0);
  for (const u of k.memoryUsage()) expect(u, u.arena).toMatchObject({ freePages: u.totalPages });
  for (const h of k.heaps.all()) expect(h.stats, h.name).toMatchObject({ buffers: 0, bytes: 0 });
}

/** A device reads `n` bytes through a mapping, or gets the errno. */
function deviceRead(attach: DmaBufAttachment, sgt: SgTable, offset: number, n: number): Uint8Array | number {
  const spans = dmaBufDeviceSpans(attach, sgt, offset, n, 'read');
  if (typeof spans === 'number') return spans;
  const out = new Uint8Array(n);
  let at = 0;
  for (const s of spans) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

function deviceWrite(attach: DmaBufAttachment, sgt: SgTable, offset: number, data: Uint8Array): number {
  const spans = dmaBufDeviceSpans(attach, sgt, offset, data.length, 'write');
  if (typeof spans === 'number') return spans;
  let at = 0;
  for (const s of spans) {
    s.set(data.subarray(at, at + s.length));
    at += s.length;
  }
  return 0;
}

/** Attachment ids, so a failing comparison prints numbers rather than whole kernels. */
function ids(list: readonly DmaBufAttachment[]): number[] {
  return list.map((a) => a.id);
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (seed + i * 7) & 0xff;
  return out;
}

type OpName = 'attach' | 'detach' | 'pin' | 'unpin' | 'map' | 'unmap' | 'release' | 'begin' | 'end';

interface MockOptions {
  /** Provide pin/unpin ops (a dynamic exporter that can pin). */
  pin?: boolean;
  /** What the exporter's `attach` op returns. */
  attachRet?: number;
  /** Pages of the buffer (a power of two). */
  pages?: number;
}

/**
 * A dynamic exporter with device-local memory (think VRAM): pages from its own arena and buddy allocator,
 * maps with `dma_map_sgtable`, and can move the buffer to new pages, telling importers with move_notify.
 * Every op counts its calls and records whether the resv lock was held by the caller at that moment.
 */
class MockExporter {
  readonly k: Kernel;
  readonly buddy: BuddyAllocator;
  readonly order: number;
  pfn: number;
  readonly calls: Record<OpName, number> = {
    attach: 0,
    detach: 0,
    pin: 0,
    unpin: 0,
    map: 0,
    unmap: 0,
    release: 0,
    begin: 0,
    end: 0,
  };
  readonly lockHeldIn: Record<OpName, boolean[]> = {
    attach: [],
    detach: [],
    pin: [],
    unpin: [],
    map: [],
    unmap: [],
    release: [],
    begin: [],
    end: [],
  };
  /** What the next `map_dma_buf` returns instead of a table, when set. */
  mapFailure: number | null | undefined = undefined;
  /** What `pin` returns. */
  pinRet = 0;
  readonly dmabuf: DmaBuf;

  constructor(k: Kernel, opts: MockOptions = {}, arenaName = 'vram') {
    this.k = k;
    const pages = opts.pages ?? 4;
    this.order = Math.log2(pages);
    this.buddy = new BuddyAllocator(k.mem.addArena(arenaName, 1 << 20));
    this.pfn = this.allocBlock();
    const note = (op: OpName, d: DmaBuf): void => {
      this.calls[op]++;
      this.lockHeldIn[op].push(dmaResvIsLocked(d.resv));
    };
    const ops: DmaBufOps = {
      attach: (d) => {
        note('attach', d);
        return opts.attachRet ?? 0;
      },
      detach: (d) => note('detach', d),
      mapDmaBuf: (attach, dir) => {
        note('map', attach.dmabuf);
        if (this.mapFailure !== undefined) return this.mapFailure;
        return k.dma.mapSgtable(attach.dev, this.runs, dir);
      },
      unmapDmaBuf: (attach, sgt, dir) => {
        note('unmap', attach.dmabuf);
        k.dma.unmapSgtable(sgt, dir);
      },
      release: (d) => {
        note('release', d);
        this.buddy.freeBlock(this.pfn, this.order);
      },
      beginCpuAccess: (d) => {
        note('begin', d);
        return 0;
      },
      endCpuAccess: (d) => {
        note('end', d);
        return 0;
      },
    };
    if (opts.pin) {
      ops.pin = (attach) => {
        note('pin', attach.dmabuf);
        return this.pinRet;
      };
      ops.unpin = (attach) => note('unpin', attach.dmabuf);
    }
    this.dmabuf = ok(
      dmaBufExport(k, k.dmaBufList, { ops, sizeBytes: pages * PAGE_SIZE, flags: O_RDWR, priv: this }),
      'export',
    );
  }

  private allocBlock(): number {
    const pfn = this.buddy.allocPages(this.order);
    if (pfn === null) throw new Error('mock exporter: vram arena full');
    return pfn;
  }

  get sizeBytes(): number {
    return (1 << this.order) * PAGE_SIZE;
  }

  get runs(): PageRun[] {
    return [{ pfn: this.pfn, pageCount: 1 << this.order }];
  }

  /** Bytes of the buffer's current backing pages, as the exporter sees them. */
  bytes(): Uint8Array {
    return this.k.mem.view(this.pfn * PAGE_SIZE, this.sizeBytes);
  }

  /** Evict to new pages: copy, tell importers (lock held), then free and poison the old pages. */
  move(): void {
    withLock(this.dmabuf, () => {
      const oldPfn = this.pfn;
      const old = this.bytes();
      this.pfn = this.allocBlock();
      this.bytes().set(old);
      dmaBufMoveNotify(this.dmabuf);
      old.fill(0xee);
      this.buddy.freeBlock(oldPfn, this.order);
    });
  }
}

const gpu: Device = Object.freeze({ name: 'gpu0' });
const isp: Device = Object.freeze({ name: 'isp0' });
const vpu: Device = Object.freeze({ name: 'vpu0' });

/** A dynamic importer that drops its mapping when told to, as move_notify requires. */
function dynamicImporter(): { ops: DmaBufAttachOps; notified: DmaBufAttachment[] } {
  const notified: DmaBufAttachment[] = [];
  return { ops: { moveNotify: (a) => notified.push(a) }, notified };
}

// --- attach and detach ---------------------------------------------------------------------------

describe('attach and detach (§3.1)', () => {
  it('a dynamic attach without moveNotify is -EINVAL with a WARN, calls no exporter op and lists nothing', () => {
    const k = boot();
    const ex = new MockExporter(k);
    let ret: DmaBufAttachment | number = 0;
    const rules = warningsDuring(k, () => {
      ret = dmaBufDynamicAttach(ex.dmabuf, gpu, {} as unknown as DmaBufAttachOps);
    });
    expect(ret).toBe(-EINVAL);
    expect(rules).toEqual(['dmabuf-dynamic-attach-no-move-notify']);
    expect(ex.dmabuf.attachments).toHaveLength(0);
    expect(ex.calls.attach).toBe(0);
    dmaBufPut(ex.dmabuf);
    expect(ex.calls.release).toBe(1);
  });

  it("an exporter attach op's -EBUSY fails the attach with -EBUSY and lists nothing", () => {
    const k = boot();
    const ex = new MockExporter(k, { attachRet: -EBUSY });
    const events: unknown[] = [];
    k.channels.subscribe('kernel:dmabuf:attach', (e) => events.push(e));
    expect(dmaBufAttach(ex.dmabuf, gpu)).toBe(-EBUSY);
    expect(dmaBufDynamicAttach(ex.dmabuf, isp, dynamicImporter().ops)).toBe(-EBUSY);
    expect(ex.calls.attach).toBe(2);
    expect(ex.dmabuf.attachments).toHaveLength(0);
    expect(events).toEqual([]);
    expect(k.bufinfo()).toContain('Total 0 devices attached');
    expect(k.warnings).toEqual([]);
    // Nothing to detach: releasing the buffer is clean.
    dmaBufPut(ex.dmabuf);
    expect(ex.calls.detach).toBe(0);
    expect(k.warnings).toEqual([]);
  });

  it('attachments are listed newest first, in the list and in bufinfo', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p);
    const buf = get(k, p, fd);
    const a = ok(dmaBufAttach(buf, gpu));
    const b = ok(dmaBufDynamicAttach(buf, isp, dynamicImporter().ops));
    const c = ok(dmaBufAttach(buf, vpu));
    expect(ids(buf.attachments)).toEqual(ids([c, b, a]));
    expect(k.bufinfo()).toContain('\tAttached Devices:\n\tvpu0\n\tisp0\n\tgpu0\nTotal 3 devices attached\n');
    expect(a.dynamic).toBe(false);
    expect(b.dynamic).toBe(true);
    dmaBufDetach(buf, b);
    expect(ids(buf.attachments)).toEqual(ids([c, a]));
    dmaBufDetach(buf, c);
    dmaBufDetach(buf, a);
    expect(buf.attachments).toHaveLength(0);
    expect(k.warnings).toEqual([]);
    dmaBufPut(buf);
    p.exit();
    expectNoLeaks(k);
  });

  it('detach while mapped warns, and the mapping is dead from then on', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const buf = get(k, p, alloc(p));
    const attach = ok(dmaBufAttach(buf, gpu));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    expect(deviceRead(attach, sgt, 0, 16)).toBeInstanceOf(Uint8Array);
    expect(warningsDuring(k, () => dmaBufDetach(buf, attach))).toEqual(['dmabuf-detach-while-mapped']);
    expect(buf.attachments).toHaveLength(0);
    expect(sgt.live).toBe(false);
    let ret: Uint8Array | number = 0;
    expect(
      warningsDuring(k, () => {
        ret = deviceRead(attach, sgt, 0, 16);
      }),
    ).toEqual(['dma-access-unmapped']);
    expect(ret).toBe(-EFAULT);
    dmaBufPut(buf);
    p.exit();
    expectNoLeaks(k);
  });

  it('detaching twice warns and reaches the exporter only once; the buffer still releases cleanly', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    dmaBufDetach(ex.dmabuf, attach);
    expect(ex.calls.detach).toBe(1);
    const rules = warningsDuring(k, () => dmaBufDetach(ex.dmabuf, attach));
    expect(rules).toEqual(['dmabuf-detach-bad-args']);
    expect(ex.calls.detach).toBe(1);
    expect(ex.dmabuf.attachments).toHaveLength(0);
    expect(warningsDuring(k, () => dmaBufPut(ex.dmabuf))).toEqual([]);
    expect(ex.buddy.freePageCount).toBe(ex.buddy.totalPages);
  });

  it('detaching an attachment from the wrong buffer warns and detaches nothing', () => {
    const k = boot();
    const one = new MockExporter(k, {}, 'vram0');
    const two = new MockExporter(k, {}, 'vram1');
    const attach = ok(dmaBufAttach(one.dmabuf, gpu));
    expect(warningsDuring(k, () => dmaBufDetach(two.dmabuf, attach))).toEqual(['dmabuf-detach-bad-args']);
    expect(ids(one.dmabuf.attachments)).toEqual(ids([attach]));
    expect(one.calls.detach + two.calls.detach).toBe(0);
    dmaBufDetach(one.dmabuf, attach);
    dmaBufPut(one.dmabuf);
    dmaBufPut(two.dmabuf);
    expect(k.warnings.map((w) => w.rule)).toEqual(['dmabuf-detach-bad-args']);
  });

  it('releasing a buffer with attachments warns, names the devices, and kills their mappings', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p);
    const buf = get(k, p, fd);
    const attach = ok(dmaBufAttach(buf, gpu));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    dmaBufPut(buf);
    expect(warningsDuring(k, () => expect(p.close(fd)).toBe(0))).toEqual(['dmabuf-release-with-attachments']);
    expect(k.warnings.at(-1)?.objects).toMatchObject({ ino: buf.ino, devices: 'gpu0' });
    expect(buf.released).toBe(true);
    expect(sgt.live).toBe(false);
    let ret: Uint8Array | number = 0;
    expect(
      warningsDuring(k, () => {
        ret = deviceRead(attach, sgt, 0, 8);
      }),
    ).toEqual(['dma-access-unmapped']);
    expect(ret).toBe(-EFAULT);
    // The exporter still gave its pages back.
    p.exit();
    expectNoLeaks(k);
  });

  it('a detached attachment cannot be mapped', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    dmaBufDetach(ex.dmabuf, attach);
    let ret: SgTable | number = 0;
    expect(
      warningsDuring(k, () => {
        ret = dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL);
      }),
    ).toEqual(['dmabuf-map-detached']);
    expect(ret).toBe(-EINVAL);
    expect(ex.calls.map).toBe(0);
    dmaBufPut(ex.dmabuf);
  });
});

// --- locking convention ------------------------------------------------------------------------------

describe('locking convention (§2.8)', () => {
  it('map, unmap, pin and unpin without the resv lock each raise lockdep-assert-held, and still proceed', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, dynamicImporter().ops));
    let sgt: SgTable | number = 0;
    expect(
      warningsDuring(k, () => {
        sgt = dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL);
      }),
    ).toEqual(['lockdep-assert-held']);
    const table = ok<SgTable>(sgt);
    expect(table.live).toBe(true);
    expect(ex.calls.map).toBe(1);
    expect(warningsDuring(k, () => dmaBufUnmapAttachment(attach, table, DMA_BIDIRECTIONAL))).toEqual([
      'lockdep-assert-held',
    ]);
    expect(ex.calls.unmap).toBe(1);
    expect(table.live).toBe(false);
    let pinRet = -1;
    expect(
      warningsDuring(k, () => {
        pinRet = dmaBufPin(attach);
      }),
    ).toEqual(['lockdep-assert-held']);
    expect(pinRet).toBe(0);
    expect(warningsDuring(k, () => dmaBufUnpin(attach))).toEqual(['lockdep-assert-held']);
    expect(ex.calls).toMatchObject({ pin: 1, unpin: 1 });
    expect(k.warnings.every((w) => w.objects.resv === ex.dmabuf.resv.id)).toBe(true);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it('a lock held by another task does not satisfy the assertion', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const other = k.createProcess({ name: 'holder' });
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    expect(k.runAs(other, () => dmaResvLock(ex.dmabuf.resv, null))).toBe(0);
    let sgt: SgTable | number = 0;
    expect(
      warningsDuring(k, () => {
        sgt = dmaBufMapAttachment(attach, DMA_TO_DEVICE);
      }),
    ).toEqual(['lockdep-assert-held']);
    k.runAs(other, () => dmaResvUnlock(ex.dmabuf.resv));
    withLock(ex.dmabuf, () => dmaBufUnmapAttachment(attach, ok<SgTable>(sgt), DMA_TO_DEVICE));
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
    expect(k.warnings).toHaveLength(1);
  });

  it('with the lock held, map, unmap, pin and unpin raise no warning, and the exporter sees the lock held', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const dyn = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, dynamicImporter().ops));
    const stat = ok(dmaBufAttach(ex.dmabuf, isp));
    withLock(ex.dmabuf, () => {
      expect(dmaBufPin(dyn)).toBe(0);
      const s1 = ok(dmaBufMapAttachment(dyn, DMA_FROM_DEVICE));
      const s2 = ok(dmaBufMapAttachment(stat, DMA_TO_DEVICE));
      dmaBufUnmapAttachment(stat, s2, DMA_TO_DEVICE);
      dmaBufUnmapAttachment(dyn, s1, DMA_FROM_DEVICE);
      dmaBufUnpin(dyn);
      dmaBufMoveNotify(ex.dmabuf);
    });
    dmaBufDetach(ex.dmabuf, stat);
    dmaBufDetach(ex.dmabuf, dyn);
    expect(dmaBufBeginCpuAccess(ex.dmabuf, DMA_BIDIRECTIONAL)).toBe(0);
    expect(dmaBufEndCpuAccess(ex.dmabuf, DMA_BIDIRECTIONAL)).toBe(0);
    dmaBufPut(ex.dmabuf);
    expect(k.warnings).toEqual([]);
    // Exporter ops called with the lock held: pin, unpin, map_dma_buf, unmap_dma_buf.
    for (const op of ['pin', 'unpin', 'map', 'unmap'] as const) {
      expect(ex.lockHeldIn[op].length, op).toBeGreaterThan(0);
      expect(ex.lockHeldIn[op].every(Boolean), op).toBe(true);
    }
    // Exporter ops called unlocked: attach, detach, release, begin/end_cpu_access.
    for (const op of ['attach', 'detach', 'release', 'begin', 'end'] as const) {
      expect(ex.lockHeldIn[op].length, op).toBeGreaterThan(0);
      expect(ex.lockHeldIn[op].some(Boolean), op).toBe(false);
    }
  });

  it('attach, detach and begin/end_cpu_access with the lock held raise lockdep-might-lock', () => {
    const k = boot();
    const ex = new MockExporter(k);
    let stat: DmaBufAttachment | number = 0;
    let dyn: DmaBufAttachment | number = 0;
    const rules = warningsDuring(k, () =>
      withLock(ex.dmabuf, () => {
        stat = dmaBufAttach(ex.dmabuf, gpu);
        dyn = dmaBufDynamicAttach(ex.dmabuf, isp, dynamicImporter().ops);
        expect(dmaBufBeginCpuAccess(ex.dmabuf, DMA_FROM_DEVICE)).toBe(0);
        expect(dmaBufEndCpuAccess(ex.dmabuf, DMA_FROM_DEVICE)).toBe(0);
        dmaBufDetach(ex.dmabuf, ok<DmaBufAttachment>(dyn));
      }),
    );
    expect(rules).toEqual([
      'lockdep-might-lock',
      'lockdep-might-lock',
      'lockdep-might-lock',
      'lockdep-might-lock',
      'lockdep-might-lock',
    ]);
    expect(k.warnings.map((w) => w.message)).toEqual([
      expect.stringContaining('dma_buf_attach'),
      expect.stringContaining('dma_buf_attach'),
      expect.stringContaining('dma_buf_begin_cpu_access'),
      expect.stringContaining('dma_buf_end_cpu_access'),
      expect.stringContaining('dma_buf_detach'),
    ]);
    // Without the lock the same calls are clean.
    expect(
      warningsDuring(k, () => {
        dmaBufDetach(ex.dmabuf, ok<DmaBufAttachment>(stat));
        expect(dmaBufBeginCpuAccess(ex.dmabuf, DMA_TO_DEVICE)).toBe(0);
        expect(dmaBufEndCpuAccess(ex.dmabuf, DMA_TO_DEVICE)).toBe(0);
      }),
    ).toEqual([]);
    dmaBufPut(ex.dmabuf);
  });

  it('the …Unlocked variants take the lock around the exporter call and drop it again', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    expect(dmaResvIsLocked(ex.dmabuf.resv)).toBe(false);
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    expect(ex.lockHeldIn.map).toEqual([true]);
    expect(dmaResvIsLocked(ex.dmabuf.resv)).toBe(false);
    dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    expect(ex.lockHeldIn.unmap).toEqual([true]);
    expect(dmaResvIsLocked(ex.dmabuf.resv)).toBe(false);
    // An exporter error does not leave the lock behind.
    ex.mapFailure = -ENOMEM;
    expect(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL)).toBe(-ENOMEM);
    expect(dmaResvIsLocked(ex.dmabuf.resv)).toBe(false);
    expect(k.warnings).toEqual([]);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });
});

// --- pin and unpin ---------------------------------------------------------------------------------------

describe('pin and unpin (§3.2, pin-on-map in §3.3)', () => {
  it('pinning or unpinning a static attachment warns', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    const rules = warningsDuring(k, () =>
      withLock(ex.dmabuf, () => {
        dmaBufPin(attach);
        dmaBufUnpin(attach);
      }),
    );
    expect(rules).toEqual(['dmabuf-pin-static-importer', 'dmabuf-pin-static-importer']);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it("a static importer's every map pins and every unmap unpins, balanced per call", () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    withLock(ex.dmabuf, () => {
      const s1 = ok(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL));
      expect(ex.calls).toMatchObject({ pin: 1, map: 1, unpin: 0 });
      const s2 = ok(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL));
      expect(ex.calls).toMatchObject({ pin: 2, map: 2, unpin: 0 });
      dmaBufUnmapAttachment(attach, s1, DMA_BIDIRECTIONAL);
      expect(ex.calls).toMatchObject({ unmap: 1, unpin: 1 });
      dmaBufUnmapAttachment(attach, s2, DMA_BIDIRECTIONAL);
      expect(ex.calls).toMatchObject({ unmap: 2, unpin: 2 });
    });
    expect(k.warnings).toEqual([]);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it("a dynamic importer's map does not pin; its explicit pin and unpin reach the exporter", () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, dynamicImporter().ops));
    withLock(ex.dmabuf, () => {
      const sgt = ok(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL));
      dmaBufUnmapAttachment(attach, sgt, DMA_BIDIRECTIONAL);
      expect(ex.calls).toMatchObject({ map: 1, unmap: 1, pin: 0, unpin: 0 });
      expect(dmaBufPin(attach)).toBe(0);
      expect(ex.calls.pin).toBe(1);
      dmaBufUnpin(attach);
      expect(ex.calls.unpin).toBe(1);
    });
    expect(k.warnings).toEqual([]);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it("dma_buf_pin returns the exporter's error", () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    ex.pinRet = -ENOMEM;
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, dynamicImporter().ops));
    withLock(ex.dmabuf, () => expect(dmaBufPin(attach)).toBe(-ENOMEM));
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it('a failing pin-on-map fails the map before the exporter maps', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    ex.pinRet = -ENOMEM;
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    withLock(ex.dmabuf, () => expect(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL)).toBe(-ENOMEM));
    expect(ex.calls).toMatchObject({ pin: 1, map: 0, unpin: 0 });
    expect(attach.liveMaps.size).toBe(0);
    // Nothing is mapped, so detach is clean.
    expect(warningsDuring(k, () => dmaBufDetach(ex.dmabuf, attach))).toEqual([]);
    dmaBufPut(ex.dmabuf);
  });

  it('an exporter that refuses pin-on-map with -EBUSY is a WARN (WARN_ON_ONCE in dma_buf_map_attachment)', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    ex.pinRet = -EBUSY;
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    let ret: SgTable | number = 0;
    const rules = warningsDuring(k, () =>
      withLock(ex.dmabuf, () => {
        ret = dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL);
      }),
    );
    expect(ret).toBe(-EBUSY);
    expect(ex.calls.map).toBe(0);
    expect(rules).toHaveLength(1);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it('a failing map after pin-on-map unpins again; a NULL table is -ENOMEM', () => {
    const k = boot();
    const ex = new MockExporter(k, { pin: true });
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    withLock(ex.dmabuf, () => {
      ex.mapFailure = -EFAULT;
      expect(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL)).toBe(-EFAULT);
      expect(ex.calls).toMatchObject({ pin: 1, map: 1, unpin: 1 });
      ex.mapFailure = null;
      expect(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL)).toBe(-ENOMEM);
      expect(ex.calls).toMatchObject({ pin: 2, map: 2, unpin: 2 });
    });
    expect(attach.liveMaps.size).toBe(0);
    expect(k.warnings).toEqual([]);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });
});

// --- map and unmap ---------------------------------------------------------------------------------------

describe('map and unmap (§3.3)', () => {
  it('an importer gets DMA addresses and lengths only: no pages, no pfns anywhere on the table', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const buf = get(k, p, alloc(p, (1 << 20) + (64 << 10) + 4096));
    const attach = ok(dmaBufAttach(buf, gpu));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    expect(sgt.entries.length).toBeGreaterThan(0);
    for (const e of sgt.entries) {
      expect(Object.keys(e).sort()).toEqual(['dmaAddress', 'lengthBytes']);
      expect(Reflect.ownKeys(e).sort()).toEqual(['dmaAddress', 'lengthBytes']);
    }
    // Everything reachable by property access from the table (own keys of any kind, prototype getters).
    const keys = new Set<string>();
    const seen = new Set<unknown>();
    const walk = (v: unknown): void => {
      if (v === null || typeof v !== 'object' || seen.has(v)) return;
      seen.add(v);
      for (const key of Reflect.ownKeys(v)) {
        keys.add(String(key));
        walk((v as Record<PropertyKey, unknown>)[key]);
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== null && proto !== Object.prototype && proto !== Array.prototype) {
        for (const key of Reflect.ownKeys(proto as object)) {
          if (key === 'constructor') continue;
          keys.add(String(key));
          walk((v as Record<PropertyKey, unknown>)[key]);
        }
      }
    };
    walk(sgt);
    expect(keys).toContain('dmaAddress');
    expect([...keys].filter((key) => /page|pfn|run|phys|sg_?list|link/i.test(key))).toEqual([]);
    expect(JSON.stringify(sgt)).not.toMatch(/pfn|page|run/i);
    expect(Object.keys(structuredClone(sgt)).sort()).toEqual(['attrs', 'device', 'dir', 'entries', 'id']);
    dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    dmaBufDetach(buf, attach);
    dmaBufPut(buf);
    p.exit();
    expectNoLeaks(k);
  });

  it.each(['system', 'system-uncached', 'default_cma_region', 'carveout'])(
    'the %s heap maps page-aligned entries that cover the buffer exactly',
    (heap) => {
      const k = boot();
      const p = k.createProcess({ name: 'app' });
      const size = (1 << 20) + (64 << 10) + 3 * 4096;
      const buf = get(k, p, alloc(p, size - 100, heap));
      expect(buf.sizeBytes).toBe(size);
      const attach = ok(dmaBufAttach(buf, gpu));
      const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_FROM_DEVICE));
      for (const e of sgt.entries) {
        expect(e.dmaAddress % PAGE_SIZE).toBe(0);
        expect(e.lengthBytes % PAGE_SIZE).toBe(0);
        expect(e.lengthBytes).toBeGreaterThan(0);
      }
      expect(sgt.entries.reduce((n, e) => n + e.lengthBytes, 0)).toBe(size);
      // No two entries overlap.
      const sorted = [...sgt.entries].sort((x, y) => x.dmaAddress - y.dmaAddress);
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1];
        const cur = sorted[i];
        if (prev === undefined || cur === undefined) throw new Error('unreachable');
        expect(cur.dmaAddress).toBeGreaterThanOrEqual(prev.dmaAddress + prev.lengthBytes);
      }
      dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_FROM_DEVICE);
      dmaBufDetach(buf, attach);
      dmaBufPut(buf);
      p.exit();
      expectNoLeaks(k);
    },
  );

  it('each map calls the exporter again: tables are not cached and not refcounted', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    const s1 = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    const s2 = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    const s3 = ok(dmaBufMapAttachmentUnlocked(attach, DMA_TO_DEVICE));
    expect(ex.calls.map).toBe(3);
    expect(new Set([s1, s2, s3]).size).toBe(3);
    expect(s1.entries).toEqual(s2.entries);
    dmaBufUnmapAttachmentUnlocked(attach, s1, DMA_BIDIRECTIONAL);
    expect(ex.calls.unmap).toBe(1);
    expect(s1.live).toBe(false);
    // The other tables are untouched by the first unmap.
    expect(s2.live && s3.live).toBe(true);
    expect(deviceWrite(attach, s2, 0, pattern(32, 1))).toBe(0);
    expect(deviceRead(attach, s3, 0, 32)).toEqual(pattern(32, 1));
    // Unbalanced: two maps are still live, so detach complains about both.
    const rules = warningsDuring(k, () => dmaBufDetach(ex.dmabuf, attach));
    expect(rules).toEqual(['dmabuf-detach-while-mapped']);
    expect(k.warnings.at(-1)?.objects.mappings).toBe(2);
    dmaBufPut(ex.dmabuf);
  });

  it('balanced maps leave nothing behind: a later detach is clean', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    const tables = [0, 1, 2].map(() => ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL)));
    for (const t of tables.reverse()) dmaBufUnmapAttachmentUnlocked(attach, t, DMA_BIDIRECTIONAL);
    expect(ex.calls).toMatchObject({ map: 3, unmap: 3 });
    expect(attach.liveMaps.size).toBe(0);
    expect(warningsDuring(k, () => dmaBufDetach(ex.dmabuf, attach))).toEqual([]);
    dmaBufPut(ex.dmabuf);
    expect(ex.buddy.freePageCount).toBe(ex.buddy.totalPages);
  });

  it('unmapping a table the attachment does not own warns and does not reach the exporter', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const a = ok(dmaBufAttach(ex.dmabuf, gpu));
    const b = ok(dmaBufAttach(ex.dmabuf, isp));
    const sa = ok(dmaBufMapAttachmentUnlocked(a, DMA_BIDIRECTIONAL));
    // Somebody else's table.
    expect(warningsDuring(k, () => dmaBufUnmapAttachmentUnlocked(b, sa, DMA_BIDIRECTIONAL))).toEqual([
      'dmabuf-unmap-unknown',
    ]);
    expect(ex.calls.unmap).toBe(0);
    expect(sa.live).toBe(true);
    // A double unmap.
    dmaBufUnmapAttachmentUnlocked(a, sa, DMA_BIDIRECTIONAL);
    expect(warningsDuring(k, () => dmaBufUnmapAttachmentUnlocked(a, sa, DMA_BIDIRECTIONAL))).toEqual([
      'dmabuf-unmap-unknown',
    ]);
    expect(ex.calls.unmap).toBe(1);
    dmaBufDetach(ex.dmabuf, b);
    dmaBufDetach(ex.dmabuf, a);
    dmaBufPut(ex.dmabuf);
    expect(k.warnings).toHaveLength(2);
  });
});

// --- move_notify -----------------------------------------------------------------------------------------

describe('move_notify (§3.5)', () => {
  it('requires the resv lock', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const imp = dynamicImporter();
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, imp.ops));
    expect(warningsDuring(k, () => dmaBufMoveNotify(ex.dmabuf))).toEqual(['lockdep-assert-held']);
    expect(warningsDuring(k, () => withLock(ex.dmabuf, () => dmaBufMoveNotify(ex.dmabuf)))).toEqual([]);
    expect(ids(imp.notified)).toEqual(ids([attach, attach]));
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it('reaches every dynamic attachment once and never a static one', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const one = dynamicImporter();
    const two = dynamicImporter();
    const s = ok(dmaBufAttach(ex.dmabuf, gpu));
    const d1 = ok(dmaBufDynamicAttach(ex.dmabuf, isp, one.ops));
    const d2 = ok(dmaBufDynamicAttach(ex.dmabuf, vpu, two.ops));
    const staticMap = ok(dmaBufMapAttachmentUnlocked(s, DMA_BIDIRECTIONAL));
    const events: { ino: number; importers: string[] }[] = [];
    k.channels.subscribe('kernel:dmabuf:move-notify', (e) => events.push(e));
    withLock(ex.dmabuf, () => dmaBufMoveNotify(ex.dmabuf));
    expect(ids(one.notified)).toEqual(ids([d1]));
    expect(ids(two.notified)).toEqual(ids([d2]));
    expect(events).toEqual([{ ino: ex.dmabuf.ino, importers: ['vpu0', 'isp0'] }]);
    // The static importer's mapping is not touched.
    expect(staticMap.live).toBe(true);
    expect(s.liveMaps.has(staticMap)).toBe(true);
    // With only static importers nobody is told.
    dmaBufDetach(ex.dmabuf, d1);
    dmaBufDetach(ex.dmabuf, d2);
    withLock(ex.dmabuf, () => dmaBufMoveNotify(ex.dmabuf));
    expect(events.at(-1)).toEqual({ ino: ex.dmabuf.ino, importers: [] });
    expect(one.notified).toHaveLength(1);
    dmaBufUnmapAttachmentUnlocked(s, staticMap, DMA_BIDIRECTIONAL);
    dmaBufDetach(ex.dmabuf, s);
    dmaBufPut(ex.dmabuf);
    expect(k.warnings).toEqual([]);
  });

  it('a dynamic importer drops its mapping on move, re-maps, and finds the same bytes at the new address', () => {
    const k = boot();
    const ex = new MockExporter(k, { pages: 4 });
    let sgt: SgTable | null = null;
    let notified = 0;
    const attach = ok(
      dmaBufDynamicAttach(ex.dmabuf, gpu, {
        moveNotify(a) {
          notified++;
          // Called with the exporter's lock held: the locked unmap is the right call.
          expect(dmaResvIsLocked(a.dmabuf.resv)).toBe(true);
          if (sgt !== null) dmaBufUnmapAttachment(a, sgt, DMA_BIDIRECTIONAL);
          sgt = null;
        },
      }),
    );
    const first = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    sgt = first;
    const oldAddr = first.entries[0]?.dmaAddress;
    const data = pattern(ex.sizeBytes, 42);
    expect(deviceWrite(attach, first, 0, data)).toBe(0);
    expect(ex.bytes()).toEqual(data);

    ex.move();
    expect(notified).toBe(1);
    expect(sgt).toBeNull();
    expect(first.live).toBe(false);
    expect(ex.calls).toMatchObject({ map: 1, unmap: 1 });

    const second = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    sgt = second;
    expect(ex.calls.map).toBe(2);
    expect(second.entries[0]?.dmaAddress).not.toBe(oldAddr);
    expect(second.entries[0]?.dmaAddress).toBe(ex.pfn * PAGE_SIZE);
    expect(deviceRead(attach, second, 0, ex.sizeBytes)).toEqual(data);

    // The old table is dead: a device still using it faults.
    let stale: Uint8Array | number = 0;
    expect(
      warningsDuring(k, () => {
        stale = deviceRead(attach, first, 0, 16);
      }),
    ).toEqual(['dma-access-unmapped']);
    expect(stale).toBe(-EFAULT);
    expect(deviceWrite(attach, first, 0, pattern(16, 9))).toBe(-EFAULT);
    expect(deviceRead(attach, second, 0, ex.sizeBytes)).toEqual(data);

    dmaBufUnmapAttachmentUnlocked(attach, second, DMA_BIDIRECTIONAL);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
    expect(ex.buddy.freePageCount).toBe(ex.buddy.totalPages);
    expect(k.warnings.map((w) => w.rule)).toEqual(['dma-access-unmapped', 'dma-access-unmapped']);
  });
});

describe('move_notify: an importer that has not unmapped yet (§3.5)', () => {
  it('may still read through the invalidated table, but a write is reported and lands in the old pages', () => {
    const k = boot();
    const ex = new MockExporter(k, { pages: 4 });
    let told = 0;
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, { moveNotify: () => told++ }));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    const data = pattern(ex.sizeBytes, 7);
    expect(deviceWrite(attach, sgt, 0, data)).toBe(0);
    expect(k.warnings).toEqual([]);
    // Keep the old pages readable: this exporter moves without poisoning, so the read shows they are old.
    withLock(ex.dmabuf, () => {
      ex.pfn = (() => {
        const oldPfn = ex.pfn;
        const fresh = ex.buddy.allocPages(ex.order);
        if (fresh === null) throw new Error('vram full');
        ex.k.mem.view(fresh * PAGE_SIZE, ex.sizeBytes).set(ex.k.mem.view(oldPfn * PAGE_SIZE, ex.sizeBytes));
        dmaBufMoveNotify(ex.dmabuf);
        ex.buddy.freeBlock(oldPfn, ex.order);
        return fresh;
      })();
    });
    expect(told).toBe(1);
    expect(sgt.live).toBe(true); // the importer has not unmapped yet
    expect(deviceRead(attach, sgt, 0, 16)).toEqual(data.subarray(0, 16));
    expect(k.warnings).toEqual([]);
    expect(
      warningsDuring(k, () => {
        expect(deviceWrite(attach, sgt, 0, pattern(16, 1))).toBe(0);
      }),
    ).toEqual(['dma-write-after-move-notify']);
    expect(ex.bytes()).toEqual(data); // the buffer's new pages never saw that write
    dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });
});

// --- device access through a mapping ---------------------------------------------------------------------

describe('device access through a mapping', () => {
  it('a live mapping sees what the CPU wrote and flushed with SYNC', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p, 8192);
    const buf = get(k, p, fd);
    const attach = ok(dmaBufAttach(buf, gpu));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    const addr = p.mmap(fd, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(addr).toBeGreaterThan(0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE })).toBe(0);
    expect(p.writeMem(addr + 4000, pattern(200, 5))).toBe(0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE })).toBe(0);
    expect(deviceRead(attach, sgt, 4000, 200)).toEqual(pattern(200, 5));
    expect(dmaBufDeviceSpans(attach, sgt, 8000, 500)).toBe(-EINVAL);
    dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    dmaBufDetach(buf, attach);
    dmaBufPut(buf);
    p.exit();
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k);
  });

  it('through an unmapped table is -EFAULT with dma-access-unmapped', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufAttach(ex.dmabuf, gpu));
    const sgt = ok(dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL));
    dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    let ret: Uint8Array[] | number = 0;
    expect(
      warningsDuring(k, () => {
        ret = dmaBufDeviceSpans(attach, sgt, 0, 4);
      }),
    ).toEqual(['dma-access-unmapped']);
    expect(ret).toBe(-EFAULT);
    expect(k.warnings.at(-1)?.objects).toMatchObject({ device: 'gpu0', sgt: sgt.id });
    dmaBufDetach(ex.dmabuf, attach);
    dmaBufPut(ex.dmabuf);
  });

  it("through another attachment's table is -EFAULT with dma-access-unmapped", () => {
    const k = boot();
    const ex = new MockExporter(k);
    const a = ok(dmaBufAttach(ex.dmabuf, gpu));
    const b = ok(dmaBufAttach(ex.dmabuf, isp));
    const sa = ok(dmaBufMapAttachmentUnlocked(a, DMA_BIDIRECTIONAL));
    expect(warningsDuring(k, () => expect(dmaBufDeviceSpans(b, sa, 0, 4)).toBe(-EFAULT))).toEqual([
      'dma-access-unmapped',
    ]);
    dmaBufUnmapAttachmentUnlocked(a, sa, DMA_BIDIRECTIONAL);
    dmaBufDetach(ex.dmabuf, b);
    dmaBufDetach(ex.dmabuf, a);
    dmaBufPut(ex.dmabuf);
  });

  it('through the table of a detached attachment is -EFAULT with dma-access-unmapped', () => {
    const k = boot();
    const ex = new MockExporter(k);
    const attach = ok(dmaBufDynamicAttach(ex.dmabuf, gpu, dynamicImporter().ops));
    const sgt = withLock(ex.dmabuf, () => ok(dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL)));
    dmaBufDetach(ex.dmabuf, attach);
    expect(warningsDuring(k, () => expect(deviceRead(attach, sgt, 0, 4)).toBe(-EFAULT))).toEqual([
      'dma-access-unmapped',
    ]);
    dmaBufPut(ex.dmabuf);
    expect(k.warnings.map((w) => w.rule)).toEqual(['dmabuf-detach-while-mapped', 'dma-access-unmapped']);
  });
});

// --- vgem as an importer -----------------------------------------------------------------------------------

describe('vgem (§11 A10)', () => {
  const VGEM = '/dev/dri/card0';

  function importFd(p: Process, drm: number, fd: number): { ret: number; handle: number } {
    const arg = { fd, flags: 0, handle: 0 };
    const ret = p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, arg);
    return { ret, handle: arg.handle };
  }

  it('DRM_IOCTL_VERSION names the driver vgem, truncated to name_len, with the full length back', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const drm = p.open(VGEM, O_RDWR);
    const v: Record<string, unknown> = { name_len: 4 };
    expect(p.ioctl(drm, DRM_IOCTL_VERSION, v)).toBe(0);
    expect(v).toMatchObject({ name: 'vgem', name_len: 4 });
    const short: Record<string, unknown> = { name_len: 2 };
    expect(p.ioctl(drm, DRM_IOCTL_VERSION, short)).toBe(0);
    expect(short).toMatchObject({ name: 'vg', name_len: 4 });
    expect(p.ioctl(drm, DRM_IOCTL_VERSION, null)).toBe(-EFAULT);
    p.exit();
  });

  it('importing the same buffer twice on one file gives the same handle and one attachment', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p);
    const drm = p.open(VGEM, O_RDWR);
    const first = importFd(p, drm, fd);
    expect(first.ret).toBe(0);
    expect(first.handle).toBeGreaterThan(0);
    expect(importFd(p, drm, fd)).toEqual(first);
    // Another fd of the same buffer is the same object too.
    const dupFd = p.dup(fd);
    expect(importFd(p, drm, dupFd)).toEqual(first);
    const buf = [...k.dmaBufList.bufs][0];
    expect(buf?.attachments.map((a) => a.dev.name)).toEqual(['vgem']);
    // A second DRM file is a second importer.
    const drm2 = p.open(VGEM, O_RDWR);
    expect(importFd(p, drm2, fd).ret).toBe(0);
    expect(buf?.attachments).toHaveLength(2);
    // One GEM_CLOSE drops the handle for good.
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: first.handle, pad: 0 })).toBe(0);
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: first.handle, pad: 0 })).toBe(-EINVAL);
    expect(buf?.attachments).toHaveLength(1);
    p.exit();
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k);
  });

  it('import of a bad fd is -EBADF; of a file that is not a dma-buf, -EINVAL', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const drm = p.open(VGEM, O_RDWR);
    const nul = p.open('/dev/null', O_RDWR);
    const heap = p.open('/dev/dma_heap/system', O_RDWR);
    expect(importFd(p, drm, 999).ret).toBe(-EBADF);
    expect(importFd(p, drm, -1).ret).toBe(-EBADF);
    expect(importFd(p, drm, nul).ret).toBe(-EINVAL);
    expect(importFd(p, drm, heap).ret).toBe(-EINVAL);
    expect(importFd(p, drm, drm).ret).toBe(-EINVAL);
    p.exit();
    expect(k.warnings).toEqual([]);
  });

  it('GEM_CLOSE of an unknown handle is -EINVAL', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const drm = p.open(VGEM, O_RDWR);
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: 0, pad: 0 })).toBe(-EINVAL);
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: 7, pad: 0 })).toBe(-EINVAL);
    p.exit();
  });

  it('an unknown DRM ioctl is -EINVAL, not -ENOTTY', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const drm = p.open(VGEM, O_RDWR);
    expect(p.ioctl(drm, _IOWR('d', 0xa0, 16), {})).toBe(-EINVAL);
    expect(p.ioctl(drm, DMA_HEAP_IOCTL_ALLOC, {})).toBe(-EINVAL);
    expect(p.ioctl(drm, 0, {})).toBe(-EINVAL);
    p.exit();
  });

  it('closing the DRM fd detaches and drops the buffer; closing the dma-buf fd then frees its pages', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p, 256 << 10);
    const drm = p.open(VGEM, O_RDWR);
    const { ret, handle } = importFd(p, drm, fd);
    expect(ret).toBe(0);
    expect(k.bufinfo()).toContain('\tAttached Devices:\n\tvgem\nTotal 1 devices attached\n');
    const buf = [...k.dmaBufList.bufs][0];
    const refsWhileImported = buf?.file.refCount ?? 0;
    expect(p.close(drm)).toBe(0);
    expect(k.vgem.dmaRead(p, drm, handle, 0, 4)).toBe(-EBADF);
    expect(k.bufinfo()).not.toContain('\tvgem\n');
    expect(k.bufinfo()).toContain('Total 0 devices attached');
    expect(buf?.attachments).toHaveLength(0);
    expect(buf?.file.refCount).toBe(refsWhileImported - 1);
    // Still alive through its fd.
    expect(k.dmaBufList.bufs.size).toBe(1);
    const system = k.memoryUsage().find((u) => u.arena === 'system');
    expect(system?.freePages).toBe((system?.totalPages ?? 0) - 64);
    expect(p.close(fd)).toBe(0);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k);
    p.exit();
  });

  it('the buffer survives closing its fd while vgem holds it, and goes with GEM_CLOSE', () => {
    const k = boot();
    const p = k.createProcess({ name: 'app' });
    const fd = alloc(p, 16 << 10, 'default_cma_region');
    const drm = p.open(VGEM, O_RDWR);
    const { ret, handle } = importFd(p, drm, fd);
    expect(ret).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(k.dmaBufList.bufs.size).toBe(1);
    expect(k.heaps.all().find((h) => h.name === 'default_cma_region')?.stats).toMatchObject({
      buffers: 1,
      bytes: 16 << 10,
    });
    // The device can still use it.
    expect(k.vgem.dmaWrite(p, drm, handle, 100, pattern(64, 3))).toBe(0);
    expect(k.vgem.dmaRead(p, drm, handle, 100, 64)).toEqual(pattern(64, 3));
    expect(k.vgem.dmaRead(p, drm, handle, (16 << 10) - 8, 16)).toBe(-EINVAL);
    expect(p.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle, pad: 0 })).toBe(0);
    expect(k.vgem.dmaRead(p, drm, handle, 0, 4)).toBe(-ENOENT);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k);
    p.exit();
  });
});
