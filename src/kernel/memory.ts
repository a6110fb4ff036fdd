/**
 * Physical memory: page frames in SharedArrayBuffer arenas.
 *
 * Contract:
 * - One physical address space. Each arena is a contiguous range of page frames [basePfn, basePfn+pages)
 *   backed by its own SharedArrayBuffer, so device workers in other threads can be handed the arena and
 *   read or write a buffer's bytes in place. Nothing in the model ever copies buffer bytes to move them.
 * - Arenas never overlap and never move; a pfn names the same bytes for the kernel's whole life.
 * - DMA addresses are physical addresses (no IOMMU is modelled yet), but importers only ever learn them
 *   through an sg table from `dma_map_sgtable`; pages stay private to the exporter.
 */
import { assert } from './assert.js';
import { limits } from './limits.js';
import { PAGE_SHIFT, PAGE_SIZE } from './uapi.js';

export interface Arena {
  readonly name: string;
  readonly basePfn: number;
  readonly pageCount: number;
  readonly sab: SharedArrayBuffer;
  readonly bytes: Uint8Array;
}

/** A run of physically contiguous pages: what an sg entry describes before DMA mapping. */
export interface PageRun {
  readonly pfn: number;
  readonly pageCount: number;
}

/** Arenas start at 1 GiB and are 16 MiB aligned, like DRAM on many ARM SoCs. */
const PHYS_BASE_BYTES = 1 << 30;
const ARENA_ALIGN_PAGES = (16 << 20) >> PAGE_SHIFT;

export class PhysicalMemory {
  private readonly arenas: Arena[] = [];
  private nextPfn = PHYS_BASE_BYTES >> PAGE_SHIFT;

  addArena(name: string, sizeBytes: number): Arena {
    assert(sizeBytes > 0 && sizeBytes % PAGE_SIZE === 0, `arena ${name} size ${sizeBytes} not pages`);
    assert(sizeBytes <= limits.arenaBytesMax, `arena ${name} over arenaBytesMax`);
    assert(!this.arenas.some((a) => a.name === name), `arena ${name} added twice`);
    const sab = new SharedArrayBuffer(sizeBytes);
    const arena: Arena = {
      name,
      basePfn: this.nextPfn,
      pageCount: sizeBytes >> PAGE_SHIFT,
      sab,
      bytes: new Uint8Array(sab),
    };
    this.arenas.push(arena);
    const end = arena.basePfn + arena.pageCount;
    this.nextPfn = Math.ceil(end / ARENA_ALIGN_PAGES) * ARENA_ALIGN_PAGES;
    return arena;
  }

  arenaList(): readonly Arena[] {
    return this.arenas;
  }

  /** The arena holding `pfn`, or undefined for a hole in the address space. */
  arenaOf(pfn: number): Arena | undefined {
    for (const a of this.arenas) if (pfn >= a.basePfn && pfn < a.basePfn + a.pageCount) return a;
    return undefined;
  }

  /** Bytes of `lengthBytes` at physical address `phys`; the range must lie in one arena. */
  view(phys: number, lengthBytes: number): Uint8Array {
    const pfn = Math.floor(phys / PAGE_SIZE);
    const arena = this.arenaOf(pfn);
    assert(arena !== undefined, `physical address 0x${phys.toString(16)} is in no arena`);
    const offset = phys - arena.basePfn * PAGE_SIZE;
    assert(offset + lengthBytes <= arena.pageCount * PAGE_SIZE, 'physical range crosses an arena end');
    return arena.bytes.subarray(offset, offset + lengthBytes);
  }

  zeroRun(run: PageRun): void {
    this.view(run.pfn * PAGE_SIZE, run.pageCount * PAGE_SIZE).fill(0);
  }
}

/** Total pages of a list of runs. */
export function runPages(runs: readonly PageRun[]): number {
  let n = 0;
  for (const r of runs) n += r.pageCount;
  return n;
}
