/**
 * The vram heap as a dynamic exporter (kernel-semantics §3.2, §3.5): registered only with vramBytes,
 * pinned buffers never move, eviction keeps every byte and tells dynamic importers, allocation under
 * pressure evicts the least recently used buffer that can move, and an evicted buffer comes back at a
 * map when nobody else maps it.
 */
import { describe, expect, it } from 'vitest';
import {
  type DmaBuf,
  type DmaBufAttachment,
  dmaBufDetach,
  dmaBufDeviceSpans,
  dmaBufDynamicAttach,
  dmaBufMapAttachmentUnlocked,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachmentUnlocked,
  dmaBufUnpin,
} from '../../src/kernel/dma-buf.js';
import {
  dmaFenceContextAlloc,
  dmaFenceInit,
  dmaFencePut,
  dmaFenceSignal,
  registerFenceOps,
} from '../../src/kernel/dma-fence.js';
import type { DmaHeap } from '../../src/kernel/dma-heap.js';
import { DMA_BIDIRECTIONAL, type SgTable } from '../../src/kernel/dma-mapping.js';
import {
  DMA_RESV_USAGE_WRITE,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvUnlock,
} from '../../src/kernel/dma-resv.js';
import { EBUSY, EINVAL, ENOMEM, isErr } from '../../src/kernel/errno.js';
import { VRAM_HEAP_NAME, vramEvict, vramPlacement, vramStats } from '../../src/kernel/heaps/vram-heap.js';
import { Kernel } from '../../src/kernel/kernel.js';
import type { MoveNotifyEvent } from '../../src/kernel/trace.js';
import { PAGE_SIZE } from '../../src/kernel/uapi.js';

const testFenceOps = registerFenceOps('vram-test', { getDriverName: () => 'test', getTimelineName: () => 'vram' });

function boot(vramPages: number): Kernel {
  return new Kernel({ memory: { vramBytes: vramPages * PAGE_SIZE, systemBytes: 16 << 20 } });
}

function vramHeap(k: Kernel): DmaHeap {
  const heap = k.heaps.find(VRAM_HEAP_NAME);
  if (heap === undefined) throw new Error('no vram heap');
  return heap;
}

function alloc(k: Kernel, pages: number): DmaBuf {
  const b = k.heaps.allocateInKernel(vramHeap(k), pages * PAGE_SIZE, 2);
  if (isErr(b)) throw new Error(`vram allocation failed: ${b}`);
  return b;
}

