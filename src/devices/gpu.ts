/**
 * GPU: composes one output frame from one frame of every input (in0..inN-1) through a job queue with
 * fence dependencies, optionally rendering into render targets in device-local memory ('vram').
 *
 * A job's life:
 * - submit: receive one frame from every input, import each buffer once (static attach + map), create the
 *   job's fence and publish it as READ in every input buffer's resv (the producer may not overwrite an
 *   input until the job is done), and queue the job. At most `queueDepth` jobs wait in the queue.
 * - execute (oldest job first, when the queue is full or the inputs ended): pick the next output buffer of
 *   the pool and wait until its readers are done (READ fences: the display's release), publish the job
 *   fence as WRITE on it, wait for every input's fence (its dependencies: explicit, or the buffer's WRITE
 *   fences when the frame carries none), read each input whole (a CRC of what arrived: `received:inI`),
 *   spend the job time, compose, checksum the output, signal the job fence and send the frame.
 * - a protected input (`BufferRef.restricted`: from a protected heap, which a GPU's firewall normally does not
 *   admit) is never imported or read: its band is composed black (Y 16, C 128) and `received:inI` records
 *   FRAME_UNREAD, as a compositor shows a protected layer it cannot sample. Counted in `protectedLayers`.
 * - a failed dependency (an input's fence completed with an error — its producer failed or was timed out):
 *   the job does not render; its fence completes with that error (drm_sched passes a dependency's error on
 *   the same way) and the frame is still sent, so the error reaches the display. Counted in `failedJobs`.
 *
 * What "compose" computes, so a display's checksums can be predicted (see `composeNv12`): every input is
 * NV12 of `inputWidth`×`inputHeight` (default: the output's size). Input i contributes two values, Y_i, the
 * mean of the first GPU_SAMPLE_BYTES of its luma plane, and C_i, the mean of the last GPU_SAMPLE_BYTES of
 * its chroma plane (a real compositor scales and blends every pixel; a few samples keep 1080p jobs cheap
 * while the output still depends on each input's bytes). The output is NV12 of `width`×`height` tiled in
 * N horizontal bands: band i of the luma plane is rows ⌊i·h/N⌋..⌊(i+1)·h/N⌋ filled with Y_i, band i of the
 * chroma plane (⌈h/2⌉ rows) likewise with C_i. Bytes past the frame, up to the page, stay zero.
 *
 * Render targets (`vramBuffers` > 0): the GPU renders into its own buffers from `vramHeap`, imported
 * dynamically (no pin: the exporter may move them), then resolves (copies) the frame into the output
 * buffer. On move_notify it drops the moved mapping and maps again before its next access: the copy
 * engine reads the bytes wherever the exporter put them. The render pass publishes its own fence (WRITE,
 * created just before the job's) on the target, and the resolve the job's fence (READ), each before it
 * touches the target: a busy target cannot be moved, and taking the resv lock to publish delivers any
 * move_notify sent before, so the mapping is checked where it cannot change (the kernel's rule for dynamic
 * importers; on the worker host another device's allocation may evict a target at any moment). Memory
 * pressure: with `evictEvery` = K, after rendering every K-th job (its render fence signalled) the GPU
 * asks the exporter to evict that job's render target (`ctx.evict`) before resolving it, so the resolve
 * must re-map and read the moved bytes; a small vram makes allocation evict too.
 *
 * In place (`inPlace`, a post-processing pass on the producer's buffer): the job draws the composed
 * frame into input 0's buffer first, then copies it to its output buffer. It writes input 0, so its fence
 * goes there as WRITE (the producer's reuse waits for it), and it waits for input 0's fence before
 * touching it. Inputs must have the output's geometry; no render targets are used.
 *
 * Deadlock-freedom needs producers' pools ≥ `queueDepth` (queued jobs hold READ fences on inputs) and
 * every pool ≥ link capacity + 2 (a consumer publishes its fences only once it has received the frame).
 *
 * Injectable bugs (knob `bugs`):
 * - `skipFenceWait`: composes without waiting for the inputs' fences → with a producer that sends before
 *   it finishes (the video decoder) the GPU reads a half-decoded frame: content-mismatch on that link;
 * - `signalTwice`: signals every job fence twice → fence-double-signal;
 * - `neverSignal`: job N's fence is never signalled (a lost interrupt) → the display hangs on it (hang);
 * - `useMappingAfterMoveNotify`: ignores move_notify and keeps writing through the old mapping of a moved
 *   render target → dma-write-after-move-notify;
 * - `writeFenceAsRead`: publishes the job fence on the buffer it renders into as READ instead of WRITE →
 *   resv-usage-downgrade (a consumer using implicit sync would not wait for the render);
 * - `sampleProtected`: imports and samples protected inputs like any other → restricted-attach (the
 *   firewall does not admit the GPU), and what it reads is zeros: content-mismatch on that link.
 * With `inPlace`, `skipFenceWait` makes the job a second writer of input 0 that is not ordered after the
 * producer's write: dmabuf-hazard-waw (they shared the resv lock, so they synchronised up to the
 * producer's fence publication) or dmabuf-hazard-wrw (a producer that keeps its fence out of the resv:
 * they never synchronised), after the RAW of the job's reads.
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import { nv12Bytes } from './camera.js';
import { bytesOfFills, checksumOfFills } from './checksum.js';
import {
  type AttachmentRef,
  type BufferRef,
  type DeviceContext,
  DMA_DIR_BIDIRECTIONAL,
  DMA_DIR_FROM_DEVICE,
  DMA_DIR_TO_DEVICE,
  defineDevice,
  FRAME_FAILED,
  FRAME_UNREAD,
  type Frame,
  type Mapping,
} from './device.js';

export const GPU_INPUTS_MAX = 8;
/** Jobs waiting to execute, at most (the `queueDepth` knob's bound). */
export const GPU_QUEUE_JOBS_MAX = 8;
/** Bytes of each sample window compose reads from an input plane. */
export const GPU_SAMPLE_BYTES = 16;
/** Bytes the resolve moves per read/write: bounds the staging copy to one burst. */
export const GPU_COPY_CHUNK_BYTES = 1 << 20;

