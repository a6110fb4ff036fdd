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
 * - An arena's SharedArrayBuffer is the buffer of a shared `WebAssembly.Memory` (`memory`), for two
 *   reasons: wasm code (the SIMD frame checksum) can then read buffer bytes in place, and the memory is
 *   mapped lazily zeroed — a 4 MiB arena boots in ~15 µs instead of the ~400 µs a calloc'd
 *   SharedArrayBuffer costs, which a sweep pays once per run. Its size is rounded up to whole 64 KiB wasm
 *   pages; the bytes past the arena's last page frame belong to nobody and `bytes` does not cover them.
 * - A kernel whose life is over may hand its arenas back (`recycle`, the sim host after each run): the
 *   next kernel on this thread that asks for an arena of the same size gets the memory with its record of
 *   which pages were ever handed out, so allocation zeroes exactly those (as it would have in one long
 *   life). A sweep then neither maps fresh memory nor faults its pages in per run — and V8 frees a wasm
 *   memory only at a full GC, so without reuse a sweep grows by every run's touched pages until one comes.
 *   After `recycle` the PhysicalMemory has no arenas: any use of it is a dmafarm bug and asserts.
 */
import { assert } from './assert.js';
import { limits } from './limits.js';
import { RecyclePool } from './recycle-pool.js';
import { PAGE_SHIFT, PAGE_SIZE } from './uapi.js';

export interface Arena {
  readonly name: string;
  readonly basePfn: number;
  readonly pageCount: number;
  readonly sab: SharedArrayBuffer;
  /** The wasm memory whose buffer `sab` is (hand it to another thread with the sab: see `arenaBytes`). */
  readonly memory: WasmMemory;
  /** The arena's page frames, `pageCount * PAGE_SIZE` bytes of `sab`. */
  readonly bytes: Uint8Array;
}

/**
 * The part of the global `WebAssembly.Memory` used here. The project's TypeScript lib (es2023, no DOM)
 * declares no `WebAssembly`; Node 20 has it, so it is typed locally rather than pulling in the DOM lib.
 */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WasmMemoryApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmMemoryApi }).WebAssembly;

/** wasm32 pages are 64 KiB; an arena may be at most 4 GiB of them (and is at most limits.arenaBytesMax). */
export const WASM_PAGE_BYTES = 1 << 16;
const WASM_PAGES_MAX = 1 << 16;

/** This thread's wasm memories by their buffer: how wasm code finds the memory under a byte view. */
const wasmMemories = new WeakMap<ArrayBufferLike, WasmMemory>();

/** The wasm memory `buffer` belongs to, if this thread made or attached it (`arenaBytes`). */
export function wasmMemoryOf(buffer: ArrayBufferLike): WasmMemory | undefined {
  return wasmMemories.get(buffer);
}

/** A shared, fixed-size wasm memory of at least `sizeBytes` (whole wasm pages, lazily zeroed). */
export function sharedWasmMemory(sizeBytes: number): WasmMemory {
  const pages = Math.ceil(sizeBytes / WASM_PAGE_BYTES);
  assert(pages > 0 && pages <= WASM_PAGES_MAX, `wasm memory of ${sizeBytes} bytes over wasm32's 4 GiB`);
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
  wasmMemories.set(memory.buffer, memory);
  return memory;
}

/**
 * Another thread's view of an arena it was handed (`memory` and `pageCount`, as the kernel thread's
 * `Arena` has them): the bytes, with the memory registered for this thread's wasm code. Without a
 * memory (a plain SharedArrayBuffer), the bytes of `sab`.
 */
export function arenaBytes(a: { sab: SharedArrayBuffer; memory?: WasmMemory; pageCount: number }): Uint8Array {
  if (a.memory === undefined) return new Uint8Array(a.sab, 0, a.pageCount * PAGE_SIZE);
  const buffer = a.memory.buffer as SharedArrayBuffer;
  wasmMemories.set(buffer, a.memory);
  return new Uint8Array(buffer, 0, a.pageCount * PAGE_SIZE);
}

/** A run of physically contiguous pages: what an sg entry describes before DMA mapping. */
export interface PageRun {
  readonly pfn: number;
  readonly pageCount: number;
}

/** Arenas start at 1 GiB and are 16 MiB aligned, like DRAM on many ARM SoCs. */
const PHYS_BASE_BYTES = 1 << 30;
const ARENA_ALIGN_PAGES = (16 << 20) >> PAGE_SHIFT;

