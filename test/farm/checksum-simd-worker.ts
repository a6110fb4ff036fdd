// A device thread for checksum-simd.test.ts: attaches an arena's wasm memory as a device worker does
// (arenaBytes), checksums a span of it in place and says whether the wasm loop was available.
import { parentPort, workerData } from 'node:worker_threads';
import { checksumBytes } from '../../src/devices/checksum.js';
import { simdLanesFor } from '../../src/devices/checksum-simd.js';
import { arenaBytes, type WasmMemory } from '../../src/kernel/memory.js';

const { memory, offset, lengthBytes } = workerData as { memory: WasmMemory; offset: number; lengthBytes: number };
const bytes = arenaBytes({ sab: memory.buffer as SharedArrayBuffer, memory, pageCount: 16 });
parentPort?.postMessage({
  sum: checksumBytes(bytes.subarray(offset, offset + lengthBytes)),
  simd: simdLanesFor(bytes.buffer) !== null,
});
