// The non-coherent CPU cache model (src/kernel/cpu-cache.ts) as heaps, SYNC and DMA see it.
// Kernel references: arch/arm64/mm/dma-mapping.c (arch_sync_dma_for_device = dcache_clean_poc;
// arch_sync_dma_for_cpu = dcache_inval_poc unless DMA_TO_DEVICE), kernel/dma/mapping.c
// (dma_map_sgtable → sync for device, dma_unmap_sgtable → sync for cpu), and
// drivers/dma-buf/heaps/system_heap.c (begin/end_cpu_access sync only attachments with a->mapped).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  dmaBufAttach,
  dmaBufDetach,
  dmaBufGet,
  dmaBufMapAttachmentUnlocked,
  dmaBufPut,
  dmaBufUnmapAttachmentUnlocked,
  errnoName,
  Kernel,
  type KernelOptions,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type Process,
} from '../../src/index.js';
import { CpuCache } from '../../src/kernel/cpu-cache.js';
import type { DmaBuf, DmaBufAttachment } from '../../src/kernel/dma-buf.js';
import type { PageBuffer } from '../../src/kernel/heaps/page-buffer.js';
import { type PageRun, PhysicalMemory } from '../../src/kernel/memory.js';

const PAGE = 4096;
const KiB = 1024;
const MiB = 1024 * 1024;
const LINE = 64;
const CACHED_HEAPS = ['system', 'default_cma_region', 'carveout'];

function boot(memory: KernelOptions['memory'] = {}, heaps: KernelOptions['heaps'] = {}): Kernel {
  return new Kernel({ memory: { systemBytes: 4 * MiB, cmaBytes: 2 * MiB, carveoutBytes: 2 * MiB, ...memory }, heaps });
}

function alloc(p: Process, len: number, heap: string): number {
  const heapFd = p.open(`/dev/dma_heap/${heap}`, O_RDWR);
  if (heapFd < 0) throw new Error(`open ${heap}: ${errnoName(heapFd)}`);
  const a: Record<string, unknown> = { len, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  const ret = p.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, a);
  p.close(heapFd);
  if (ret !== 0) throw new Error(`ALLOC ${heap}: ${errnoName(ret)}`);
  return a.fd as number;
}

function mmapAll(p: Process, fd: number, len: number): number {
  const addr = p.mmap(fd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
  if (addr < 0) throw new Error(`mmap: ${errnoName(addr)}`);
  return addr;
}

function importVgem(p: Process, fd: number): { drm: number; handle: number } {
  const drm = p.open('/dev/dri/card0', O_RDWR);
  const h: Record<string, unknown> = { fd, flags: 0, handle: 0 };
  const ret = p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, h);
  if (ret !== 0) throw new Error(`PRIME_FD_TO_HANDLE: ${errnoName(ret)}`);
  return { drm, handle: h.handle as number };
}

function cpuRead(p: Process, addr: number, n: number): Uint8Array {
  const r = p.readMem(addr, n);
  if (typeof r === 'number') throw new Error(`readMem: ${errnoName(r)}`);
  return r;
}

/** The page runs behind a dma-buf fd (exporter-private; only tests look). */
function runsOf(p: Process, fd: number): readonly PageRun[] {
  const file = p.files.lookup(fd);
  if (file === undefined) throw new Error(`fd ${fd} not open`);
  return ((file.privateData as DmaBuf).priv as PageBuffer).runs;
}

function dirtyIn(k: Kernel, runs: readonly PageRun[]): number {
  let n = 0;
  for (const r of runs) n += k.cache.dirtyLines(r.pfn * PAGE, r.pageCount * PAGE);
  return n;
}

const filled = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
const zeros = (n: number): Uint8Array => new Uint8Array(n);
const sync = (p: Process, fd: number, flags: number): number => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags });

/** A process with a buffer mmapped shared and imported by vgem (so it has a mapped attachment). */
function rig(heap: string, len: number, k = boot()) {
  const p = k.createProcess({ name: 'cpu' });
  const fd = alloc(p, len, heap);
  const addr = mmapAll(p, fd, len);
  const { drm, handle } = importVgem(p, fd);
  const devRead = (off: number, n: number): Uint8Array => {
    const r = k.vgem.dmaRead(p, drm, handle, off, n);
    if (typeof r === 'number') throw new Error(`dmaRead: ${errnoName(r)}`);
    return r;
  };
  const devWrite = (off: number, data: Uint8Array): void => {
    expect(k.vgem.dmaWrite(p, drm, handle, off, data)).toBe(0);
  };
  return { k, p, fd, addr, devRead, devWrite };
}

