/**
 * Video decoder: turns a bitstream into NV12 frames in a pool of output buffers.
 *
 * The bitstream comes from the input port 'in' (knob `input: true`: each frame received is one access
 * unit, read after its fence) or, without an input, from a bitstream buffer the decoder's demuxer fills
 * with `bitstreamBytes` bytes of its PRNG per frame (then `frames` and `fps` pace it).
 *
 * Per frame: pick the next output buffer and wait until its readers are done (READ fences), create the
 * decode fence and publish it as WRITE on the output (and as READ on the input buffer, which it reads),
 * and send the frame at once: like a stateless hardware decoder with fences, the frame leaves when the
 * decode is queued, so a consumer must wait on its fence. Then read up to `bitstreamBytes` of the access
 * unit, spend the decode time, write the picture, checksum it and signal the fence. An access unit whose
 * fence completed with an error (its producer failed or was timed out) is not decoded: the decode fence
 * completes with that error, passed on to the consumer, and the frame counts in `failedFrames`.
 *
 * Decode is a deterministic function of the bitstream bytes (`decodeNv12`): with h = the frame checksum
 * (checksum.ts) of the access unit and R = `stripeRows`, luma stripe j (rows R·j..R·j+R−1, a row of coding
 * blocks) is filled with unit[j mod len] XOR (h & 0xff), and the whole chroma plane with (h >>> 8) & 0xff.
 * A consumer's checksums are then predictable. The picture is written a stripe at a time, as a decoder's
 * reconstruction writes back a row of coding blocks: R = 64 by default, an HEVC CTU or AV1/VP9 superblock
 * row (16 for H.264 macroblock rows: 68 writes per 1080p frame instead of 17).
 *
 * Secure mode (`secure: true`, the secure video path): output buffers come from the heap named by
 * `secureHeap`, by default the TEE's `protected,secure-video` (a scenario gives it a pool with
 * `kernel.protected`): no CPU can map them and only the devices its firewall admits reach them — by
 * default the decoder, the display and the TEE. The bitstream stays in normal memory (it is encrypted).
 *
 * The output pool must hold ≥ link capacity + 2 buffers: a consumer publishes its release fence only once
 * it has received the frame.
 *
 * Injectable bugs (knob `bugs`):
 * - `skipFenceSignal`: frame N's fence is never signalled → its consumer hangs on it (hang);
 * - `signalBeforeWrite`: signals the fence when the decode starts, then decodes → a consumer that reads
 *   before the decode time is over sees the previous picture (content-mismatch).
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import { nv12Bytes } from './camera.js';
import { bytesOfFills, checksumBytes, checksumOfFills } from './checksum.js';
import {
  type AttachmentRef,
  type BufferRef,
  DMA_DIR_FROM_DEVICE,
  DMA_DIR_TO_DEVICE,
  defineDevice,
  FRAME_FAILED,
  type Frame,
  type Mapping,
} from './device.js';

/** Rows of a coding block row: H.264 macroblocks (16), HEVC CTUs (up to 64), AV1 superblocks (64 or 128). */
export const DECODE_STRIPE_ROWS = [16, 32, 64, 128] as const;
/** Largest access unit the decoder reads per frame. */
export const BITSTREAM_BYTES_MAX = 1 << 20;

const ns = z.number().int().min(0).max(60_000_000_000);

