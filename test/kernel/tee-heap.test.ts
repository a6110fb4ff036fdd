// TEE protected heaps against kernel-semantics.md §9.2 (drivers/tee/tee_heap.c, merged for v6.18): heaps
// named by use case, buffers with attach/detach/map/unmap/release only — so the dma-buf core refuses mmap
// and vmap with -EINVAL, SYNC only waits for fences and returns 0, and attach always succeeds (the
// hardware firewall, not the kernel, keeps other devices out).
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FIREWALL,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_START,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_TO_DEVICE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  dmaBufAttach,
  dmaBufDetach,
  dmaBufGet,
  dmaBufMapAttachmentUnlocked,
  dmaBufUnmapAttachmentUnlocked,
  errno,
  Kernel,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  type Process,
  protectedHeapName,
} from '../../src/index.js';
import { dmaBufVmapUnlocked } from '../../src/kernel/dma-buf.js';

const { EINVAL, ENOMEM } = errno;
const MiB = 1 << 20;
const memory = { systemBytes: 16 * MiB, cmaBytes: 0, carveoutBytes: 0 };

function boot(pools: Record<string, { bytes: number; firewall?: string[] }> = { 'secure-video': { bytes: MiB } }) {
  const k = new Kernel({ memory, protectedHeaps: pools });
  return { k, p: k.createProcess({ name: 'tee-heap-test' }) };
}

function alloc(p: Process, heap: string, len: number): { ret: number; fd: number } {
  const heapFd = p.open(`/dev/dma_heap/${heap}`, O_RDWR);
  expect(heapFd, `open ${heap}`).toBeGreaterThanOrEqual(3);
  const arg = { len, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  const ret = p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
  p.close(heapFd);
  return { ret, fd: arg.fd };
}

describe('TEE protected heaps (§9.2)', () => {
  it('one heap per use case asked for, named protected,<use case>, registered after the default heaps', () => {
    expect(boot({}).p.readdir('/dev/dma_heap')).not.toContain('protected,secure-video');
    const { k, p } = boot({ 'secure-video': { bytes: MiB }, 'trusted-ui': { bytes: MiB } });
    const names = k.heaps.all().map((h) => h.name);
    expect(names.slice(-2)).toEqual(['protected,secure-video', 'protected,trusted-ui']);
    expect(p.readdir('/dev/dma_heap')).toEqual(
      expect.arrayContaining(['protected,secure-video', 'protected,trusted-ui']),
    );
    expect(protectedHeapName('secure-video-record')).toBe('protected,secure-video-record');
  });

  it('restriction is data on the heap: its use case and the masters its firewall admits', () => {
    const { k } = boot({ 'secure-video': { bytes: MiB }, 'trusted-ui': { bytes: MiB, firewall: ['gpu0'] } });
    const sv = k.heaps.find('protected,secure-video');
    expect(sv?.properties).toMatchObject({
      backing: 'tee-pool-static',
      contiguity: 'physical',
      capacityBytes: MiB,
      restriction: { kind: 'protected', useCase: 'secure-video', firewall: DEFAULT_FIREWALL['secure-video'] },
    });
    expect(k.heaps.find('protected,trusted-ui')?.properties.restriction).toEqual({
      kind: 'protected',
      useCase: 'trusted-ui',
      firewall: ['gpu0'],
    });
  });

  it('no CPU path: mmap and vmap are -EINVAL (no op); SYNC only waits and returns 0 (no begin/end op)', () => {
    const { k, p } = boot();
    const { ret, fd } = alloc(p, 'protected,secure-video', 2 * PAGE_SIZE);
    expect(ret).toBe(0);
    // dma_buf_mmap_internal: if (!dmabuf->ops->mmap) return -EINVAL;
    expect(p.mmap(fd, PAGE_SIZE, PROT_READ, MAP_SHARED, 0)).toBe(-EINVAL);
    // dma_buf_ioctl DMA_BUF_IOCTL_SYNC: dma_buf_begin_cpu_access returns 0 when the op is missing.
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ })).toBe(0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ })).toBe(0);
    const buf = k.runAs(p, () => dmaBufGet(k, fd));
    if (typeof buf === 'number') throw new Error(`dma_buf_get: ${buf}`);
    // dma_buf_vmap: if (!dmabuf->ops->vmap) return -EINVAL;
    expect(k.runAs(p, () => dmaBufVmapUnlocked(buf))).toBe(-EINVAL);
  });

  it('attach always succeeds (no device check) and a map is one contiguous DMA range', () => {
    const { k, p } = boot();
    const { fd } = alloc(p, 'protected,secure-video', 3 * PAGE_SIZE);
    const buf = k.runAs(p, () => dmaBufGet(k, fd));
    if (typeof buf === 'number') throw new Error(`dma_buf_get: ${buf}`);
    const att = k.runAs(p, () => dmaBufAttach(buf, { name: 'any-gpu' }));
    if (typeof att === 'number') throw new Error(`attach: ${att}`);
    const sgt = k.runAs(p, () => dmaBufMapAttachmentUnlocked(att, DMA_TO_DEVICE));
    if (typeof sgt === 'number' || sgt === null) throw new Error(`map: ${sgt}`);
    expect(sgt.entries).toHaveLength(1);
    expect(sgt.totalBytes).toBe(3 * PAGE_SIZE);
    k.runAs(p, () => dmaBufUnmapAttachmentUnlocked(att, sgt, DMA_TO_DEVICE));
    k.runAs(p, () => dmaBufDetach(buf, att));
  });

  it('a kernel-side importer outside the firewall (vgem) is reported and reaches no memory', () => {
    for (const firewall of [['tee'], ['vgem']]) {
      const { k, p } = boot({ 'secure-video': { bytes: MiB, firewall } });
      const { fd } = alloc(p, 'protected,secure-video', PAGE_SIZE);
      const drm = p.open('/dev/dri/card0', O_RDWR);
      const imp = { fd, flags: 0, handle: 0 };
      expect(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, imp)).toBe(0);
      const mark = k.warnings.length;
      expect(k.vgem.dmaWrite(p, drm, imp.handle, 0, Uint8Array.of(1, 2, 3, 4))).toBe(0);
      const back = k.vgem.dmaRead(p, drm, imp.handle, 0, 4);
      const warned = k.warnings.slice(mark).map((w) => w.rule);
      if (firewall.includes('vgem')) {
        expect(back).toEqual(Uint8Array.of(1, 2, 3, 4));
        expect(warned).toEqual([]);
      } else {
        // The write went nowhere and the read saw zeros: the firewall answered both.
        expect(back).toEqual(new Uint8Array(4));
        expect(warned).toEqual(['restricted-dma', 'restricted-dma']);
      }
    }
  });

  it('the static pool runs out with -ENOMEM, and freed buffers go back to it', () => {
    const { k, p } = boot({ 'secure-video': { bytes: 4 * PAGE_SIZE } });
    const a = alloc(p, 'protected,secure-video', 3 * PAGE_SIZE);
    expect(a.ret).toBe(0);
    expect(alloc(p, 'protected,secure-video', 2 * PAGE_SIZE).ret).toBe(-ENOMEM);
    expect(p.close(a.fd)).toBe(0);
    expect(alloc(p, 'protected,secure-video', 4 * PAGE_SIZE).ret).toBe(0);
    const pool = k.memoryUsage().find((u) => u.arena === 'protected-secure-video');
    expect(pool?.totalPages).toBe(4);
  });
});