// ------------------------------------------------------------------------------------------------
describe('cached heaps with a device attached (vgem)', () => {
  it.each(CACHED_HEAPS)('%s: a device write behind a cached line stays invisible until SYNC START|READ', (heap) => {
    // system_heap_dma_buf_begin_cpu_access → dma_sync_sgtable_for_cpu(FROM_DEVICE) → dcache_inval_poc.
    const { p, fd, addr, devWrite } = rig(heap, 2 * PAGE);
    expect(cpuRead(p, addr, LINE)).toEqual(zeros(LINE)); // line 0 is now cached
    devWrite(0, filled(2 * LINE, 0x61));
    const stale = cpuRead(p, addr, 2 * LINE);
    expect(stale.subarray(0, LINE)).toEqual(zeros(LINE)); // cached: stale
    expect(stale.subarray(LINE)).toEqual(filled(LINE, 0x61)); // was not cached: filled from memory
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(cpuRead(p, addr, 2 * LINE)).toEqual(filled(2 * LINE, 0x61));
  });

  it('SYNC START|RW (DMA_BIDIRECTIONAL) invalidates as well', () => {
    // arch_sync_dma_for_cpu(): invalidate for every direction except DMA_TO_DEVICE.
    const { p, fd, addr, devWrite } = rig('system', PAGE);
    expect(cpuRead(p, addr, PAGE)).toEqual(zeros(PAGE));
    devWrite(0, filled(PAGE, 0x62));
    expect(cpuRead(p, addr, PAGE)).toEqual(zeros(PAGE));
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW)).toBe(0);
    expect(cpuRead(p, addr, PAGE)).toEqual(filled(PAGE, 0x62));
  });

  it.each(CACHED_HEAPS)('%s: CPU writes stay in the cache, the device reads old bytes until SYNC END|WRITE', (heap) => {
    // system_heap_dma_buf_end_cpu_access → dma_sync_sgtable_for_device → dcache_clean_poc.
    const { k, p, fd, addr, devRead } = rig(heap, 2 * PAGE);
    const runs = runsOf(p, fd);
    expect(p.writeMem(addr + PAGE, filled(256, 0x77))).toBe(0);
    expect(dirtyIn(k, runs)).toBe(256 / LINE);
    expect(devRead(PAGE, 256)).toEqual(zeros(256));
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(dirtyIn(k, runs)).toBe(0);
    expect(devRead(PAGE, 256)).toEqual(filled(256, 0x77));
    expect(cpuRead(p, addr + PAGE, 256)).toEqual(filled(256, 0x77)); // clean keeps the lines valid
  });

  it.each([
    ['READ', DMA_BUF_SYNC_READ],
    ['RW', DMA_BUF_SYNC_RW],
  ])('SYNC END|%s also cleans: arm64 cleans for the device whatever the direction', (_name, rw) => {
    // arch_sync_dma_for_device(paddr, size, dir): dcache_clean_poc() unconditionally.
    const { p, fd, addr, devRead } = rig('system', PAGE);
    expect(p.writeMem(addr, filled(PAGE, 0x78))).toBe(0);
    expect(devRead(0, PAGE)).toEqual(zeros(PAGE));
    expect(sync(p, fd, DMA_BUF_SYNC_END | rw)).toBe(0);
    expect(devRead(0, PAGE)).toEqual(filled(PAGE, 0x78));
  });

  it('SYNC START|WRITE (DMA_TO_DEVICE) does not invalidate: stale lines survive it', () => {
    // arch_sync_dma_for_cpu(): if (dir == DMA_TO_DEVICE) return;
    const { p, fd, addr, devWrite } = rig('system', PAGE);
    expect(cpuRead(p, addr, PAGE)).toEqual(zeros(PAGE));
    devWrite(0, filled(PAGE, 0x99));
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(cpuRead(p, addr, PAGE)).toEqual(zeros(PAGE));
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(cpuRead(p, addr, PAGE)).toEqual(filled(PAGE, 0x99));
  });

  it('START|READ discards un-ENDed CPU writes (invalidate, not clean); START|WRITE keeps them', () => {
    // dcache_inval_poc drops whole dirty lines; DMA_TO_DEVICE skips it altogether.
    const { k, p, fd, addr, devRead } = rig('system', 2 * PAGE);
    const runs = runsOf(p, fd);
    expect(p.writeMem(addr, filled(PAGE, 0x11))).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(cpuRead(p, addr, PAGE)).toEqual(filled(PAGE, 0x11));
    expect(dirtyIn(k, runs)).toBe(PAGE / LINE);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(dirtyIn(k, runs)).toBe(0);
    expect(cpuRead(p, addr, PAGE)).toEqual(zeros(PAGE));
    expect(devRead(0, PAGE)).toEqual(zeros(PAGE));
  });
});

