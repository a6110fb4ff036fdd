/**
 * The streaming DMA API (kernel/dma/mapping.c with arm64's arch hooks), for devices that are not
 * coherent with the CPU cache.
 *
 * Contract:
 * - `mapSgtable` turns an exporter's private page runs into an sg table of DMA addresses and lengths.
 *   That table is all an importer ever gets: the runs live in a module-private WeakMap, so nothing on the
 *   table leads to pages (the reason dma_buf_get_pfn was rejected).
 * - Map does `sync_for_device` and unmap does `sync_for_cpu`, unless DMA_ATTR_SKIP_CPU_SYNC; the explicit
 *   `sync*ForCpu/ForDevice` calls are what begin/end_cpu_access use. arm64 semantics:
 *     for_device(any dir)            → clean (write dirty CPU lines back)
 *     for_cpu(FROM_DEVICE|BIDIR)     → invalidate;  for_cpu(TO_DEVICE) → nothing
 * - An sg table is live from map to unmap. Device accesses through a dead table are reported by the
 *   caller (an IOMMU would fault); this module only answers "is it live".
 */
import { assert } from './assert.js';
import type { CpuCache } from './cpu-cache.js';
import type { PageRun, PhysicalMemory } from './memory.js';
import { PAGE_SIZE } from './uapi.js';

/** `enum dma_data_direction` (include/linux/dma-direction.h). */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
export type DmaDataDirection = 0 | 1 | 2 | 3;
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;

/** `struct device`, as much of it as DMA needs. */
export interface Device {
  readonly name: string;
}

export interface SgEntry {
  readonly dmaAddress: number;
  readonly lengthBytes: number;
}

let nextSgtId = 1;

/**
 * The pages behind each table, reachable only through this module's `sgTableRuns`, which exporters and
 * the DMA layer import and importers have no reason to: nothing on the table object leads to pages.
 */
const runsByTable = new WeakMap<SgTable, readonly PageRun[]>();
/** Tables that are no longer live (unmapped, or their buffer or attachment went away). */
const deadTables = new WeakSet<SgTable>();
/** Tables whose exporter moved the buffer (move_notify) before the importer unmapped them. */
const invalidatedTables = new WeakSet<SgTable>();

/** @internal exporters and the DMA layer only. */
export function sgTableRuns(sgt: SgTable): readonly PageRun[] {
  const runs = runsByTable.get(sgt);
  assert(runs !== undefined, `sg table ${sgt.id} has no pages`);
  return runs;
}
/** @internal The table stops being live (unmap, detach, release). */
export function sgTableKill(sgt: SgTable): void {
  deadTables.add(sgt);
}
/** @internal move_notify: the table still maps the old pages, which the importer may no longer write. */
export function sgTableInvalidate(sgt: SgTable): void {
  invalidatedTables.add(sgt);
}
export function sgTableInvalidated(sgt: SgTable): boolean {
  return invalidatedTables.has(sgt);
}

/** What `map_dma_buf` returns: DMA addresses only. */
export class SgTable {
  readonly id = nextSgtId++;
  readonly device: Device;
  readonly dir: DmaDataDirection;
  readonly entries: readonly SgEntry[];
  readonly attrs: number;

  constructor(device: Device, dir: DmaDataDirection, runs: readonly PageRun[], attrs: number) {
    this.device = device;
    this.dir = dir;
    this.attrs = attrs;
    runsByTable.set(this, runs);
    this.entries = Object.freeze(
      runs.map((r) => Object.freeze({ dmaAddress: r.pfn * PAGE_SIZE, lengthBytes: r.pageCount * PAGE_SIZE })),
    );
  }
  get live(): boolean {
    return !deadTables.has(this);
  }
  get totalBytes(): number {
    let n = 0;
    for (const e of this.entries) n += e.lengthBytes;
    return n;
  }
}

export class DmaMapping {
  private readonly mem: PhysicalMemory;
  private readonly cache: CpuCache;
  constructor(mem: PhysicalMemory, cache: CpuCache) {
    this.mem = mem;
    this.cache = cache;
  }

  /** `dma_map_sgtable`: returns the table; this model cannot fail to map (no IOMMU space to run out). */
  mapSgtable(dev: Device, runs: readonly PageRun[], dir: DmaDataDirection, attrs = 0): SgTable {
    assert(dir !== DMA_NONE, 'dma_map with DMA_NONE');
    const sgt = new SgTable(dev, dir, runs, attrs);
    if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) this.syncForDevice(runs, dir);
    return sgt;
  }

  /** `dma_unmap_sgtable`. */
  unmapSgtable(sgt: SgTable, dir: DmaDataDirection, attrs = 0): void {
    assert(sgt.live, `sg table ${sgt.id} unmapped twice`);
    if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) this.syncForCpu(sgTableRuns(sgt), dir);
    sgTableKill(sgt);
  }

  syncSgtableForCpu(sgt: SgTable, dir: DmaDataDirection): void {
    this.syncForCpu(sgTableRuns(sgt), dir);
  }
  syncSgtableForDevice(sgt: SgTable, dir: DmaDataDirection): void {
    this.syncForDevice(sgTableRuns(sgt), dir);
  }

  /** arch_sync_dma_for_device: arm64 always cleans, whatever the direction. */
  syncForDevice(runs: readonly PageRun[], _dir: DmaDataDirection): void {
    for (const r of runs) this.cache.clean(r.pfn * PAGE_SIZE, r.pageCount * PAGE_SIZE);
  }
  /** arch_sync_dma_for_cpu: nothing for TO_DEVICE, otherwise invalidate. */
  syncForCpu(runs: readonly PageRun[], dir: DmaDataDirection): void {
    if (dir === DMA_TO_DEVICE) return;
    for (const r of runs) this.cache.invalidate(r.pfn * PAGE_SIZE, r.pageCount * PAGE_SIZE);
  }

  /**
   * A device's view of `lengthBytes` at byte `offset` of a mapped table, as subarrays of the arenas:
   * device reads and writes go straight to memory, never through the CPU cache.
   */
  deviceSpans(sgt: SgTable, offset: number, lengthBytes: number): Uint8Array[] {
    assert(offset >= 0 && lengthBytes >= 0, 'negative DMA span');
    assert(offset + lengthBytes <= sgt.totalBytes, 'DMA span past the end of the table');
    const spans: Uint8Array[] = [];
    let skip = offset;
    let left = lengthBytes;
    for (const e of sgt.entries) {
      if (left === 0) break;
      if (skip >= e.lengthBytes) {
        skip -= e.lengthBytes;
        continue;
      }
      const n = Math.min(e.lengthBytes - skip, left);
      spans.push(this.mem.view(e.dmaAddress + skip, n));
      left -= n;
      skip = 0;
    }
    return spans;
  }
}
