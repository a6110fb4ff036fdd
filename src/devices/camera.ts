/**
 * Camera: produces frames at a fixed rate into a pool of buffers from its heap.
 *
 * Per frame: pick the next buffer of the pool, wait until every reader of its previous frame is done
 * (implicit sync: READ fences on the buffer's resv), create a write fence, publish it in the resv (WRITE)
 * and on the frame (explicit), write the image (NV12: a luma plane and an interleaved chroma plane whose
 * bytes are a function of the frame number), spend the exposure time, signal the fence, send the frame.
 * It reports the checksum of every frame it wrote, so a display's checksums prove which bytes arrived.
 *
 * Injectable bugs (knob `bugs`), what they look like to everyone else:
 * - `skipFenceSignal`: never signals frame N's fence → consumers hang on it (a fence leak);
 * - `signalTwice`: signals every fence twice → fence-double-signal;
 * - `signalBeforeWrite`: signals the fence, then writes → consumers may read a half-written frame;
 * - `skipReleaseWait`: reuses a buffer without waiting for its readers → the display may show torn frames;
 * - `writeWithoutSync` (with `cpuRender`): skips DMA_BUF_SYNC_END after the CPU wrote the frame → up to a
 *   cache's worth of it is still in the CPU cache when the display reads memory: the display shows stale
 *   bytes (content-mismatch), exactly as on a non-coherent SoC. Its first use of each buffer maps it, and
 *   mapping cleans the cache, so the damage starts once buffers are reused. The frame is sent with the
 *   bracket still open: cpu-sync-end-missing;
 * - `skipSyncStart` (with `cpuRender`): the CPU writes the frame without DMA_BUF_SYNC_START (it ends the
 *   access with SYNC END) → cpu-access-unbracketed. On arm64 START(WRITE) does no cache maintenance and
 *   the camera already waited for the buffer's readers, so no byte goes wrong: only the bracket says so;
 * - `syncReadOnly` (with `cpuRender`): brackets its CPU writes with SYNC START/END(READ) → cpu-access-flags
 *   (START(READ) waits only for writers, and the flags tell the exporter nothing will be written).
 *
 * How it publishes its write fence in the buffer's resv (knob `resvUsage`, not a bug): 'write' for
 * consumers that use implicit sync (the default), 'bookkeep' (explicit sync: the resv only keeps it, no
 * implicit wait sees it) or 'none'; the fence always travels with the frame too.
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_BOOKKEEP, DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import { checksumOfFills } from './checksum.js';
import { type BufferRef, type CpuMapping, DMA_DIR_TO_DEVICE, defineDevice, type Mapping } from './device.js';

export const cameraKnobs = z
  .object({
    heap: z.string().default('system'),
    width: z.number().int().positive().max(8192).default(640),
    height: z.number().int().positive().max(8192).default(480),
    fps: z.number().positive().max(1000).default(30),
    buffers: z.number().int().min(1).max(32).default(4),
    frames: z.number().int().min(0).max(100_000).default(30),
    /** Exposure/readout time per frame as a fraction of the frame interval (0..1). */
    busyFraction: z.number().min(0).max(1).default(0.5),
    /**
     * Render with the CPU through a vmap instead of by DMA (a software camera, or CPU post-processing):
     * the bytes go through the non-coherent CPU cache, so the frame must be bracketed by SYNC START/END.
     */
    cpuRender: z.boolean().default(false),
    /** How the write fence goes into the buffer's resv: WRITE (implicit sync), BOOKKEEP, or not at all. */
    resvUsage: z.enum(['write', 'bookkeep', 'none']).default('write'),
    bugs: z
      .object({
        skipFenceSignal: z.number().int().min(-1).default(-1),
        signalTwice: z.boolean().default(false),
        signalBeforeWrite: z.boolean().default(false),
        skipReleaseWait: z.boolean().default(false),
        writeWithoutSync: z.boolean().default(false),
        skipSyncStart: z.boolean().default(false),
        syncReadOnly: z.boolean().default(false),
      })
      .strict()
      .default({
        skipFenceSignal: -1,
        signalTwice: false,
        signalBeforeWrite: false,
        skipReleaseWait: false,
        writeWithoutSync: false,
        skipSyncStart: false,
        syncReadOnly: false,
      }),
  })
  .strict();