// ------------------------------------------------------------------------------------------------
describe('the uncached heap', () => {
  it('system-uncached needs no SYNC in either direction, and CPU accesses bypass the cache', () => {
    // Android's system-uncached heap maps write-combined (pgprot_writecombine) and skips CPU syncs.
    const { k, p, fd, addr, devRead, devWrite } = rig('system-uncached', 2 * PAGE);
    const stats = { ...k.cache.stats };
    expect(cpuRead(p, addr, LINE)).toEqual(zeros(LINE));
    devWrite(0, filled(2 * LINE, 0x61));
    expect(cpuRead(p, addr, 2 * LINE)).toEqual(filled(2 * LINE, 0x61));
    expect(p.writeMem(addr + PAGE, filled(256, 0x77))).toBe(0);
    expect(devRead(PAGE, 256)).toEqual(filled(256, 0x77));
    expect(dirtyIn(k, runsOf(p, fd))).toBe(0);
    expect(k.cache.stats).toEqual(stats);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(k.cache.stats).toEqual(stats);
  });
});

// ------------------------------------------------------------------------------------------------
describe('maintenance only for mapped attachments', () => {
  it('SYNC with no attachment does no maintenance; the import (dma_map) cleans, so the device sees the writes', () => {
    // system_heap begin/end_cpu_access loop only over attachments; none → nothing. dma_map_sgtable
    // (system_heap_map_dma_buf, from vgem's import) syncs for the device: a clean.
    const k = boot();
    const p = k.createProcess({ name: 'cpu' });
    const fd = alloc(p, 2 * PAGE, 'system');
    const addr = mmapAll(p, fd, 2 * PAGE);
    const runs = runsOf(p, fd);
    expect(p.writeMem(addr, filled(2 * PAGE, 0x42))).toBe(0);
    expect(dirtyIn(k, runs)).toBe((2 * PAGE) / LINE);
    const wb = k.cache.stats.writebacks;
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)).toBe(0); // no invalidate either
    expect(dirtyIn(k, runs)).toBe((2 * PAGE) / LINE);
    expect(k.cache.stats.writebacks).toBe(wb);
    expect(cpuRead(p, addr, 2 * PAGE)).toEqual(filled(2 * PAGE, 0x42));
    const { drm, handle } = importVgem(p, fd);
    expect(dirtyIn(k, runs)).toBe(0);
    expect(k.vgem.dmaRead(p, drm, handle, 0, 2 * PAGE)).toEqual(filled(2 * PAGE, 0x42));
  });

  it('an attachment that is attached but not mapped gets no maintenance; mapping it cleans', () => {
    // system_heap: "if (!a->mapped) continue;" in both begin and end_cpu_access.
    const k = boot();
    const p = k.createProcess({ name: 'cpu' });
    const fd = alloc(p, PAGE, 'system');
    const addr = mmapAll(p, fd, PAGE);
    const runs = runsOf(p, fd);
    const dmabuf = k.runAs(p, () => dmaBufGet(k, fd)) as DmaBuf;
    const attach = dmaBufAttach(dmabuf, { name: 'isp' }) as DmaBufAttachment;
    expect(p.writeMem(addr, filled(PAGE, 0x24))).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(dirtyIn(k, runs)).toBe(PAGE / LINE);
    const run = runs[0] as PageRun;
    expect(k.mem.view(run.pfn * PAGE, PAGE)).toEqual(zeros(PAGE));
    const sgt = dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL);
    expect(typeof sgt).toBe('object');
    expect(dirtyIn(k, runs)).toBe(0);
    expect(k.mem.view(run.pfn * PAGE, PAGE)).toEqual(filled(PAGE, 0x24));
    // Now mapped: a further write is cleaned by END.
    expect(p.writeMem(addr, filled(LINE, 0x25))).toBe(0);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    expect(k.mem.view(run.pfn * PAGE, LINE)).toEqual(filled(LINE, 0x25));
    if (typeof sgt !== 'number') dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    dmaBufDetach(dmabuf, attach);
    dmaBufPut(dmabuf);
    expect(k.warnings).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
describe('natural eviction (4 KiB, 4-way cache)', () => {
  // 4096 B / 64 B lines / 4 ways = 16 sets; every page starts at set 0, so line i of the buffer is in
  // set i % 16 whatever the pfns. Writing n bytes from offset 0 leaves the last 4 lines of every set, i.e.
  // the last min(n, 4096) bytes, dirty; every earlier line was evicted and written back.
  it.each([
    [16 * KiB, 12 * KiB],
    [6 * KiB, 2 * KiB],
    [4 * KiB, 0],
    [4 * KiB + LINE, LINE],
  ])('writing %i bytes without SYNC END: the device sees exactly the first %i', (n, writtenBack) => {
    const k = boot(
      { systemBytes: 1 * MiB, cpuCacheBytes: 4096, cpuCacheWays: 4 },
      { systemUncached: false, cma: false, carveout: false },
    );
    expect([k.cache.sets, k.cache.ways, k.cache.lineBytes]).toEqual([16, 4, LINE]);
    const { p, fd, addr, devRead } = rig('system', 16 * KiB, k);
    const pattern = Uint8Array.from({ length: n }, (_, i) => (i % 255) + 1);
    const wb = k.cache.stats.writebacks;
    expect(p.writeMem(addr, pattern)).toBe(0);
    const seen = devRead(0, 16 * KiB);
    expect(seen.subarray(0, writtenBack)).toEqual(pattern.subarray(0, writtenBack));
    expect(seen.subarray(writtenBack)).toEqual(zeros(16 * KiB - writtenBack));
    expect(k.cache.stats.writebacks - wb).toBe(writtenBack / LINE);
    expect(dirtyIn(k, runsOf(p, fd))).toBe((n - writtenBack) / LINE);
    expect(sync(p, fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)).toBe(0);
    const after = devRead(0, 16 * KiB);
    expect(after.subarray(0, n)).toEqual(pattern);
    expect(after.subarray(n)).toEqual(zeros(16 * KiB - n));
  });
});

// ------------------------------------------------------------------------------------------------
describe('a fresh buffer never shows a previous owner', () => {
  it.each(CACHED_HEAPS)('%s: dirty lines of a freed buffer neither read back nor reach the device', (heap) => {
    // Heaps hand out zeroed pages (__GFP_ZERO / memset after cma_alloc); stale CPU lines of those pages
    // must be gone before the buffer is visible, or a later clean would write the old owner's bytes.
    const k = boot();
    const a = k.createProcess({ name: 'old-owner' });
    const fdA = alloc(a, PAGE, heap);
    const runA = runsOf(a, fdA)[0] as PageRun;
    const addrA = mmapAll(a, fdA, PAGE);
    expect(a.writeMem(addrA, filled(PAGE, 0xaa))).toBe(0); // no SYNC END: all 64 lines dirty
    expect(dirtyIn(k, [runA])).toBe(PAGE / LINE);
    a.exit();
    expect(k.dmaBufList.bufs.size).toBe(0);
    const b = k.createProcess({ name: 'new-owner' });
    const fdB = alloc(b, PAGE, heap);
    const runB = runsOf(b, fdB)[0] as PageRun;
    expect(runB.pfn).toBe(runA.pfn); // the same page came back
    expect(dirtyIn(k, [runB])).toBe(0);
    const addrB = mmapAll(b, fdB, PAGE);
    expect(cpuRead(b, addrB, PAGE)).toEqual(zeros(PAGE));
    const { drm, handle } = importVgem(b, fdB); // dma_map cleans: stale dirty lines would land now
    expect(k.vgem.dmaRead(b, drm, handle, 0, PAGE)).toEqual(zeros(PAGE));
    expect(cpuRead(b, addrB, PAGE)).toEqual(zeros(PAGE));
  });
});

// ------------------------------------------------------------------------------------------------
describe('CpuCache unit (1 KiB, 2-way: 8 sets)', () => {
  function setup() {
    const mem = new PhysicalMemory();
    const arena = mem.addArena('test', 64 * KiB);
    const base = arena.basePfn * PAGE;
    const cache = CpuCache.create(mem, 1024, 2);
    const memAt = (off: number, n: number): Uint8Array => mem.view(base + off, n);
    const cached = (off: number, n: number): Uint8Array => {
      const out = new Uint8Array(n);
      cache.read(base + off, out);
      return out;
    };
    return { mem, base, cache, memAt, cached };
  }
  /** Offset of the i-th line that maps to set 0 (the arena base is set 0). */
  const set0 = (i: number): number => i * 8 * LINE;

  it('has lines × ways × sets geometry and starts empty', () => {
    const { base, cache } = setup();
    expect([cache.lineBytes, cache.ways, cache.sets]).toEqual([LINE, 2, 8]);
    expect((base / LINE) % cache.sets).toBe(0);
    expect(cache.dirtyLines(base, 64 * KiB)).toBe(0);
  });

  it('a read fills the line; memory changed behind it is not seen until invalidate', () => {
    const { base, cache, memAt, cached } = setup();
    expect(cached(0, 4)).toEqual(zeros(4));
    memAt(0, 4).set([1, 2, 3, 4]); // a device write
    expect(cached(0, 4)).toEqual(zeros(4));
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1 });
    cache.invalidate(base, LINE);
    expect(cached(0, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(cache.stats).toMatchObject({ hits: 1, misses: 2 });
  });

  it('writes are write-back: memory changes only on clean, and clean keeps the line valid', () => {
    const { base, cache, memAt, cached } = setup();
    cache.write(base + 10, Uint8Array.of(7, 8, 9));
    expect(memAt(10, 3)).toEqual(zeros(3));
    expect(cache.dirtyLines(base, LINE)).toBe(1);
    cache.clean(base, LINE);
    expect(memAt(10, 3)).toEqual(Uint8Array.of(7, 8, 9));
    expect(cache.dirtyLines(base, LINE)).toBe(0);
    expect(cache.stats.writebacks).toBe(1);
    memAt(10, 1)[0] = 0x55; // a device write after the clean
    const misses = cache.stats.misses;
    expect(cached(10, 1)).toEqual(Uint8Array.of(7)); // still the cached (now stale) line
    expect(cache.stats.misses).toBe(misses);
    cache.clean(base, LINE); // a clean line is not written back again
    expect(memAt(10, 1)).toEqual(Uint8Array.of(0x55));
    expect(cache.stats.writebacks).toBe(1);
  });

  it('invalidate drops dirty data without writing it back', () => {
    const { base, cache, memAt, cached } = setup();
    memAt(128, 2).set([0x21, 0x22]);
    cache.write(base + 128, Uint8Array.of(0xf1, 0xf2));
    expect(cached(128, 2)).toEqual(Uint8Array.of(0xf1, 0xf2));
    cache.invalidate(base + 128, LINE);
    expect(cache.dirtyLines(base + 128, LINE)).toBe(0);
    expect(memAt(128, 2)).toEqual(Uint8Array.of(0x21, 0x22));
    expect(cached(128, 2)).toEqual(Uint8Array.of(0x21, 0x22));
    expect(cache.stats.writebacks).toBe(0);
  });

  it('cleanInvalidate writes back, then drops the line', () => {
    const { base, cache, memAt, cached } = setup();
    cache.write(base, Uint8Array.of(5));
    cache.cleanInvalidate(base, LINE);
    expect(memAt(0, 1)).toEqual(Uint8Array.of(5));
    memAt(0, 1)[0] = 6;
    expect(cached(0, 1)).toEqual(Uint8Array.of(6)); // refilled: the line was dropped
  });

  it('write-allocate fills the whole line, so a clean also writes back stale neighbouring bytes', () => {
    // The classic non-coherent hazard: CPU and device sharing one cache line.
    const { base, cache, memAt } = setup();
    cache.write(base, Uint8Array.of(1)); // fills bytes 0..63 from memory (zeros), byte 0 := 1
    memAt(32, 1)[0] = 0x99; // the device writes another byte of the same line
    cache.clean(base, 1);
    expect(memAt(0, 1)).toEqual(Uint8Array.of(1));
    expect(memAt(32, 1)).toEqual(Uint8Array.of(0)); // the device's byte was overwritten
  });

  it('eviction is round-robin per set (not LRU) and writes dirty victims back', () => {
    const { cache, memAt, cached, base } = setup();
    cache.write(base + set0(0), Uint8Array.of(0xa1)); // way 0
    cache.write(base + set0(1), Uint8Array.of(0xb1)); // way 1
    expect(cached(set0(0), 1)).toEqual(Uint8Array.of(0xa1)); // a hit: LRU would now spare line 0
    cache.write(base + set0(2), Uint8Array.of(0xc1)); // round-robin victim: way 0 (line 0)
    expect(memAt(set0(0), 1)).toEqual(Uint8Array.of(0xa1));
    expect(memAt(set0(1), 1)).toEqual(Uint8Array.of(0));
    expect(cache.dirtyLines(base + set0(0), LINE)).toBe(0);
    expect(cache.dirtyLines(base + set0(1), LINE)).toBe(1);
    expect(cache.stats).toMatchObject({ evictions: 1, writebacks: 1 });
    cache.write(base + set0(3), Uint8Array.of(0xd1)); // next victim: way 1 (line 1)
    expect(memAt(set0(1), 1)).toEqual(Uint8Array.of(0xb1));
    expect(memAt(set0(2), 1)).toEqual(Uint8Array.of(0));
    expect(cache.stats).toMatchObject({ evictions: 2, writebacks: 2 });
    // Other sets are untouched by set 0's traffic.
    cache.write(base + LINE, Uint8Array.of(0xe1));
    expect(cache.stats.evictions).toBe(2);
  });

  it('evicting a clean line writes nothing back', () => {
    const { cache, cached } = setup();
    cached(set0(0), 1);
    cached(set0(1), 1);
    cached(set0(2), 1);
    expect(cache.stats).toMatchObject({ misses: 3, evictions: 1, writebacks: 0 });
  });

  it('the same access history always gives the same memory, cache contents and stats', () => {
    // Replay depends on it: no randomness and no dependence on anything but the access sequence.
    const run = () => {
      const { base, cache, memAt, cached } = setup();
      let seed = 12345;
      const next = (n: number): number => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed % n;
      };
      for (let i = 0; i < 3000; i++) {
        const off = next(8 * KiB);
        const len = 1 + next(150);
        switch (next(5)) {
          case 0:
          case 1:
            cache.write(base + off, filled(len, next(256)));
            break;
          case 2:
            cached(off, len);
            break;
          case 3:
            cache.clean(base + off, len);
            break;
          default:
            cache.invalidate(base + off, len);
        }
      }
      return { mem: memAt(0, 8 * KiB).slice(), view: cached(0, 8 * KiB), stats: { ...cache.stats } };
    };
    const first = run();
    const second = run();
    expect(first.stats.evictions).toBeGreaterThan(100);
    expect(second.mem).toEqual(first.mem);
    expect(second.view).toEqual(first.view);
    expect(second.stats).toEqual(first.stats);
  });

  it('a range larger than the cache is maintained by scanning: only lines inside it are touched', () => {
    const { base, cache, memAt } = setup();
    for (let i = 0; i < 16; i++) cache.write(base + i * LINE, filled(LINE, i + 1)); // fills all 16 slots
    expect(cache.dirtyLines(base, 16 * LINE)).toBe(16);
    cache.invalidate(base + 4 * LINE, 10 * LINE); // 10 lines > 8 sets: the scan path
    expect(cache.dirtyLines(base, 16 * LINE)).toBe(6);
    cache.clean(base, 64 * KiB); // also the scan path
    for (let i = 0; i < 16; i++) {
      const expected = i >= 4 && i < 14 ? zeros(LINE) : filled(LINE, i + 1);
      expect(memAt(i * LINE, LINE), `line ${i}`).toEqual(expected);
    }
    expect(cache.dirtyLines(base, 64 * KiB)).toBe(0);
  });

  it('a recycled cache comes back empty and replaces lines as a new one does', () => {
    const { base, cache } = setup();
    for (let i = 0; i < 40; i++) cache.write(base + i * 3 * LINE, filled(LINE, i + 1)); // dirty, evictions
    expect(cache.dirtyLines(base, 64 * KiB)).toBeGreaterThan(0);
    const mem = new PhysicalMemory();
    const arena = mem.addArena('again', 64 * KiB);
    cache.recycle();
    const reused = CpuCache.create(mem, 1024, 2);
    const fresh = CpuCache.create(mem, 1024, 2); // the pool had one: this one is new
    expect(reused.sab).toBe(cache.sab);
    expect(fresh.sab).not.toBe(cache.sab);
    const b = arena.basePfn * PAGE;
    expect(reused.dirtyLines(b, 64 * KiB)).toBe(0);
    // The same history on both: the same memory and the same hits, misses and evictions.
    for (const c of [reused, fresh]) {
      for (let i = 0; i < 300; i++) c.write(b + ((i * 7919) % 8192), filled(1 + (i % 90), i & 0xff));
      c.clean(b, 16 * KiB);
    }
    expect(reused.stats).toEqual(fresh.stats);
  });

  it('agrees with a reference model on any sequence of accesses and maintenance, including an emptied cache', () => {
    // The model: per set, `ways` slots of {line, dirty, bytes}, round-robin victims; memory beside it.
    // The cache skips maintenance when no line is valid, so sequences that empty it and fill it again
    // (invalidate, cleanInvalidate of everything) must leave both in the same state.
    type Kind = 'write' | 'read' | 'clean' | 'invalidate' | 'cleanInvalidate' | 'dma';
    const step = (kind: fc.Arbitrary<Kind>, v: fc.Arbitrary<number>, lenMax = 200) =>
      fc.record({ kind, off: fc.nat(4 * KiB - 1), len: fc.integer({ min: 1, max: lenMax }), v });
    const op = fc.oneof(
      step(fc.constant('write'), fc.nat(255)),
      step(fc.constant('read'), fc.constant(0)),
      step(fc.constantFrom('clean', 'invalidate', 'cleanInvalidate'), fc.constant(0), 4 * KiB),
      step(fc.constant('dma'), fc.nat(255)), // a device writes memory behind the cache
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const { base, cache, memAt, cached } = setup();
        const size = 4 * KiB + 256;
        const mem = new Uint8Array(size);
        const sets = cache.sets;
        const ways = cache.ways;
        const slots = Array.from({ length: sets * ways }, () => ({
          line: -1,
          dirty: false,
          bytes: new Uint8Array(LINE),
        }));
        const next = new Array<number>(sets).fill(0);
        const writeBack = (s: (typeof slots)[number]): void => {
          if (s.dirty) mem.set(s.bytes, s.line * LINE);
          s.dirty = false;
        };
        const slotOf = (line: number): (typeof slots)[number] => {
          const set = line % sets;
          for (let w = 0; w < ways; w++)
            if (slots[set * ways + w]?.line === line) return slots[set * ways + w] as (typeof slots)[number];
          const way = next[set] as number;
          next[set] = (way + 1) % ways;
          const s = slots[set * ways + way] as (typeof slots)[number];
          if (s.line >= 0) writeBack(s);
          s.line = line;
          s.dirty = false;
          s.bytes.set(mem.subarray(line * LINE, (line + 1) * LINE));
          return s;
        };
        const inRange = (s: (typeof slots)[number], off: number, len: number): boolean =>
          s.line >= 0 && s.line >= Math.floor(off / LINE) && s.line <= Math.floor((off + len - 1) / LINE);
        for (const o of ops) {
          const len = Math.min(o.len, size - o.off);
          if (o.kind === 'write') {
            cache.write(base + o.off, filled(len, o.v));
            for (let i = 0; i < len; i++) {
              const s = slotOf(Math.floor((o.off + i) / LINE));
              s.bytes[(o.off + i) % LINE] = o.v;
              s.dirty = true;
            }
          } else if (o.kind === 'read') {
            const got = cached(o.off, len);
            const want = new Uint8Array(len);
            for (let i = 0; i < len; i++)
              want[i] = slotOf(Math.floor((o.off + i) / LINE)).bytes[(o.off + i) % LINE] as number;
            expect(got).toEqual(want);
          } else if (o.kind === 'dma') {
            memAt(o.off, len).fill(o.v);
            mem.fill(o.v, o.off, o.off + len);
          } else {
            cache[o.kind](base + o.off, len);
            for (const s of slots) {
              if (!inRange(s, o.off, len)) continue;
              if (o.kind !== 'invalidate') writeBack(s);
              if (o.kind !== 'clean') {
                s.line = -1;
                s.dirty = false;
              }
            }
          }
        }
        expect(memAt(0, size)).toEqual(mem);
        expect(cache.dirtyLines(base, size)).toBe(slots.filter((s) => s.dirty).length);
      }),
      { numRuns: 300 },
    );
  });
});