const size = z.number().int().positive().max(8192);
const ns = z.number().int().min(0).max(60_000_000_000);

export const gpuKnobs = z
  .object({
    inputs: z.number().int().min(1).max(GPU_INPUTS_MAX).default(2),
    /** Heap of the output buffers (what the display imports). */
    heap: z.string().default('system'),
    width: size.default(640),
    height: size.default(480),
    /** Geometry of every input frame (NV12); defaults to the output's. */
    inputWidth: size.optional(),
    inputHeight: size.optional(),
    /** Output buffers in the pool. */
    buffers: z.number().int().min(1).max(32).default(4),
    /** Render targets in device-local memory (0: render straight into the output buffer). */
    vramBuffers: z.number().int().min(0).max(16).default(0),
    vramHeap: z.string().default('vram'),
    queueDepth: z.number().int().min(1).max(GPU_QUEUE_JOBS_MAX).default(2),
    /** Job time: `jobNs`, plus a uniform draw in ±`jitterNs` from the device's seed. */
    jobNs: ns.default(2_000_000),
    jitterNs: ns.default(500_000),
    /** Memory pressure: evict every K-th job's render target between render and resolve (0: never). */
    evictEvery: z.number().int().min(0).max(100_000).default(0),
    /** Compose into input 0's buffer and send it on (no output pool). */
    inPlace: z.boolean().default(false),
    bugs: z
      .object({
        skipFenceWait: z.boolean().default(false),
        signalTwice: z.boolean().default(false),
        neverSignal: z.number().int().min(-1).default(-1),
        useMappingAfterMoveNotify: z.boolean().default(false),
        writeFenceAsRead: z.boolean().default(false),
        sampleProtected: z.boolean().default(false),
      })
      .strict()
      .default({
        skipFenceWait: false,
        signalTwice: false,
        neverSignal: -1,
        useMappingAfterMoveNotify: false,
        writeFenceAsRead: false,
        sampleProtected: false,
      }),
  })
  .strict();
export type GpuKnobs = z.infer<typeof gpuKnobs>;

