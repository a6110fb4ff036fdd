/**
 * Buddy page allocator for one arena (the twin of mm/page_alloc.c, reduced to what heaps observe).
 *
 * Contract:
 * - Blocks are 2^order pages, naturally aligned (relative to the arena base), order ≤ buddyOrderMax.
 * - A free block is on exactly one free list; its head page records its order in `freeOrder`, every other
 *   page of it records -1. Freeing merges with the buddy while the buddy is a free block of equal order.
 * - `allocPages` never reclaims or compacts: like `__GFP_NORETRY` without reclaim, it fails with null when
 *   no block of the order (or a larger one to split) is free. The caller turns null into -ENOMEM.
 * - Choice among free blocks is lowest address first, so runs are deterministic for a given history.
 */
import { assert } from './assert.js';
import { limits } from './limits.js';
import type { Arena } from './memory.js';

export class BuddyAllocator {
  readonly arena: Arena;
  private readonly freeLists: Set<number>[] = [];
  /** For each page: the order of the free block it heads, or -1. */
  private readonly freeOrder: Int8Array;
  /** For each page: the order of the allocated block it heads, or -1; catches bad frees. */
  private readonly allocOrder: Int8Array;
  private freePagesCount = 0;

  constructor(arena: Arena) {
    this.arena = arena;
    this.freeOrder = new Int8Array(arena.pageCount).fill(-1);
    this.allocOrder = new Int8Array(arena.pageCount).fill(-1);
    for (let o = 0; o <= limits.buddyOrderMax; o++) this.freeLists.push(new Set());
    // Seed with the largest aligned blocks that fit, so a non-multiple arena still works.
    let idx = 0;
    while (idx < arena.pageCount) {
      let order = limits.buddyOrderMax;
      while (order > 0 && (idx % (1 << order) !== 0 || idx + (1 << order) > arena.pageCount)) order--;
      this.pushFree(idx, order);
      idx += 1 << order;
    }
    assert(this.freePagesCount === arena.pageCount, 'buddy seeding lost pages');
  }

  get freePageCount(): number {
    return this.freePagesCount;
  }
  get totalPages(): number {
    return this.arena.pageCount;
  }

  /** Largest order with a free block, or -1 when the arena is full. */
  largestFreeOrder(): number {
    for (let o = limits.buddyOrderMax; o >= 0; o--) if ((this.freeLists[o]?.size ?? 0) > 0) return o;
    return -1;
  }

  /** Allocate 2^order pages; returns the absolute pfn of the block, or null. */
  allocPages(order: number): number | null {
    assert(order >= 0 && order <= limits.buddyOrderMax, `bad order ${order}`);
    let o = order;
    while (o <= limits.buddyOrderMax && (this.freeLists[o]?.size ?? 0) === 0) o++;
    if (o > limits.buddyOrderMax) return null;
    const idx = this.lowest(o);
    this.popFree(idx, o);
    // Split down to the requested order, returning upper halves to the free lists.
    while (o > order) {
      o--;
      this.pushFree(idx + (1 << o), o);
    }
    this.allocOrder[idx] = order;
    return this.arena.basePfn + idx;
  }

  /** `__free_pages(page, order)`: the block must be one this allocator handed out with that order. */
  freeBlock(pfn: number, order: number): void {
    let idx = pfn - this.arena.basePfn;
    assert(idx >= 0 && idx < this.arena.pageCount, `pfn ${pfn} not in arena ${this.arena.name}`);
    assert(this.allocOrder[idx] === order, `free of pfn ${pfn} order ${order}: not allocated so`);
    this.allocOrder[idx] = -1;
    let o = order;
    while (o < limits.buddyOrderMax) {
      const buddy = idx ^ (1 << o);
      if (buddy + (1 << o) > this.arena.pageCount || this.freeOrder[buddy] !== o) break;
      this.popFree(buddy, o);
      idx = Math.min(idx, buddy);
      o++;
    }
    this.pushFree(idx, o);
  }

  private lowest(order: number): number {
    let best = Number.POSITIVE_INFINITY;
    for (const i of this.freeLists[order] ?? []) if (i < best) best = i;
    return best;
  }
  private pushFree(idx: number, order: number): void {
    assert(this.freeOrder[idx] === -1, `page ${idx} already heads a free block`);
    this.freeOrder[idx] = order;
    this.freeLists[order]?.add(idx);
    this.freePagesCount += 1 << order;
  }
  private popFree(idx: number, order: number): void {
    assert(this.freeOrder[idx] === order, `page ${idx} does not head a free order-${order} block`);
    this.freeOrder[idx] = -1;
    this.freeLists[order]?.delete(idx);
    this.freePagesCount -= 1 << order;
  }
}