/** A dynamic importer that records move_notify and drops its table, as it must. */
class Importer {
  readonly notified: number[] = [];
  readonly attach: DmaBufAttachment;
  sgt: SgTable | null = null;
  constructor(
    readonly dmabuf: DmaBuf,
    name: string,
  ) {
    const a = dmaBufDynamicAttach(dmabuf, { name }, { moveNotify: (att) => this.notified.push(att.id) });
    if (isErr(a)) throw new Error(`attach failed: ${a}`);
    this.attach = a;
  }
  map(): SgTable {
    const sgt = dmaBufMapAttachmentUnlocked(this.attach, DMA_BIDIRECTIONAL);
    if (isErr(sgt)) throw new Error(`map failed: ${sgt}`);
    this.sgt = sgt;
    return sgt;
  }
  unmap(): void {
    if (this.sgt) dmaBufUnmapAttachmentUnlocked(this.attach, this.sgt, DMA_BIDIRECTIONAL);
    this.sgt = null;
  }
  write(offset: number, data: Uint8Array): void {
    const spans = dmaBufDeviceSpans(this.attach, this.sgt as SgTable, offset, data.length, 'write');
    if (isErr(spans)) throw new Error(`write failed: ${spans}`);
    let at = 0;
    for (const s of spans) {
      s.set(data.subarray(at, at + s.length));
      at += s.length;
    }
  }
  read(offset: number, n: number): Uint8Array {
    const spans = dmaBufDeviceSpans(this.attach, this.sgt as SgTable, offset, n, 'read');
    if (isErr(spans)) throw new Error(`read failed: ${spans}`);
    const out = new Uint8Array(n);
    let at = 0;
    for (const s of spans) {
      out.set(s, at);
      at += s.length;
    }
    return out;
  }
  detach(): void {
    this.unmap();
    dmaBufDetach(this.dmabuf, this.attach);
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return out;
}

function expectNoLeaks(k: Kernel): void {
  expect(k.dmaBufList.bufs.size).toBe(0);
  for (const u of k.memoryUsage()) expect(u, u.arena).toMatchObject({ freePages: u.totalPages });
}

function rules(k: Kernel): string[] {
  return k.warnings.map((w) => w.rule);
}

describe('vram heap registration', () => {
  it('exists only when vramBytes is set, with device-local, physically contiguous, uncached properties', () => {
    expect(new Kernel().heaps.find(VRAM_HEAP_NAME)).toBeUndefined();
    const k = boot(8);
    const heap = k.heaps.find(VRAM_HEAP_NAME);
    expect(heap?.properties).toMatchObject({
      backing: 'device-local',
      contiguity: 'physical',
      cpuCache: 'uncached',
      capacityBytes: 8 * PAGE_SIZE,
    });
    // After the boot heaps, so every other heap keeps its minor.
    expect(k.heaps.all().at(-1)?.name).toBe(VRAM_HEAP_NAME);
  });

  it('hands out one zeroed contiguous run per buffer, and refuses CPU mmap (no mmap op)', () => {
    const k = boot(8);
    const b = alloc(k, 3);
    const imp = new Importer(b, 'gpu');
    const sgt = imp.map();
    expect(sgt.entries).toHaveLength(1);
    expect(imp.read(0, 3 * PAGE_SIZE).every((x) => x === 0)).toBe(true);
    expect(b.ops.mmap).toBeUndefined();
    imp.detach();
    dmaBufPut(b);
    expectNoLeaks(k);
  });
});

describe('vramEvict', () => {
  it('moves the bytes to system memory, tells the dynamic importer, and a re-map reads them intact', () => {
    const k = boot(8);
    const events: MoveNotifyEvent[] = [];
    k.channels.subscribe('kernel:dmabuf:move-notify', (e) => events.push(e));
    const b = alloc(k, 2);
    const imp = new Importer(b, 'gpu');
    const before = imp.map();
    const data = pattern(2 * PAGE_SIZE, 1);
    imp.write(0, data);

    expect(vramEvict(k, b)).toBe(2 * PAGE_SIZE);
    expect(vramPlacement(b)).toBe('system');
    expect(imp.notified).toEqual([imp.attach.id]);
    expect(events).toEqual([{ ino: b.ino, importers: ['gpu'] }]);
    expect(vramStats(vramHeap(k))).toMatchObject({ evictions: 1, evictedBytes: 8192 });
    // Another importer maps while the first still holds its (invalidated) table: no move back to VRAM then,
    // and later neither, since the other's mapping is live. The first re-maps: new addresses, same bytes.
    const other = new Importer(b, 'observer');
    other.map();
    imp.unmap();
    imp.map();
    expect(imp.sgt?.entries.map((e) => e.dmaAddress)).not.toEqual(before.entries.map((e) => e.dmaAddress));
    expect(imp.read(0, data.length)).toEqual(data);
    expect(vramPlacement(b)).toBe('system');
    // Evicting it again moves nothing and tells nobody.
    expect(vramEvict(k, b)).toBe(0);
    expect(imp.notified).toHaveLength(1);
    other.detach();
    imp.detach();
    dmaBufPut(b);
    expect(rules(k)).toEqual([]);
    expectNoLeaks(k);
  });

  it('a write through the table the exporter invalidated is reported', () => {
    const k = boot(8);
    const b = alloc(k, 1);
    const imp = new Importer(b, 'gpu');
    imp.map();
    expect(vramEvict(k, b)).toBe(PAGE_SIZE);
    imp.write(0, new Uint8Array([1, 2, 3]));
    expect(rules(k)).toEqual(['dma-write-after-move-notify']);
    imp.detach();
    dmaBufPut(b);
  });

  it('refuses a pinned buffer (explicit pin, or a static importer mapped) with -EBUSY and tells nobody', () => {
    const k = boot(8);
    const b = alloc(k, 1);
    const dyn = new Importer(b, 'gpu');
    dyn.map();
    expect(dmaResvLock(b.resv, null)).toBe(0);
    expect(dmaBufPin(dyn.attach)).toBe(0);
    dmaResvUnlock(b.resv);
    expect(vramEvict(k, b)).toBe(-EBUSY);
    expect(dmaResvLock(b.resv, null)).toBe(0);
    dmaBufUnpin(dyn.attach);
    dmaResvUnlock(b.resv);
    // A static importer's mapping pins it too (pin on map), until it unmaps.
    const stat = dmaBufDynamicAttach(b, { name: 'display' }, null);
    if (isErr(stat)) throw new Error('attach');
    const sgt = dmaBufMapAttachmentUnlocked(stat, DMA_BIDIRECTIONAL);
    if (isErr(sgt)) throw new Error('map');
    expect(vramEvict(k, b)).toBe(-EBUSY);
    expect(dyn.notified).toEqual([]);
    dmaBufUnmapAttachmentUnlocked(stat, sgt, DMA_BIDIRECTIONAL);
    expect(vramEvict(k, b)).toBe(PAGE_SIZE);
    expect(dyn.notified).toHaveLength(1);
    dmaBufDetach(b, stat);
    dyn.detach();
    dmaBufPut(b);
    expect(rules(k)).toEqual([]);
    expectNoLeaks(k);
  });

  it('refuses a busy buffer (an unsignalled fence in its resv) until the fence signals', () => {
    const k = boot(8);
    const b = alloc(k, 1);
    const f = dmaFenceInit(k.fences, testFenceOps, dmaFenceContextAlloc(k.fences, 1), 1);
    if (isErr(f)) throw new Error('fence');
    expect(dmaResvLock(b.resv, null)).toBe(0);
    expect(dmaResvReserveFences(b.resv, 1)).toBe(0);
    expect(dmaResvAddFence(b.resv, f, DMA_RESV_USAGE_WRITE)).toBe(0);
    dmaResvUnlock(b.resv);
    expect(vramEvict(k, b)).toBe(-EBUSY);
    dmaFenceSignal(k.fences, f);
    expect(vramEvict(k, b)).toBe(PAGE_SIZE);
    dmaFencePut(k.fences, f);
    dmaBufPut(b);
    expectNoLeaks(k);
  });

  it('is -EINVAL for a buffer of another exporter, and -ENOMEM when system memory cannot take it', () => {
    const k = new Kernel({ memory: { vramBytes: 1 << 20, systemBytes: 1 << 20 } });
    const sys = k.heaps.find('system');
    const s = sys && k.heaps.allocateInKernel(sys, PAGE_SIZE, 2);
    if (s === undefined || isErr(s)) throw new Error('system alloc');
    expect(vramEvict(k, s)).toBe(-EINVAL);
    // System memory is 256 pages, one taken: a 256-page vram buffer has nowhere to go.
    const big = alloc(k, 256);
    expect(vramEvict(k, big)).toBe(-ENOMEM);
    expect(vramPlacement(big)).toBe('vram');
    dmaBufPut(big);
    dmaBufPut(s);
    expectNoLeaks(k);
  });
});

describe('allocation under pressure', () => {
  it('evicts the least recently used buffer that can move, skipping pinned ones, and retries', () => {
    const k = boot(4);
    const a = alloc(k, 2);
    const b = alloc(k, 2);
    const ia = new Importer(a, 'gpu-a');
    const ib = new Importer(b, 'gpu-b');
    ia.map();
    ia.write(0, pattern(2 * PAGE_SIZE, 5));
    ib.map(); // b is now the most recently used, a the least
    // Pin a: the LRU walk must skip it and take b.
    expect(dmaResvLock(a.resv, null)).toBe(0);
    expect(dmaBufPin(ia.attach)).toBe(0);
    dmaResvUnlock(a.resv);
    const c = alloc(k, 2);
    expect(vramPlacement(a)).toBe('vram');
    expect(vramPlacement(b)).toBe('system');
    expect(ib.notified).toHaveLength(1);
    expect(ia.notified).toHaveLength(0);
    // Everything pinned or too big: -ENOMEM, and nothing moved.
    expect(k.heaps.allocateInKernel(vramHeap(k), 5 * PAGE_SIZE, 2)).toBe(-ENOMEM);
    expect(dmaResvLock(a.resv, null)).toBe(0);
    dmaBufUnpin(ia.attach);
    dmaResvUnlock(a.resv);
    const d = alloc(k, 2); // now a (least recently used, unpinned) goes
    expect(vramPlacement(a)).toBe('system');
    expect(ia.notified).toHaveLength(1);
    ia.unmap();
    ia.map();
    expect(ia.read(0, 2 * PAGE_SIZE)).toEqual(pattern(2 * PAGE_SIZE, 5));
    expect(vramStats(vramHeap(k)).evictions).toBe(2);
    for (const i of [ia, ib]) i.detach();
    for (const x of [a, b, c, d]) dmaBufPut(x);
    expect(rules(k)).toEqual([]);
    expectNoLeaks(k);
  });

  it('an evicted buffer comes back at its next map when VRAM has room and nobody maps it, bytes intact', () => {
    const k = boot(4);
    const a = alloc(k, 2);
    const ia = new Importer(a, 'gpu');
    ia.map();
    ia.write(100, pattern(5000, 9));
    expect(vramEvict(k, a)).toBe(2 * PAGE_SIZE);
    ia.unmap();
    ia.map();
    expect(vramPlacement(a)).toBe('vram');
    expect(vramStats(vramHeap(k)).restores).toBe(1);
    expect(ia.read(100, 5000)).toEqual(pattern(5000, 9));
    ia.detach();
    dmaBufPut(a);
    expectNoLeaks(k);
  });
});