/** Y and C of one input (see the contract). */
export interface InputSample {
  luma: number;
  chroma: number;
}

/** What a protected layer is composed as: black in limited-range BT.601. */
export const PROTECTED_LAYER_SAMPLE: Readonly<InputSample> = Object.freeze({ luma: 16, chroma: 128 });

/** ⌊mean⌋ of a sample window. */
export function sampleMean(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum += b;
  return bytes.length === 0 ? 0 : Math.floor(sum / bytes.length);
}

/** The bands compose fills, as [offset, length, value] triples over the output frame. */
export function composeBands(
  samples: readonly InputSample[],
  width: number,
  height: number,
): [number, number, number][] {
  const n = samples.length;
  const luma = width * height;
  const chromaRows = Math.ceil(height / 2);
  const chromaRowBytes = 2 * Math.ceil(width / 2);
  const out: [number, number, number][] = [];
  samples.forEach((s, i) => {
    const y0 = Math.floor((i * height) / n);
    const y1 = Math.floor(((i + 1) * height) / n);
    if (y1 > y0) out.push([y0 * width, (y1 - y0) * width, s.luma]);
    const c0 = Math.floor((i * chromaRows) / n);
    const c1 = Math.floor(((i + 1) * chromaRows) / n);
    if (c1 > c0) out.push([luma + c0 * chromaRowBytes, (c1 - c0) * chromaRowBytes, s.chroma]);
  });
  return out;
}

/** The composed frame as bytes (for tests and tools: the device itself only fills bands). */
export function composeNv12(samples: readonly InputSample[], width: number, height: number): Uint8Array {
  return bytesOfFills(nv12Bytes(width, height), composeBands(samples, width, height));
}

interface Imported {
  att: AttachmentRef;
  map: Mapping;
}

interface RenderTarget {
  buf: BufferRef;
  att: AttachmentRef;
  map: Mapping;
  /** move_notify arrived: this mapping points at pages the buffer left. */
  stale: boolean;
}

interface Job {
  seq: number;
  frames: Frame[];
  /** The render pass into a render target (0: none); created first, so it signals first on the timeline. */
  render: number;
  fence: number;
}

interface Counters {
  evictions: number;
  moveNotifies: number;
  remaps: number;
  failedJobs: number;
  protectedLayers: number;
}

