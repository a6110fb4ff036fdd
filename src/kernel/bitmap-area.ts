/**
 * A page-granular range allocator over one arena, first fit with an alignment mask: the shared core of
 * mm/cma.c (`bitmap_find_next_zero_area_off` over the CMA bitmap) and lib/genalloc.c (the gen_pool a
 * carveout or a TEE static pool uses). One bit (here one byte) per page.
 *
 * Contract: a range is either entirely free or entirely owned by one allocation; `release` must name
 * exactly a range `alloc` returned. Alignment is relative to the physical pfn, as CMA's is.
 */
import { assert } from './assert.js';
import type { Arena, PageRun } from './memory.js';

export class BitmapArea {
  readonly arena: Arena;
  private readonly used: Uint8Array;
  /** Start index → page count of each live allocation, to validate releases. */
  private readonly live = new Map<number, number>();
  private usedPagesCount = 0;

  constructor(arena: Arena) {
    this.arena = arena;
    this.used = new Uint8Array(arena.pageCount);
  }

  get usedPages(): number {
    return this.usedPagesCount;
  }
  get totalPages(): number {
    return this.arena.pageCount;
  }

  /** Largest free run in pages: what the CMA sysfs and our fragmentation figures report. */
  largestFreeRunPages(): number {
    let best = 0;
    let run = 0;
    for (let i = 0; i < this.used.length; i++) {
      run = this.used[i] ? 0 : run + 1;
      if (run > best) best = run;
    }
    return best;
  }

  /**
   * A gen_pool-style allocation (page granular, no alignment): a run of `count` pages, or null when the
   * pool cannot hold it. What a carveout or a TEE static pool hands out per buffer (not yet zeroed).
   */
  takeRun(count: number): PageRun | null {
    // Not enough free pages at all: skip the first-fit scan.
    if (count > this.totalPages - this.usedPages) return null;
    const pfn = this.alloc(count, 0);
    return pfn === null ? null : { pfn, pageCount: count };
  }

  /** First fit of `count` pages whose pfn is a multiple of 2^alignOrder; absolute pfn or null. */
  alloc(count: number, alignOrder: number): number | null {
    assert(count > 0 && Number.isInteger(count), `bad page count ${count}`);
    const align = 1 << alignOrder;
    const n = this.arena.pageCount;
    let i = (align - (this.arena.basePfn % align)) % align;
    while (i + count <= n) {
      let clash = -1;
      for (let j = i + count - 1; j >= i; j--) {
        if (this.used[j]) {
          clash = j;
          break;
        }
      }
      if (clash < 0) {
        this.used.fill(1, i, i + count);
        this.live.set(i, count);
        this.usedPagesCount += count;
        return this.arena.basePfn + i;
      }
      const next = clash + 1;
      i = next + ((align - ((this.arena.basePfn + next) % align)) % align);
    }
    return null;
  }

  release(pfn: number, count: number): void {
    const i = pfn - this.arena.basePfn;
    assert(this.live.get(i) === count, `release of ${count} pages at pfn ${pfn} that were not allocated so`);
    this.live.delete(i);
    this.used.fill(0, i, i + count);
    this.usedPagesCount -= count;
  }
}
