import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Checksum, checksumBytes, checksumOfFills, fillBytes } from '../../src/devices/checksum.js';

/** Random ordered, non-overlapping fills inside a buffer of `size` bytes. */
const fillsArb = fc
  .tuple(
    fc.integer({ min: 0, max: 600 }),
    fc.array(fc.tuple(fc.nat(40), fc.nat(120), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
  )
  .map(([size, raw]) => {
    const fills: [number, number, number][] = [];
    let at = 0;
    for (const [gap, len, value] of raw) {
      if (at + gap + len > size) break;
      fills.push([at + gap, len, value]);
      at += gap + len;
    }
    return { size, fills };
  });

function materialise(size: number, fills: [number, number, number][], shift = 0): Uint8Array {
  const bytes = new Uint8Array(size + shift).subarray(shift);
  for (const [o, l, v] of fills) bytes.fill(v, o, o + l);
  return bytes;
}

describe('frame checksum', () => {
  it('a producer computes from its fills what a consumer reads from memory', () => {
    fc.assert(
      fc.property(fillsArb, fc.integer({ min: 0, max: 3 }), ({ size, fills }, shift) => {
        expect(checksumOfFills(size, fills)).toBe(checksumBytes(materialise(size, fills, shift)));
      }),
    );
  });

  it('does not depend on how the bytes are split into spans (scatter lists)', () => {
    fc.assert(
      fc.property(fillsArb, fc.array(fc.nat(50), { maxLength: 12 }), ({ size, fills }, cuts) => {
        const bytes = materialise(size, fills);
        const c = new Checksum();
        let at = 0;
        for (const n of cuts) {
          c.update(bytes.subarray(at, Math.min(size, at + n)));
          at = Math.min(size, at + n);
        }
        c.update(bytes.subarray(at));
        expect(c.digest()).toBe(checksumBytes(bytes));
      }),
    );
  });

  it('changes when any single byte changes, and with the length', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (b, i, d) => {
          const changed = b.slice();
          const at = i % b.length;
          changed[at] = ((changed[at] as number) + d) & 0xff;
          expect(checksumBytes(changed)).not.toBe(checksumBytes(b));
        },
      ),
    );
    expect(checksumBytes(new Uint8Array(16))).not.toBe(checksumBytes(new Uint8Array(17)));
  });

  it('fillBytes writes exactly the span, at any alignment, on shared memory', () => {
    fc.assert(
      fc.property(fc.nat(7), fc.nat(300), fc.integer({ min: 0, max: 255 }), (offset, length, value) => {
        const whole = new Uint8Array(new SharedArrayBuffer(320)).fill(0xee);
        fillBytes(whole.subarray(offset, offset + length), value);
        const want = new Uint8Array(320).fill(0xee);
        want.fill(value, offset, Math.min(320, offset + length));
        expect(Array.from(whole)).toEqual(Array.from(want));
      }),
    );
  });
});