export const gpu = defineDevice<GpuKnobs>({
  name: 'gpu',
  parseKnobs: (raw) => gpuKnobs.parse(raw ?? {}),
  inputs: (k) => Array.from({ length: k.inputs }, (_, i) => `in${i}`),
  outputs: () => ['out'],
  async run(ctx, k) {
    const ports = Array.from({ length: k.inputs }, (_, i) => `in${i}`);
    const frameBytes = nv12Bytes(k.width, k.height);
    const inputBytes = nv12Bytes(k.inputWidth ?? k.width, k.inputHeight ?? k.height);
    const counters: Counters = {
      evictions: 0,
      moveNotifies: 0,
      remaps: 0,
      failedJobs: 0,
      protectedLayers: 0,
    };
    if (k.inPlace && inputBytes !== frameBytes) {
      throw new Error(`gpu inPlace: inputs are ${inputBytes} bytes, the output ${frameBytes}: they must match`);
    }

    const pool: (Imported & { buf: BufferRef })[] = [];
    for (let i = 0; i < k.buffers; i++) {
      const buf = await ctx.allocate(k.heap, frameBytes);
      const att = await ctx.attach(buf);
      pool.push({ buf, att, map: await ctx.map(att, DMA_DIR_TO_DEVICE) });
    }
    const targets: RenderTarget[] = [];
    ctx.onMoveNotify((att) => {
      const rt = targets.find((t) => t.att.id === att.id);
      if (rt === undefined) return;
      rt.stale = true;
      counters.moveNotifies++;
    });
    for (let i = 0; i < k.vramBuffers; i++) {
      const buf = await ctx.allocate(k.vramHeap, frameBytes);
      const att = await ctx.attach(buf, { dynamic: true });
      targets.push({ buf, att, map: await ctx.map(att, DMA_DIR_BIDIRECTIONAL), stale: false });
    }

    // Every input buffer is imported once; producers' pools bound how many there are.
    const imported = new Map<number, Imported>();
    const importBuffer = async (buf: BufferRef, dir = DMA_DIR_FROM_DEVICE): Promise<Imported> => {
      let slot = imported.get(buf.id);
      if (slot === undefined) {
        const att = await ctx.attach(buf);
        slot = { att, map: await ctx.map(att, dir) };
        imported.set(buf.id, slot);
      }
      return slot;
    };
    /** A layer the GPU must not touch (see the contract). */
    const untouchable = (buf: BufferRef): boolean => buf.restricted && !k.bugs.sampleProtected;
    const job0 = (frames: readonly Frame[]): BufferRef => (frames[0] as Frame).buffer;
    /** In place, unless input 0 is untouchable: then the job composes into its output like any other. */
    const inPlaceOn = (input0: BufferRef): boolean => k.inPlace && !untouchable(input0);
    const received: number[][] = ports.map(() => []);
    const checksums: number[] = [];

    /** Next job, or null once any input ended. */
    const submit = async (seq: number): Promise<Job | null> => {
      const frames: Frame[] = [];
      for (const port of ports) {
        const f = await ctx.recv(port);
        if (f === null) {
          for (const g of frames) if (g.fence) await ctx.put(g.fence);
          return null;
        }
        frames.push(f);
      }
      const render = targets.length > 0 && !k.inPlace ? await ctx.createFence() : 0;
      const fence = await ctx.createFence();
      for (const [i, f] of frames.entries()) {
        const target = inPlaceOn(job0(frames)) && i === 0;
        if (!untouchable(f.buffer)) await importBuffer(f.buffer, target ? DMA_DIR_BIDIRECTIONAL : DMA_DIR_FROM_DEVICE);
        await ctx.addFence(f.buffer, fence, target ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ);
      }
      return { seq, frames, render, fence };
    };

    const remapIfMoved = async (rt: RenderTarget): Promise<void> => {
      if (!rt.stale || k.bugs.useMappingAfterMoveNotify) return;
      rt.stale = false;
      await ctx.unmap(rt.map);
      rt.map = await ctx.map(rt.att, DMA_DIR_BIDIRECTIONAL);
      counters.remaps++;
    };

    const execute = async (job: Job): Promise<void> => {
      const out = pool[job.seq % pool.length] as Imported & { buf: BufferRef };
      await ctx.waitResv(out.buf, DMA_RESV_USAGE_READ);
      await ctx.addFence(out.buf, job.fence, k.bugs.writeFenceAsRead ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE);
      const samples: InputSample[] = [];
      let error = 0;
      for (const [i, f] of job.frames.entries()) {
        if (!k.bugs.skipFenceWait) {
          if (f.fence) await ctx.wait(f.fence);
          else await ctx.waitResv(f.buffer, DMA_RESV_USAGE_WRITE);
        }
        const status = f.fence && !k.bugs.skipFenceWait ? ctx.status(f.fence) : 0;
        if (f.fence) await ctx.put(f.fence);
        if (status < 0) {
          error ||= status;
          received[i]?.push(FRAME_FAILED);
          continue;
        }
        if (untouchable(f.buffer)) {
          counters.protectedLayers++;
          received[i]?.push(FRAME_UNREAD);
          samples.push({ ...PROTECTED_LAYER_SAMPLE });
          continue;
        }
        const { map } = await importBuffer(f.buffer);
        received[i]?.push(await ctx.checksum(map, 0, f.buffer.sizeBytes));
        samples.push({
          luma: sampleMean(await ctx.read(map, 0, GPU_SAMPLE_BYTES)),
          chroma: sampleMean(await ctx.read(map, inputBytes - GPU_SAMPLE_BYTES, GPU_SAMPLE_BYTES)),
        });
      }
      if (error < 0) {
        counters.failedJobs++;
        checksums.push(FRAME_FAILED);
        if (job.render) {
          await ctx.signal(job.render, error);
          await ctx.put(job.render);
        }
        await ctx.signal(job.fence, error);
        await ctx.send('out', { seq: job.seq, buffer: out.buf, fence: job.fence, flags: 0 });
        return;
      }
      const jitter = k.jitterNs > 0 ? ctx.prng.int(-k.jitterNs, k.jitterNs) : 0;
      await ctx.busy(Math.max(0, k.jobNs + jitter));
      const bands = composeBands(samples, k.width, k.height);
      const rt = targets.length > 0 && !k.inPlace ? targets[job.seq % targets.length] : undefined;
      if (inPlaceOn(job0(job.frames))) {
        const { map } = await importBuffer((job.frames[0] as Frame).buffer);
        for (const [offset, length, value] of bands) await ctx.fill(map, offset, length, value);
        await resolve(ctx, map, out.map, frameBytes);
      } else if (rt === undefined) {
        for (const [offset, length, value] of bands) await ctx.fill(out.map, offset, length, value);
      } else {
        // Each pass re-maps a moved target first (the exporter may bring an idle buffer back into VRAM then,
        // as validation does before a job is queued), then publishes its fence on it under the resv lock:
        // from there the exporter cannot move it, and a move made meanwhile is known (taking the lock
        // delivers its move_notify), so the mapping is checked once more where it can no longer change.
        await remapIfMoved(rt);
        await ctx.addFence(rt.buf, job.render, DMA_RESV_USAGE_WRITE);
        await remapIfMoved(rt);
        for (const [offset, length, value] of bands) await ctx.fill(rt.map, offset, length, value);
        await ctx.signal(job.render);
        await ctx.put(job.render);
        if (k.evictEvery > 0 && (job.seq + 1) % k.evictEvery === 0) {
          const moved = await ctx.evict(rt.buf);
          if (moved > 0) counters.evictions++;
        }
        await remapIfMoved(rt);
        await ctx.addFence(rt.buf, job.fence, DMA_RESV_USAGE_READ);
        await remapIfMoved(rt);
        await resolve(ctx, rt.map, out.map, frameBytes);
      }
      // What it composed, without reading it back: a resolve that went wrong shows up at the display.
      checksums.push(
        checksumOfFills(
          out.buf.sizeBytes,
          [...bands].sort((a, b) => a[0] - b[0]),
        ),
      );
      if (job.seq !== k.bugs.neverSignal) await ctx.signal(job.fence);
      if (k.bugs.signalTwice) await ctx.signal(job.fence);
      await ctx.send('out', { seq: job.seq, buffer: out.buf, fence: job.fence, flags: 0 });
    };

    const queue: Job[] = [];
    let submitted = 0;
    let ended = false;
    for (;;) {
      while (!ended && queue.length < k.queueDepth) {
        const job = await submit(submitted);
        if (job === null) ended = true;
        else {
          queue.push(job);
          submitted++;
        }
      }
      const job = queue.shift();
      if (job === undefined) break;
      await execute(job);
    }
    // One input ended: take the rest of every other so its producer is not left blocked on a full link.
    for (const port of ports) {
      for (let f = await ctx.recv(port); f !== null; f = await ctx.recv(port)) if (f.fence) await ctx.put(f.fence);
    }
    await ctx.close('out');
    for (const { buf } of pool) await ctx.waitResv(buf, DMA_RESV_USAGE_READ);
    for (const { att } of imported.values()) await ctx.detach(att);
    for (const rt of targets) {
      await ctx.detach(rt.att);
      await ctx.release(rt.buf);
    }
    for (const { buf, att } of pool) {
      await ctx.detach(att);
      await ctx.release(buf);
    }
    return {
      frames: checksums.length,
      checksums,
      ...Object.fromEntries(ports.map((p, i) => [`received:${p}`, received[i] ?? []])),
      ...counters,
    };
  },
});

/** The resolve: copy the frame from the render target to the output buffer in copy-engine bursts. */
async function resolve(ctx: DeviceContext, source: Mapping, target: Mapping, frameBytes: number): Promise<void> {
  for (let at = 0; at < frameBytes; at += GPU_COPY_CHUNK_BYTES) {
    await ctx.copy(source, at, target, at, Math.min(GPU_COPY_CHUNK_BYTES, frameBytes - at));
  }
}
