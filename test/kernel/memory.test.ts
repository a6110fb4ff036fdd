// Physical memory: `zeroRun` hands out zeroed pages, skipping pages no allocation ever had (a fresh wasm
// memory is zero) and zeroing every page that was handed out before, whatever was written into it — also
// by an earlier kernel whose arenas were recycled into this one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../../src/kernel/memory.js';
import { PAGE_SIZE } from '../../src/kernel/uapi.js';

const PAGES = 32;

describe('PhysicalMemory.zeroRun', () => {
  it('every run it zeroes reads back zero, after any history of runs handed out and written', () => {
    const run = fc.record({
      first: fc.nat(PAGES - 1),
      count: fc.integer({ min: 1, max: PAGES }),
      byte: fc.integer({ min: 1, max: 255 }),
    });
    fc.assert(
      // `recycleAt`: a kernel's life ends there (PhysicalMemory.recycle, as the sim host does after each
      // run) and the next one gets the same memory back, with everything the earlier ones wrote in it.
      fc.property(fc.array(run, { minLength: 1, maxLength: 40 }), fc.array(fc.nat(40)), (runs, recycleAt) => {
        let mem = new PhysicalMemory();
        let arena = mem.addArena('t', PAGES * PAGE_SIZE);
        for (const [i, r] of runs.entries()) {
          if (recycleAt.includes(i)) {
            const before = arena.memory;
            mem.recycle();
            mem = new PhysicalMemory();
            arena = mem.addArena('t', PAGES * PAGE_SIZE);
            expect(arena.memory).toBe(before); // reused, not a fresh (all-zero) memory
          }
          const pageCount = Math.min(r.count, PAGES - r.first);
          mem.zeroRun({ pfn: arena.basePfn + r.first, pageCount });
          const bytes = arena.bytes.subarray(r.first * PAGE_SIZE, (r.first + pageCount) * PAGE_SIZE);
          expect(bytes.every((b) => b === 0)).toBe(true);
          // The owner writes all over it (first and last byte of each page, and one in the middle).
          for (let p = 0; p < pageCount; p++) {
            bytes[p * PAGE_SIZE] = r.byte;
            bytes[p * PAGE_SIZE + 2049] = r.byte;
            bytes[(p + 1) * PAGE_SIZE - 1] = r.byte;
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a run outside every arena (a dmafarm bug)', () => {
    const mem = new PhysicalMemory();
    const arena = mem.addArena('t', 4 * PAGE_SIZE);
    expect(() => mem.zeroRun({ pfn: arena.basePfn + 2, pageCount: 3 })).toThrow(/crosses an arena end/);
    expect(() => mem.zeroRun({ pfn: arena.basePfn + 100_000, pageCount: 1 })).toThrow(/in no arena/);
  });

  it('after recycle a PhysicalMemory has no arenas; only a same-sized arena reuses a recycled memory', () => {
    const mem = new PhysicalMemory();
    const arena = mem.addArena('t', 4 * PAGE_SIZE);
    const list = mem.arenaList();
    mem.recycle();
    expect(list).toHaveLength(0); // a straggler holding the list finds no arena
    expect(() => mem.zeroRun({ pfn: arena.basePfn, pageCount: 1 })).toThrow(/in no arena/);
    expect(() => mem.addArena('u', 4 * PAGE_SIZE)).toThrow(/after recycle/);
    expect(() => mem.recycle()).toThrow(/recycled twice/);
    const other = new PhysicalMemory().addArena('t', 8 * PAGE_SIZE);
    expect(other.memory).not.toBe(arena.memory);
    const same = new PhysicalMemory().addArena('t', 4 * PAGE_SIZE);
    expect(same.memory).toBe(arena.memory);
  });
});
