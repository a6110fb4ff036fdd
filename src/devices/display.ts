/**
 * Display: scans frames out at vblank.
 *
 * Per frame: receive it, import the buffer once (static attach + map), wait for the frame's write fence
 * (explicit sync) — or for the buffer's WRITE fences when the frame carries none (implicit sync) — put a
 * release fence (READ) in the buffer's resv so the producer will not overwrite it while it is on screen,
 * wait for the next vblank, then scan out: a CRC (checksum) of the bytes shown. The previous frame's
 * release fence is signalled at this flip: a buffer is held until the next one replaces it.
 *
 * Bugs (knob `bugs`): `skipFenceWait` scans out without waiting for the producer — a read/write race that
 * shows up as wrong checksums when the producer is slow; `neverRelease` never signals release fences —
 * the producer hangs waiting to reuse its buffers.
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import { type AttachmentRef, DMA_DIR_FROM_DEVICE, defineDevice, type Mapping } from './device.js';

export const displayKnobs = z
  .object({
    refreshHz: z.number().positive().max(1000).default(60),
    /** Scan-out time as a fraction of the refresh interval. */
    scanoutFraction: z.number().min(0).max(1).default(0.8),
    bugs: z
      .object({ skipFenceWait: z.boolean().default(false), neverRelease: z.boolean().default(false) })
      .strict()
      .default({ skipFenceWait: false, neverRelease: false }),
  })
  .strict();
export type DisplayKnobs = z.infer<typeof displayKnobs>;

export const display = defineDevice<DisplayKnobs>({
  name: 'display',
  parseKnobs: (raw) => displayKnobs.parse(raw ?? {}),
  inputs: () => ['in'],
  outputs: () => [],
  async run(ctx, k) {
    const periodNs = Math.round(1e9 / k.refreshHz);
    const imported = new Map<number, { att: AttachmentRef; map: Mapping }>();
    const checksums: number[] = [];
    let previousRelease = 0;
    for (;;) {
      const frame = await ctx.recv('in');
      if (frame === null) break;
      let slot = imported.get(frame.buffer.id);
      if (slot === undefined) {
        const att = await ctx.attach(frame.buffer);
        slot = { att, map: await ctx.map(att, DMA_DIR_FROM_DEVICE) };
        imported.set(frame.buffer.id, slot);
      }
      if (!k.bugs.skipFenceWait) {
        if (frame.fence) await ctx.wait(frame.fence);
        else await ctx.waitResv(frame.buffer, DMA_RESV_USAGE_WRITE);
      }
      if (frame.fence) await ctx.put(frame.fence);
      const release = await ctx.createFence();
      await ctx.addFence(frame.buffer, release, DMA_RESV_USAGE_READ);
      const now = ctx.nowNs();
      await ctx.busy(periodNs - (now % periodNs)); // next vblank
      const crc = await ctx.checksum(slot.map, 0, frame.buffer.sizeBytes);
      checksums.push(crc);
      ctx.log('scanout', { seq: frame.seq, buffer: frame.buffer.id, crc });
      await ctx.busy(Math.round(periodNs * k.scanoutFraction));
      if (previousRelease && !k.bugs.neverRelease) await ctx.signal(previousRelease);
      if (previousRelease) await ctx.put(previousRelease);
      previousRelease = release;
    }
    if (previousRelease) {
      if (!k.bugs.neverRelease) await ctx.signal(previousRelease);
      await ctx.put(previousRelease);
    }
    for (const { att } of imported.values()) await ctx.detach(att);
    return { frames: checksums.length, checksums };
  },
});
