/**
 * The frame checksum's inner loop (`Checksum` in checksum.ts) as WebAssembly SIMD, run in place on arena
 * memory: consumers hash every byte of every frame, and this is most of the farm's CPU per frame.
 *
 * Contract:
 * - `simdLanesFor(buffer)(byteOffset, blocks, l0, l1, l2, l3)` advances the four lanes over `blocks`
 *   16-byte blocks exactly as the JS loop does (bit-identical: the same ring arithmetic mod 2^32). It is
 *   null when `buffer` is not a wasm memory that `wasmMemoryOf` knows on this thread; the caller then runs
 *   the JS loop.
 * - One instance per memory per thread, made on first use and kept as long as the memory lives.
 * - The module is assembled here, byte by byte: it is one function, and a toolchain would be a dependency
 *   for ~200 bytes of output.
 *
 * Why it is faster than the JS loop, not only wider: the lanes are one i32x4 vector h ↦ h·P + w, and eight
 * blocks are folded per iteration as h·P⁸ + (w₀·P⁷ + … + w₇) — the seven products are independent, so the
 * only serial chain is one multiply and one add per 128 bytes instead of per 16.
 */
import { type WasmMemory, wasmMemoryOf } from '../kernel/memory.js';

/** The part of the global `WebAssembly` used here (the project's lib declares none: see memory.ts). */
interface WasmModule {
  readonly kind?: 'module';
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (
    module: WasmModule,
    imports: Record<string, Record<string, unknown>>,
  ) => {
    readonly exports: Record<string, unknown>;
  };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The lane multiplier of checksum.ts (kept in step by the property test against the JS loop). */
export const CHECKSUM_P = 0x01000193;

/** Blocks folded per iteration of the main loop. */
const UNROLL_BLOCKS = 8;

function uleb(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

function i32le(x: number): number[] {
  return [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
}

/** P^k mod 2^32. */
function powP(k: number): number {
  let r = 1;
  for (let i = 0; i < k; i++) r = Math.imul(r, CHECKSUM_P);
  return r;
}

const I32 = 0x7f;
const V128 = 0x7b;
const SIMD = 0xfd;
const op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  void: 0x40,
} as const;
const memoryFill = [0xfc, 0x0b, 0x00];
const simd = {
  load: [SIMD, 0x00],
  const: [SIMD, 0x0c],
  i32x4Splat: [SIMD, 0x11],
  i32x4ExtractLane: [SIMD, 0x1b],
  i32x4ReplaceLane: [SIMD, 0x1c],
  i32x4Add: [SIMD, ...uleb(0xae)],
  i32x4Mul: [SIMD, ...uleb(0xb5)],
} as const;

/**
 * (func (export "lanes") (param $ptr i32) (param $blocks i32) (param $l0 i32) … (param $l3 i32)
 *   (result i32 i32 i32 i32)) and (func (export "fill") (param $ptr i32) (param $lengthBytes i32)
 *   (param $value i32)), importing env.mem: shared, any size up to wasm32's 65536 pages.
 */
export function checksumWasmBytes(): Uint8Array {
  const ptr = 0;
  const blocks = 1;
  const h = 6;
  const splatConst = (x: number): number[] => [...simd.const, ...i32le(x), ...i32le(x), ...i32le(x), ...i32le(x)];
  const load = (offset: number): number[] => [op.localGet, ptr, ...simd.load, 0, ...uleb(offset)];
  const advance = (bytes: number, n: number): number[] => [
    ...[op.localGet, ptr, op.i32Const, ...uleb(bytes), op.i32Add, op.localSet, ptr],
    ...[op.localGet, blocks, op.i32Const, ...uleb(n), op.i32Sub, op.localSet, blocks],
  ];

  // s = w0·P^7 + w1·P^6 + … + w7, then h = h·P^8 + s: the only chain between iterations is h's mul-add.
  const fold: number[] = [];
  for (let k = 0; k < UNROLL_BLOCKS; k++) {
    fold.push(...load(16 * k));
    const power = UNROLL_BLOCKS - 1 - k;
    if (power > 0) fold.push(...splatConst(powP(power)), ...simd.i32x4Mul);
    if (k > 0) fold.push(...simd.i32x4Add);
  }
  fold.push(op.localGet, h, ...splatConst(powP(UNROLL_BLOCKS)), ...simd.i32x4Mul, ...simd.i32x4Add, op.localSet, h);

  const body = [
    ...[1, 1, V128], // one local: h
    ...[op.localGet, 2, ...simd.i32x4Splat],
    ...[op.localGet, 3, ...simd.i32x4ReplaceLane, 1],
    ...[op.localGet, 4, ...simd.i32x4ReplaceLane, 2],
    ...[op.localGet, 5, ...simd.i32x4ReplaceLane, 3],
    ...[op.localSet, h],
    ...[op.block, op.void, op.loop, op.void],
    ...[op.localGet, blocks, op.i32Const, UNROLL_BLOCKS, op.i32LtU, op.brIf, 1],
    ...fold,
    ...advance(16 * UNROLL_BLOCKS, UNROLL_BLOCKS),
    ...[op.br, 0, op.end, op.end],
    ...[op.block, op.void, op.loop, op.void],
    ...[op.localGet, blocks, op.i32Eqz, op.brIf, 1],
    ...[op.localGet, h, ...splatConst(CHECKSUM_P), ...simd.i32x4Mul, ...load(0), ...simd.i32x4Add, op.localSet, h],
    ...advance(16, 1),
    ...[op.br, 0, op.end, op.end],
    ...[0, 1, 2, 3].flatMap((lane) => [op.localGet, h, ...simd.i32x4ExtractLane, lane]),
    op.end,
  ];
  // fill(ptr, lengthBytes, value): memory.fill, a native memset (V8's TypedArray fill on shared memory
  // stores element by element).
  const fillBody = [0, op.localGet, 0, op.localGet, 2, op.localGet, 1, ...memoryFill, op.end];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [2, 0x60, 6, I32, I32, I32, I32, I32, I32, 4, I32, I32, I32, I32, 0x60, 3, I32, I32, I32, 0]),
    // Memory limits flag 3: shared, with a maximum (required for shared); min 0 so any arena size imports.
    ...section(2, [1, ...name('env'), ...name('mem'), 0x02, 0x03, 0, ...uleb(65536)]),
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('lanes'), 0x00, 0, ...name('fill'), 0x00, 1]),
    ...section(10, [2, ...uleb(body.length), ...body, ...uleb(fillBody.length), ...fillBody]),
  ];
  return new Uint8Array(bytes);
}

