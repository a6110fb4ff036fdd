/**
 * Display: scans frames out at vblank.
 *
 * Per frame: receive it, import the buffer once (static attach + map), wait for the frame's write fence
 * (explicit sync) — or for the buffer's WRITE fences when the frame carries none (implicit sync) — put a
 * release fence (READ) in the buffer's resv so the producer will not overwrite it while it is on screen,
 * wait for the next vblank, then scan out: a CRC (checksum) of the bytes shown. The previous frame's
 * release fence is signalled at this flip: a buffer is held until the next one replaces it. A frame whose
 * fence completed with an error (its producer failed or was timed out) is not shown — the screen keeps the
 * previous one — and is counted in `failedFrames`. The result's `scanoutNs` has each shown frame's scan-out
 * time (virtual on the sim host, the process's monotonic clock on workers), as page-flip events carry.
 *
 * CPU scan-out (knob `cpuScanout`, a software compositor or a screenshot path): the display reads the
 * frame through a CPU mapping instead of by DMA, bracketed by DMA_BUF_IOCTL_SYNC START/END(READ) after the
 * fence wait — except a protected frame (`BufferRef.restricted`), which has no CPU path and goes by DMA.
 *
 * Screenshots (knob `screenshotEvery` = N, a screen-capture service): every N-th frame shown is also read by
 * the CPU — CPU-mapped once per buffer, then SYNC START(READ), checksum, SYNC END — into `screenshots`. A
 * protected frame (`BufferRef.restricted`) is never CPU-mapped: the capture is black by design, counted in
 * `screenshotsBlack` (what Android does with a secure layer).
 *
 * Bugs (knob `bugs`): `skipFenceWait` scans out without waiting for the producer — a read/write race that
 * shows up as wrong checksums when the producer is slow; `neverRelease` never signals release fences —
 * the producer hangs waiting to reuse its buffers; `ignoreFrameFence` ignores the fence that comes with
 * the frame and relies on implicit sync instead — it waits for the buffer's WRITE fences (by DMA), or
 * only on what SYNC START waits for (CPU scan-out): fine behind a producer that adds its fence as WRITE, a
 * race behind one that synchronises explicitly (resv-bookkeep-nosync, cpu-sync-not-fence);
 * `waitPreviousFence` waits on the previous frame's fence instead of this one's (the first frame's own)
 * → fence-wait-stale; `screenshotProtected` captures protected frames like any other → restricted-cpu-map
 * (the kernel refuses the CPU mapping with -EINVAL; the capture fails, counted in `screenshotsFailed`).
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import {
  type AttachmentRef,
  type BufferRef,
  type CpuMapping,
  type DeviceContext,
  DMA_DIR_FROM_DEVICE,
  defineDevice,
  FRAME_FAILED,
  type Mapping,
} from './device.js';

export const displayKnobs = z
  .object({
    refreshHz: z.number().positive().max(1000).default(60),
    /** Scan-out time as a fraction of the refresh interval. */
    scanoutFraction: z.number().min(0).max(1).default(0.8),
    /** Read frames with the CPU through a vmap (bracketed by SYNC START/END) instead of by DMA. */
    cpuScanout: z.boolean().default(false),
    /** Capture every N-th frame shown with the CPU (0: never). */
    screenshotEvery: z.number().int().min(0).max(100_000).default(0),
    bugs: z
      .object({
        skipFenceWait: z.boolean().default(false),
        neverRelease: z.boolean().default(false),
        ignoreFrameFence: z.boolean().default(false),
        waitPreviousFence: z.boolean().default(false),
        screenshotProtected: z.boolean().default(false),
      })
      .strict()
      .default({
        skipFenceWait: false,
        neverRelease: false,
        ignoreFrameFence: false,
        waitPreviousFence: false,
        screenshotProtected: false,
      }),
  })
  .strict();
export type DisplayKnobs = z.infer<typeof displayKnobs>;

/** A CPU mapping, or null when the kernel refuses it (an errno: protected or device-local memory). */
async function cpuMapOrNull(ctx: DeviceContext, buf: BufferRef): Promise<CpuMapping | null> {
  try {
    return await ctx.cpuMap(buf);
  } catch (e) {
    if (typeof (e as { errno?: unknown }).errno === 'number') return null;
    throw e;
  }
}

/** The frame's own fence is waited on (no bug bypasses it), so its outcome can be looked at. */
function checksFence(k: DisplayKnobs): boolean {
  return !k.bugs.skipFenceWait && !k.bugs.ignoreFrameFence && !k.bugs.waitPreviousFence;
}