/** Wasm memories kept for the next kernel on this thread (`PhysicalMemory.recycle`), at most this many. */
export const ARENA_POOL_MEMORIES_MAX = 8;
const arenaPool = new RecyclePool<{ memory: WasmMemory; pageCount: number; used: Uint8Array }>(ARENA_POOL_MEMORIES_MAX);

/** An arena memory of `pageCount` page frames from the pool (with its used-page record), or a fresh one. */
function takeArenaMemory(sizeBytes: number): { memory: WasmMemory; used: Uint8Array } {
  const pageCount = sizeBytes >> PAGE_SHIFT;
  return (
    arenaPool.take((e) => e.pageCount === pageCount) ?? {
      memory: sharedWasmMemory(sizeBytes),
      used: new Uint8Array(pageCount),
    }
  );
}

export class PhysicalMemory {
  private readonly arenas: Arena[] = [];
  /**
   * Per arena, one byte per page: 1 once the page was ever zeroed for an allocation (and so possibly
   * written since). A fresh wasm memory is zero, so a page never handed out needs no zeroing: a run boots
   * a kernel per schedule, and most of its allocations land on such pages.
   */
  private readonly used: Uint8Array[] = [];
  private nextPfn = PHYS_BASE_BYTES >> PAGE_SHIFT;
  private recycled = false;

  addArena(name: string, sizeBytes: number): Arena {
    assert(sizeBytes > 0 && sizeBytes % PAGE_SIZE === 0, `arena ${name} size ${sizeBytes} not pages`);
    assert(sizeBytes <= limits.arenaBytesMax, `arena ${name} over arenaBytesMax`);
    assert(!this.arenas.some((a) => a.name === name), `arena ${name} added twice`);
    assert(!this.recycled, 'addArena after recycle');
    const { memory, used } = takeArenaMemory(sizeBytes);
    const sab = memory.buffer as SharedArrayBuffer;
    const arena: Arena = {
      name,
      basePfn: this.nextPfn,
      pageCount: sizeBytes >> PAGE_SHIFT,
      sab,
      memory,
      bytes: new Uint8Array(sab, 0, sizeBytes),
    };
    this.arenas.push(arena);
    this.used.push(used);
    const end = arena.basePfn + arena.pageCount;
    this.nextPfn = Math.ceil(end / ARENA_ALIGN_PAGES) * ARENA_ALIGN_PAGES;
    return arena;
  }

  arenaList(): readonly Arena[] {
    return this.arenas;
  }

  /**
   * The kernel is gone: hand every arena's memory to the next kernel on this thread (see the contract).
   * Nothing may hold a view of them any more; the arena list given out by `arenaList` is emptied, so a
   * straggler that looks an address up asserts instead of reading another run's bytes.
   */
  recycle(): void {
    assert(!this.recycled, 'PhysicalMemory recycled twice');
    this.recycled = true;
    this.arenas.forEach((a, i) => {
      const used = this.used[i];
      if (used !== undefined) arenaPool.give({ memory: a.memory, pageCount: a.pageCount, used });
    });
    this.arenas.length = 0;
    this.used.length = 0;
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

  /** Zero a run about to be handed out (skipping pages no allocation ever had: still zero). */
  zeroRun(run: PageRun): void {
    const i = this.arenas.findIndex((a) => run.pfn >= a.basePfn && run.pfn < a.basePfn + a.pageCount);
    const arena = this.arenas[i];
    const used = this.used[i];
    assert(arena !== undefined && used !== undefined, `pfn ${run.pfn} is in no arena`);
    const first = run.pfn - arena.basePfn;
    assert(first + run.pageCount <= arena.pageCount, 'page run crosses an arena end');
    // Zero each stretch of pages that were handed out before, as one fill.
    let p = first;
    const end = first + run.pageCount;
    while (p < end) {
      if (!used[p]) {
        p++;
        continue;
      }
      let q = p;
      while (q < end && used[q]) q++;
      // V8 fills a Uint8Array on shared memory byte by byte; pages are 8-byte aligned, and a 64-bit fill of
      // zeros is the same bytes at ~3× the speed.
      new Float64Array(arena.sab, p * PAGE_SIZE, ((q - p) * PAGE_SIZE) / 8).fill(0);
      p = q;
    }
    used.fill(1, first, end);
  }
}

/** Total pages of a list of runs. */
export function runPages(runs: readonly PageRun[]): number {
  let n = 0;
  for (const r of runs) n += r.pageCount;
  return n;
}
