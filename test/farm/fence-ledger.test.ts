import { describe, expect, it } from 'vitest';
import { FENCE_LEDGER_ENTRIES_MAX, FenceLedger, ledgerEntriesFor } from '../../src/workers/fence-ledger.js';

describe('FenceLedger', () => {
  it('counts references per fence and remembers which ones the device created', () => {
    const l = FenceLedger.create();
    expect(l.add(7, true)).toBe(true);
    expect(l.add(9, false)).toBe(true);
    expect(l.add(9, false)).toBe(true); // the same fence received twice: two references
    expect(l.drop(9)).toBe(true);
    expect(l.drop(42)).toBe(false); // never held
    // What a host sees through its own view of the SAB once the device's thread is gone.
    const seen = FenceLedger.attach(l.sab).entries();
    expect(seen).toEqual([
      { fence: 7, refs: 1, own: true },
      { fence: 9, refs: 1, own: false },
    ]);
  });

  it('reuses freed entries and refuses the one past its bound', () => {
    const l = FenceLedger.create();
    for (let i = 1; i <= FENCE_LEDGER_ENTRIES_MAX; i++) expect(l.add(i, false)).toBe(true);
    expect(l.add(FENCE_LEDGER_ENTRIES_MAX + 1, false)).toBe(false);
    expect(l.drop(5)).toBe(true);
    expect(l.add(FENCE_LEDGER_ENTRIES_MAX + 1, true)).toBe(true);
    expect(l.entries()).toHaveLength(FENCE_LEDGER_ENTRIES_MAX);
  });

  it("is sized by the run's fence table when that is smaller, and a view of it learns the size", () => {
    expect(ledgerEntriesFor({ fences: { capacity: 256 } })).toBe(256);
    expect(ledgerEntriesFor({ fences: { capacity: 1 << 20 } })).toBe(FENCE_LEDGER_ENTRIES_MAX);
    const l = FenceLedger.create(3);
    for (let i = 1; i <= 3; i++) expect(l.add(i, true)).toBe(true);
    expect(l.add(4, true)).toBe(false);
    const seen = FenceLedger.attach(l.sab);
    expect(seen.entriesMax).toBe(3);
    expect(seen.entries().map((e) => e.fence)).toEqual([1, 2, 3]);
    expect(() => FenceLedger.create(FENCE_LEDGER_ENTRIES_MAX + 1)).toThrow(/bad ledger size/);
  });
});