export const display = defineDevice<DisplayKnobs>({
  name: 'display',
  parseKnobs: (raw) => displayKnobs.parse(raw ?? {}),
  inputs: () => ['in'],
  outputs: () => [],
  async run(ctx, k) {
    const periodNs = Math.round(1e9 / k.refreshHz);
    const imported = new Map<number, { att: AttachmentRef; map: Mapping; cpu: CpuMapping | null }>();
    const checksums: number[] = [];
    let failedFrames = 0;
    let shown = 0;
    /** When each frame shown was scanned out (the device clock): what a DRM page-flip event's timestamp gives. */
    const scanoutNs: number[] = [];
    const shots = { screenshots: [] as number[], screenshotsBlack: 0, screenshotsFailed: 0 };
    /** Each buffer's CPU view for screenshots, made at its first capture (null: the kernel refused it). */
    const shotMaps = new Map<number, CpuMapping | null>();
    const screenshot = async (buf: BufferRef): Promise<void> => {
      if (buf.restricted && !k.bugs.screenshotProtected) {
        shots.screenshotsBlack++;
        return;
      }
      let cm = shotMaps.get(buf.id);
      if (cm === undefined) {
        cm = await cpuMapOrNull(ctx, buf);
        shotMaps.set(buf.id, cm);
      }
      if (cm === null) {
        shots.screenshotsFailed++;
        return;
      }
      await ctx.cpuSync(buf, 'start', 'read');
      shots.screenshots.push(await ctx.cpuChecksum(cm, 0, buf.sizeBytes));
      await ctx.cpuSync(buf, 'end', 'read');
    };
    let previousRelease = 0;
    /** The previous frame's fence, kept for `waitPreviousFence` (the display holds its reference). */
    let previousFrameFence = 0;
    for (;;) {
      const frame = await ctx.recv('in');
      if (frame === null) break;
      let slot = imported.get(frame.buffer.id);
      if (slot === undefined) {
        const att = await ctx.attach(frame.buffer);
        const map = await ctx.map(att, DMA_DIR_FROM_DEVICE);
        // A protected frame has no CPU path: even a software compositor scans it out by DMA.
        slot = { att, map, cpu: k.cpuScanout && !frame.buffer.restricted ? await ctx.cpuMap(frame.buffer) : null };
        imported.set(frame.buffer.id, slot);
      }
      if (k.bugs.waitPreviousFence && frame.fence) {
        await ctx.wait(previousFrameFence || frame.fence);
        if (previousFrameFence) await ctx.put(previousFrameFence);
        previousFrameFence = frame.fence;
      } else if (k.bugs.ignoreFrameFence) {
        // Implicit sync only: by DMA, the buffer's WRITE fences; with the CPU, SYNC START's wait below.
        if (!k.cpuScanout) await ctx.waitResv(frame.buffer, DMA_RESV_USAGE_WRITE);
      } else if (!k.bugs.skipFenceWait) {
        if (frame.fence) await ctx.wait(frame.fence);
        else await ctx.waitResv(frame.buffer, DMA_RESV_USAGE_WRITE);
      }
      const failed = checksFence(k) && frame.fence !== 0 && ctx.status(frame.fence) < 0;
      if (frame.fence && frame.fence !== previousFrameFence) await ctx.put(frame.fence);
      if (failed) {
        checksums.push(FRAME_FAILED);
        failedFrames++;
        ctx.log('frame failed, not shown', { seq: frame.seq, buffer: frame.buffer.id });
        continue;
      }
      const release = await ctx.createFence();
      await ctx.addFence(frame.buffer, release, DMA_RESV_USAGE_READ);
      const now = ctx.nowNs();
      await ctx.busy(periodNs - (now % periodNs)); // next vblank
      let crc: number;
      if (slot.cpu !== null) {
        await ctx.cpuSync(frame.buffer, 'start', 'read');
        crc = await ctx.cpuChecksum(slot.cpu, 0, frame.buffer.sizeBytes);
        await ctx.cpuSync(frame.buffer, 'end', 'read');
      } else {
        crc = await ctx.checksum(slot.map, 0, frame.buffer.sizeBytes);
      }
      checksums.push(crc);
      scanoutNs.push(ctx.nowNs());
      ctx.log('scanout', { seq: frame.seq, buffer: frame.buffer.id, crc });
      shown++;
      if (k.screenshotEvery > 0 && shown % k.screenshotEvery === 0) await screenshot(frame.buffer);
      await ctx.busy(Math.round(periodNs * k.scanoutFraction));
      if (previousRelease && !k.bugs.neverRelease) await ctx.signal(previousRelease);
      if (previousRelease) await ctx.put(previousRelease);
      previousRelease = release;
    }
    if (previousRelease) {
      if (!k.bugs.neverRelease) await ctx.signal(previousRelease);
      await ctx.put(previousRelease);
    }
    if (previousFrameFence) await ctx.put(previousFrameFence);
    for (const { att } of imported.values()) await ctx.detach(att);
    return { frames: checksums.length, checksums, scanoutNs, failedFrames, ...shots };
  },
});
