// RecyclePool: what a finished run leaves for the next one on its thread, bounded, oldest dropped first.
import { describe, expect, it } from 'vitest';
import { RecyclePool } from '../../src/kernel/recycle-pool.js';

describe('RecyclePool', () => {
  it('gives back the first item that fits, once; nothing when none fits', () => {
    const pool = new RecyclePool<{ size: number; id: string }>(4);
    pool.give({ size: 1, id: 'a' });
    pool.give({ size: 2, id: 'b' });
    pool.give({ size: 2, id: 'c' });
    expect(pool.take((x) => x.size === 2)?.id).toBe('b');
    expect(pool.take((x) => x.size === 2)?.id).toBe('c');
    expect(pool.take((x) => x.size === 2)).toBeUndefined();
    expect(pool.take((x) => x.size === 3)).toBeUndefined();
    expect(pool.take(() => true)?.id).toBe('a');
  });

  it('keeps at most itemsMax items, dropping the oldest', () => {
    const pool = new RecyclePool<number>(2);
    for (const n of [1, 2, 3]) pool.give(n);
    expect(pool.take((n) => n === 1)).toBeUndefined();
    expect(pool.take(() => true)).toBe(2);
    expect(pool.take(() => true)).toBe(3);
    expect(pool.take(() => true)).toBeUndefined();
  });
});