export type LanesFn = (ptr: number, blocks: number, l0: number, l1: number, l2: number, l3: number) => number[];
export type FillFn = (ptr: number, lengthBytes: number, value: number) => void;
interface WasmOps {
  lanes: LanesFn;
  fill: FillFn;
}

let module: WasmModule | null | undefined;
const instances = new WeakMap<WasmMemory, WasmOps>();

/** The compiled module, or null where wasm SIMD is unavailable (the JS loop then does all the work). */
function checksumModule(): WasmModule | null {
  if (module === undefined) {
    try {
      module = new wasmApi.Module(checksumWasmBytes());
    } catch {
      module = null;
    }
  }
  return module;
}

function opsFor(buffer: ArrayBufferLike): WasmOps | null {
  const memory = wasmMemoryOf(buffer);
  if (memory === undefined) return null;
  let ops = instances.get(memory);
  if (ops === undefined) {
    const m = checksumModule();
    if (m === null) return null;
    const { exports } = new wasmApi.Instance(m, { env: { mem: memory } });
    ops = { lanes: exports.lanes as LanesFn, fill: exports.fill as FillFn };
    instances.set(memory, ops);
  }
  return ops;
}

/**
 * The wasm loop over `buffer`, or null when `buffer` is not a wasm memory this thread knows (or wasm SIMD is
 * unavailable). `f(byteOffset, blocks, l0, l1, l2, l3)` returns the four lanes after `blocks` 16-byte blocks.
 */
export function simdLanesFor(buffer: ArrayBufferLike): LanesFn | null {
  return opsFor(buffer)?.lanes ?? null;
}

/** `fill(byteOffset, lengthBytes, value)` on `buffer` in wasm (a memset), or null as for `simdLanesFor`. */
export function wasmFillFor(buffer: ArrayBufferLike): FillFn | null {
  return opsFor(buffer)?.fill ?? null;
}