export const videoDecoderKnobs = z
  .object({
    /** Take access units from the input port 'in' (otherwise the decoder feeds itself). */
    input: z.boolean().default(false),
    heap: z.string().default('system'),
    secure: z.boolean().default(false),
    /** Heap of the output buffers in secure mode. */
    secureHeap: z.string().default('protected,secure-video'),
    width: z.number().int().positive().max(8192).default(640),
    height: z.number().int().positive().max(8192).default(480),
    /** Output rate when the decoder feeds itself; with an input, the input paces it. */
    fps: z.number().positive().max(1000).default(30),
    buffers: z.number().int().min(1).max(32).default(4),
    /** Frames to decode when the decoder feeds itself; with an input, until the input ends. */
    frames: z.number().int().min(0).max(100_000).default(30),
    bitstreamBytes: z.number().int().min(1).max(BITSTREAM_BYTES_MAX).default(4096),
    /** Luma rows the decoder writes at once: one of DECODE_STRIPE_ROWS (see the contract). */
    stripeRows: z
      .number()
      .int()
      .refine((n) => (DECODE_STRIPE_ROWS as readonly number[]).includes(n), {
        message: `must be one of ${DECODE_STRIPE_ROWS.join(', ')}`,
      })
      .default(64),
    /** Decode time per frame: `decodeNs`, plus a uniform draw in ±`jitterNs` from the device's seed. */
    decodeNs: ns.default(4_000_000),
    jitterNs: ns.default(1_000_000),
    bugs: z
      .object({
        skipFenceSignal: z.number().int().min(-1).default(-1),
        signalBeforeWrite: z.boolean().default(false),
      })
      .strict()
      .default({ skipFenceSignal: -1, signalBeforeWrite: false }),
  })
  .strict();
export type VideoDecoderKnobs = z.infer<typeof videoDecoderKnobs>;

/** Luma stripes of a picture: how many bytes of an access unit decode looks at beyond its hash. */
export function decodeStripes(height: number, stripeRows: number): number {
  return Math.ceil(height / stripeRows);
}

/**
 * What decode writes, as [offset, length, value] fills over the picture (see the contract), from the
 * access unit's checksum `hash`, its length, and its first `min(unitBytes, decodeStripes(height, stripeRows))`
 * bytes.
 */
export function decodeFills(
  hash: number,
  unitBytes: number,
  head: Uint8Array,
  width: number,
  height: number,
  stripeRows: number,
): [number, number, number][] {
  const luma = width * height;
  const out: [number, number, number][] = [];
  for (let j = 0; j * stripeRows < height; j++) {
    const rows = Math.min(stripeRows, height - j * stripeRows);
    const value = ((head[j % Math.max(1, unitBytes)] ?? 0) ^ hash) & 0xff;
    out.push([j * stripeRows * width, rows * width, value]);
  }
  out.push([luma, nv12Bytes(width, height) - luma, (hash >>> 8) & 0xff]);
  return out;
}

/** The decoded picture of an access unit, as bytes (for tests and tools: the device itself only fills). */
export function decodeNv12(unit: Uint8Array, width: number, height: number, stripeRows: number): Uint8Array {
  const head = unit.subarray(0, decodeStripes(height, stripeRows));
  return bytesOfFills(
    nv12Bytes(width, height),
    decodeFills(checksumBytes(unit), unit.length, head, width, height, stripeRows),
  );
}

interface Slot {
  buf: BufferRef;
  att: AttachmentRef;
  map: Mapping;
}

