// Kernel-side mappings of a dma-buf: dma_buf_vmap/vunmap (kernel-semantics §2.7) and the importer's
// dma_buf_mmap forwarding (§2.6). drivers/dma-buf/dma-buf.c.
import { describe, expect, it } from 'vitest';
import { KernelBug } from '../../src/kernel/assert.js';
import {
  type DmaBuf,
  dmaBufGet,
  dmaBufMmap,
  dmaBufPut,
  dmaBufVmap,
  dmaBufVmapUnlocked,
  dmaBufVunmap,
  dmaBufVunmapUnlocked,
} from '../../src/kernel/dma-buf.js';
import { dmaResvLock, dmaResvUnlock } from '../../src/kernel/dma-resv.js';
import { EINVAL, EOVERFLOW } from '../../src/kernel/errno.js';
import { Kernel } from '../../src/kernel/kernel.js';
import type { Process } from '../../src/kernel/process.js';
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_HEAP_IOCTL_ALLOC,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../../src/kernel/uapi.js';

function setup(heap = 'system', len = 3 * PAGE_SIZE): { k: Kernel; p: Process; fd: number; buf: DmaBuf } {
  const k = new Kernel({ memory: { systemBytes: 8 << 20, cmaBytes: 8 << 20, carveoutBytes: 8 << 20 } });
  const p = k.createProcess({ name: 'kmap' });
  const a = { len, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  expect(p.ioctl(p.open(`/dev/dma_heap/${heap}`, O_RDWR), DMA_HEAP_IOCTL_ALLOC, a)).toBe(0);
  const buf = k.runAs(p, () => dmaBufGet(k, a.fd));
  if (typeof buf === 'number') throw new Error(`dma_buf_get: ${buf}`);
  return { k, p, fd: a.fd, buf };
}

describe('dma_buf_vmap', () => {
  it('is refcounted: the exporter vmap runs once and every vmap returns the same map', () => {
    const { k, p, buf } = setup();
    const calls = { vmap: 0, vunmap: 0 };
    const ops = buf.ops as { vmap?: (d: DmaBuf) => unknown; vunmap?: (d: DmaBuf, m: unknown) => void };
    // Count exporter calls through a wrapper table with the same ops.
    Object.assign(buf, {
      ops: {
        ...buf.ops,
        vmap: (d: DmaBuf) => {
          calls.vmap++;
          return ops.vmap?.(d);
        },
        vunmap: (d: DmaBuf, m: unknown) => {
          calls.vunmap++;
          ops.vunmap?.(d, m);
        },
      },
    });
    k.runAs(p, () => {
      const m1 = dmaBufVmapUnlocked(buf);
      const m2 = dmaBufVmapUnlocked(buf);
      expect(typeof m1).toBe('object');
      expect(m2).toBe(m1);
      expect(buf.vmappingCounter).toBe(2);
      expect(calls.vmap).toBe(1);
      dmaBufVunmapUnlocked(buf, m1 as never);
      expect(calls.vunmap).toBe(0);
      dmaBufVunmapUnlocked(buf, m1 as never);
      expect(calls.vunmap).toBe(1);
      expect(buf.vmappingCounter).toBe(0);
    });
  });

  it('requires the resv lock: without it lockdep warns, with it nothing is reported', () => {
    const { k, p, buf } = setup();
    k.runAs(p, () => {
      const m = dmaBufVmap(buf);
      expect(k.warnings.map((w) => w.rule)).toContain('lockdep-assert-held');
      const before = k.warningCount;
      dmaResvLock(buf.resv, null);
      dmaBufVunmap(buf, m as never);
      dmaResvUnlock(buf.resv);
      expect(k.warningCount).toBe(before);
    });
  });

  it('an exporter without a vmap op gives -EINVAL', () => {
    const { k, p, buf } = setup();
    Object.assign(buf, { ops: { ...buf.ops, vmap: undefined } });
    k.runAs(p, () => expect(dmaBufVmapUnlocked(buf)).toBe(-EINVAL));
  });

  it('vunmap with no vmap, or releasing a vmapped buffer, is a BUG', () => {
    const { k, p, fd, buf } = setup();
    k.runAs(p, () => {
      expect(() => dmaBufVunmapUnlocked(buf, { read: () => new Uint8Array(), write: () => {} })).toThrow(KernelBug);
      dmaBufVmapUnlocked(buf);
      dmaBufPut(buf);
    });
    expect(() => p.close(fd)).toThrow(/released while vmapped/);
  });

  it('the kernel mapping shares the CPU cache with user mappings (cached heap) and sees user writes', () => {
    const { k, p, fd, buf } = setup();
    const addr = p.mmap(fd, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW })).toBe(0);
    // A write that straddles a page boundary: the vmap must stitch pages in buffer order.
    expect(p.writeMem(addr + PAGE_SIZE - 2, new Uint8Array([7, 8, 9, 10]))).toBe(0);
    k.runAs(p, () => {
      const m = dmaBufVmapUnlocked(buf);
      if (typeof m === 'number') throw new Error(String(m));
      expect([...m.read(PAGE_SIZE - 2, 4)]).toEqual([7, 8, 9, 10]);
      m.write(2 * PAGE_SIZE, new Uint8Array([42]));
      dmaBufVunmapUnlocked(buf, m);
    });
    expect([...(p.readMem(addr + 2 * PAGE_SIZE, 1) as Uint8Array)]).toEqual([42]);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW })).toBe(0);
  });
});

describe('dma_buf_mmap (importer forwarding)', () => {
  it('maps the exporter pages at pgoff; bounds -EINVAL; wrap -EOVERFLOW', () => {
    const { k, p, fd, buf } = setup();
    const addr = p.mmap(fd, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    expect(p.writeMem(addr + 2 * PAGE_SIZE, new Uint8Array([5]))).toBe(0);
    const vma = p.mm.list().find((v) => v.start === addr);
    if (vma === undefined) throw new Error('vma');
    const one = { ...vma, start: vma.start, end: vma.start + PAGE_SIZE };
    expect(dmaBufMmap(buf, one, 2)).toBe(0);
    expect(one.pgoff).toBe(2);
    expect(one.vmOps?.fault(one, 2)).toBe(vma.vmOps?.fault(vma, 2));
    expect(dmaBufMmap(buf, { ...vma }, 1)).toBe(-EINVAL);
    expect(dmaBufMmap(buf, { ...vma }, Number.MAX_SAFE_INTEGER)).toBe(-EOVERFLOW);
    k.runAs(p, () => dmaBufPut(buf));
  });
});