export type CameraKnobs = z.infer<typeof cameraKnobs>;

/** NV12: a full-resolution luma plane and a half-resolution interleaved CbCr plane. */
export function nv12Bytes(width: number, height: number): number {
  return width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
}

/** Checksum of a frame as the camera renders it: luma plane, chroma plane, zero padding to the end. */
function expectedFrame(bufBytes: number, luma: number, size: number, lumaValue: number, chromaValue: number): number {
  return checksumOfFills(bufBytes, [
    [0, luma, lumaValue],
    [luma, size - luma, chromaValue],
  ]);
}

export const camera = defineDevice<CameraKnobs>({
  name: 'camera',
  parseKnobs: (raw, defaults) => cameraKnobs.parse({ frames: defaults.frames, ...(raw as object) }),
  inputs: () => [],
  outputs: () => ['out'],
  async run(ctx, k) {
    const size = nv12Bytes(k.width, k.height);
    const luma = k.width * k.height;
    const intervalNs = Math.round(1e9 / k.fps);
    const pool: { buf: BufferRef; map: Mapping; cpu: CpuMapping | null }[] = [];
    for (let i = 0; i < k.buffers; i++) {
      const buf = await ctx.allocate(k.heap, size);
      const att = await ctx.attach(buf);
      const map = await ctx.map(att, DMA_DIR_TO_DEVICE);
      pool.push({ buf, map, cpu: k.cpuRender ? await ctx.cpuMap(buf) : null });
    }
    const checksums: number[] = [];
    const cpuFlags = k.bugs.syncReadOnly ? 'read' : 'write';
    for (let seq = 0; seq < k.frames; seq++) {
      const start = ctx.nowNs();
      const slot = pool[seq % pool.length] as { buf: BufferRef; map: Mapping; cpu: CpuMapping | null };
      if (!k.bugs.skipReleaseWait) await ctx.waitResv(slot.buf, DMA_RESV_USAGE_READ);
      // SYNC START before this frame's own write fence exists: it waits for every fence of the buffer.
      if (slot.cpu && !k.bugs.skipSyncStart) await ctx.cpuSync(slot.buf, 'start', cpuFlags);
      const fence = await ctx.createFence();
      if (k.resvUsage !== 'none') {
        await ctx.addFence(slot.buf, fence, k.resvUsage === 'write' ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_BOOKKEEP);
      }
      if (k.bugs.signalBeforeWrite) await ctx.signal(fence);
      const lumaValue = (seq * 7 + 16) & 0xff;
      const chromaValue = (seq * 13 + 128) & 0xff;
      if (slot.cpu) {
        await ctx.cpuFill(slot.cpu, 0, luma, lumaValue);
        await ctx.busy(Math.round(intervalNs * k.busyFraction));
        await ctx.cpuFill(slot.cpu, luma, size - luma, chromaValue);
        if (!k.bugs.writeWithoutSync) await ctx.cpuSync(slot.buf, 'end', cpuFlags);
        // What the CPU meant to write, computed aside: reading the frame back through the cache would
        // evict (write back) the very lines a missing SYNC END leaves dirty, and hide the bug.
        checksums.push(expectedFrame(slot.map.sizeBytes, luma, size, lumaValue, chromaValue));
      } else {
        await ctx.fill(slot.map, 0, luma, lumaValue);
        await ctx.busy(Math.round(intervalNs * k.busyFraction));
        await ctx.fill(slot.map, luma, size - luma, chromaValue);
        // What it wrote, known without reading it back (like a hardware CRC unit on the write path).
        checksums.push(expectedFrame(slot.map.sizeBytes, luma, size, lumaValue, chromaValue));
      }
      if (!k.bugs.signalBeforeWrite && seq !== k.bugs.skipFenceSignal) await ctx.signal(fence);
      if (k.bugs.signalTwice) await ctx.signal(fence);
      await ctx.send('out', { seq, buffer: slot.buf, fence, flags: 0 }); // the fence reference goes with it
      const spent = ctx.nowNs() - start;
      if (spent < intervalNs) await ctx.busy(intervalNs - spent);
    }
    await ctx.close('out');
    for (const { buf } of pool) await ctx.waitResv(buf, DMA_RESV_USAGE_READ);
    for (const { buf } of pool) await ctx.release(buf);
    return { frames: k.frames, checksums };
  },
});