export const videoDecoder = defineDevice<VideoDecoderKnobs>({
  name: 'video-decoder',
  parseKnobs: (raw, defaults) => videoDecoderKnobs.parse({ frames: defaults.frames, ...(raw as object) }),
  inputs: (k) => (k.input ? ['in'] : []),
  outputs: () => ['out'],
  async run(ctx, k) {
    const frameBytes = nv12Bytes(k.width, k.height);
    const intervalNs = Math.round(1e9 / k.fps);
    const heap = k.secure ? k.secureHeap : k.heap;
    const pool: Slot[] = [];
    for (let i = 0; i < k.buffers; i++) {
      const buf = await ctx.allocate(heap, frameBytes);
      const att = await ctx.attach(buf);
      pool.push({ buf, att, map: await ctx.map(att, DMA_DIR_TO_DEVICE) });
    }
    // Self-fed: the demuxer's buffer of access units (normal memory even in secure mode: it is encrypted).
    let own: Slot | null = null;
    if (!k.input) {
      const buf = await ctx.allocate(k.heap, k.bitstreamBytes);
      const att = await ctx.attach(buf);
      own = { buf, att, map: await ctx.map(att, DMA_DIR_FROM_DEVICE) };
    }
    // Input buffers are imported once; the producer's pool bounds how many there are.
    const imported = new Map<number, { att: AttachmentRef; map: Mapping }>();
    const received: number[] = [];
    const checksums: number[] = [];
    let failedFrames = 0;

    for (let seq = 0; k.input || seq < k.frames; seq++) {
      const start = ctx.nowNs();
      let input: Frame | null = null;
      if (k.input) {
        input = await ctx.recv('in');
        if (input === null) break;
      }
      const slot = pool[seq % pool.length] as Slot;
      await ctx.waitResv(slot.buf, DMA_RESV_USAGE_READ);
      const fence = await ctx.createFence();
      await ctx.addFence(slot.buf, fence, DMA_RESV_USAGE_WRITE);
      if (input !== null) await ctx.addFence(input.buffer, fence, DMA_RESV_USAGE_READ);
      await ctx.send('out', { seq, buffer: slot.buf, fence, flags: 0 }); // the frame leaves with its fence
      if (k.bugs.signalBeforeWrite) await ctx.signal(fence);

      let source: Mapping;
      let sourceBytes: number;
      if (input !== null) {
        let imp = imported.get(input.buffer.id);
        if (imp === undefined) {
          const att = await ctx.attach(input.buffer);
          imp = { att, map: await ctx.map(att, DMA_DIR_FROM_DEVICE) };
          imported.set(input.buffer.id, imp);
        }
        if (input.fence) await ctx.wait(input.fence);
        else await ctx.waitResv(input.buffer, DMA_RESV_USAGE_WRITE);
        const status = input.fence ? ctx.status(input.fence) : 0;
        if (input.fence) await ctx.put(input.fence);
        if (status < 0) {
          failedFrames++;
          received.push(FRAME_FAILED);
          checksums.push(FRAME_FAILED);
          await ctx.signal(fence, status);
          continue;
        }
        received.push(await ctx.checksum(imp.map, 0, input.buffer.sizeBytes));
        source = imp.map;
        sourceBytes = Math.min(k.bitstreamBytes, input.buffer.sizeBytes);
      } else {
        const o = own as Slot;
        await ctx.write(o.map, 0, ctx.prng.fill(new Uint8Array(k.bitstreamBytes)));
        source = o.map;
        sourceBytes = k.bitstreamBytes;
      }
      // The access unit's checksum, in place, and the few bytes decode looks at besides.
      const hash = await ctx.checksum(source, 0, sourceBytes);
      const head = await ctx.read(source, 0, Math.min(sourceBytes, decodeStripes(k.height, k.stripeRows)));
      const jitter = k.jitterNs > 0 ? ctx.prng.int(-k.jitterNs, k.jitterNs) : 0;
      await ctx.busy(Math.max(0, k.decodeNs + jitter));
      const fills = decodeFills(hash, sourceBytes, head, k.width, k.height, k.stripeRows);
      for (const [offset, length, value] of fills) await ctx.fill(slot.map, offset, length, value);
      checksums.push(checksumOfFills(slot.buf.sizeBytes, fills)); // what it wrote, without reading it back
      if (!k.bugs.signalBeforeWrite && seq !== k.bugs.skipFenceSignal) await ctx.signal(fence);
      if (!k.input) {
        const spent = ctx.nowNs() - start;
        if (spent < intervalNs) await ctx.busy(intervalNs - spent);
      }
    }
    await ctx.close('out');
    for (const { buf } of pool) await ctx.waitResv(buf, DMA_RESV_USAGE_READ);
    for (const { att } of imported.values()) await ctx.detach(att);
    for (const { buf, att } of own === null ? pool : [...pool, own]) {
      await ctx.detach(att);
      await ctx.release(buf);
    }
    return {
      frames: checksums.length,
      checksums,
      ...(k.input ? { 'received:in': received } : {}),
      secure: k.secure ? 1 : 0,
      failedFrames,
    };
  },
});
