import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Checksum, checksumBytes, fillBytes } from '../../src/devices/checksum.js';
import { checksumWasmBytes, simdLanesFor, wasmFillFor } from '../../src/devices/checksum-simd.js';
import {
  arenaBytes,
  PhysicalMemory,
  sharedWasmMemory,
  WASM_PAGE_BYTES,
  wasmMemoryOf,
} from '../../src/kernel/memory.js';

const MEMORY_BYTES = 4 * WASM_PAGE_BYTES;
const memory = sharedWasmMemory(MEMORY_BYTES);
const arena = new Uint8Array(memory.buffer, 0, MEMORY_BYTES);

/**
 * Pseudo-random bytes from a seed: the properties draw (length, seed) rather than byte arrays, so a
 * counterexample shrinks in a few steps instead of element by element over thousands of bytes.
 */
function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) | 1;
    out[i] = x >>> 24;
  }
  return out;
}

/** The checksum of `bytes` fed to one Checksum in pieces of the lengths in `cuts`, then the rest. */
function inPieces(bytes: Uint8Array, cuts: readonly number[]): number {
  const c = new Checksum();
  let at = 0;
  for (const n of cuts) {
    const end = Math.min(bytes.length, at + n);
    c.update(bytes.subarray(at, end));
    at = end;
  }
  return c.update(bytes.subarray(at)).digest();
}

describe('frame checksum on wasm memory (SIMD)', () => {
  it('arenas are wasm memories this thread knows, sized to their page frames', () => {
    const mem = new PhysicalMemory();
    const a = mem.addArena('test', 5 * 4096);
    expect(a.bytes.length).toBe(5 * 4096);
    expect(a.sab.byteLength).toBe(WASM_PAGE_BYTES);
    expect(wasmMemoryOf(a.sab)).toBe(a.memory);
    expect(a.bytes.every((b) => b === 0)).toBe(true);
  });

  it('the module validates and the loop is available', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(checksumWasmBytes())).toBe(true);
    expect(simdLanesFor(memory.buffer)).not.toBeNull();
    expect(simdLanesFor(new SharedArrayBuffer(16))).toBeNull();
    expect(wasmFillFor(new ArrayBuffer(16))).toBeNull();
  });

  it('is bit-identical to the JS loop over random bytes, lengths, split points and unaligned offsets', () => {
    fc.assert(
      fc.property(
        fc.nat(6000),
        fc.nat(),
        fc.nat(MEMORY_BYTES - 6000),
        fc.array(fc.nat(3000), { maxLength: 6 }),
        (length, seed, offset, cuts) => {
          const plain = randomBytes(length, seed);
          const inWasm = arena.subarray(offset, offset + length);
          inWasm.set(plain);
          // `plain` is an ordinary ArrayBuffer: always the JS loop. The arena copy takes wasm for long pieces.
          expect(checksumBytes(inWasm)).toBe(checksumBytes(plain));
          expect(inPieces(inWasm, cuts)).toBe(checksumBytes(plain));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees over whole-frame sizes, where the unrolled loop and its tail both run', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1024, max: MEMORY_BYTES - 64 }), fc.nat(63), fc.nat(), (length, offset, seed) => {
        const plain = randomBytes(length, seed);
        const inWasm = arena.subarray(offset, offset + length);
        inWasm.set(plain);
        expect(checksumBytes(inWasm)).toBe(checksumBytes(plain));
      }),
      { numRuns: 40 },
    );
  });

  it('fillBytes on wasm memory writes exactly the span, at any alignment', () => {
    fc.assert(
      fc.property(fc.nat(4096), fc.nat(20_000), fc.integer({ min: -300, max: 600 }), (offset, length, value) => {
        const window = arena.subarray(0, 4096 + 20_000 + 16);
        window.fill(0xee);
        fillBytes(window.subarray(offset, offset + length), value);
        const want = new Uint8Array(window.length).fill(0xee);
        want.fill(value & 0xff, offset, offset + length);
        expect(Buffer.compare(Buffer.from(window), Buffer.from(want))).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('another thread handed the memory checksums the same bytes in place', async () => {
    const frame = arena.subarray(100, 100 + 50_000);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 31 + 7) & 0xff;
    const want = checksumBytes(frame.slice());
    const w = new Worker(join(import.meta.dirname, '../fixtures/ts-worker-entry.mjs'), {
      workerData: {
        module: join(import.meta.dirname, 'checksum-simd-worker.ts'),
        memory,
        offset: 100,
        lengthBytes: 50_000,
      },
    });
    const got = await new Promise<{ sum: number; simd: boolean }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited ${code}`)));
    });
    await w.terminate();
    expect(got).toEqual({ sum: want, simd: true });
    expect(arenaBytes({ sab: memory.buffer as SharedArrayBuffer, memory, pageCount: 1 }).length).toBe(4096);
  });
});
