/**
 * TEE: the secure world's agent, minimal. It allocates memory for the protected heaps and fills it from
 * the secure side: per key, allocate a buffer from its heap, attach and map it, publish a write fence
 * (WRITE) in the buffer's resv, write a key (bytes from the device's PRNG), checksum it, signal the fence,
 * then unmap, detach and release.
 *
 * Its heap defaults to 'system'; with `heap: 'protected,secure-video'` (and a pool in the scenario's
 * `kernel.protected`) the keys live in protected memory, which the firewall admits the TEE to by default and
 * which no CPU can map. Still to come with the restricted-heaps issue: the TEE registering and unregistering
 * the heaps itself (tee_device_register_dma_heap), dynamic pools, and per-process accounting.
 *
 * Injectable bugs (knob `bugs`):
 * - `skipFenceSignal`: the completion of key N never arrives (neither its signal nor the put that goes
 *   with it) → fence-never-signalled when the TEE finishes;
 * - `writeAfterUnmap`: writes the key again through its mapping after unmapping it (a use after free of a
 *   DMA mapping) → dma-access-unmapped.
 */
import { z } from 'zod';
import { DMA_RESV_USAGE_WRITE } from '../kernel/dma-resv.js';
import { DMA_DIR_TO_DEVICE, defineDevice } from './device.js';

/** Keys the TEE provisions in one run, at most. */
export const TEE_KEYS_MAX = 64;

export const teeKnobs = z
  .object({
    heap: z.string().default('system'),
    keys: z.number().int().min(0).max(TEE_KEYS_MAX).default(1),
    keyBytes: z
      .number()
      .int()
      .min(1)
      .max(1 << 20)
      .default(4096),
    /** Secure-world time to derive and write one key. */
    keyNs: z.number().int().min(0).max(60_000_000_000).default(100_000),
    bugs: z
      .object({
        skipFenceSignal: z.number().int().min(-1).default(-1),
        writeAfterUnmap: z.boolean().default(false),
      })
      .strict()
      .default({ skipFenceSignal: -1, writeAfterUnmap: false }),
  })
  .strict();
export type TeeKnobs = z.infer<typeof teeKnobs>;

export const tee = defineDevice<TeeKnobs>({
  name: 'tee',
  parseKnobs: (raw) => teeKnobs.parse(raw ?? {}),
  inputs: () => [],
  outputs: () => [],
  async run(ctx, k) {
    const checksums: number[] = [];
    for (let i = 0; i < k.keys; i++) {
      const buf = await ctx.allocate(k.heap, k.keyBytes);
      const att = await ctx.attach(buf);
      const map = await ctx.map(att, DMA_DIR_TO_DEVICE);
      const fence = await ctx.createFence();
      await ctx.addFence(buf, fence, DMA_RESV_USAGE_WRITE);
      const key = ctx.prng.fill(new Uint8Array(k.keyBytes));
      await ctx.busy(k.keyNs);
      await ctx.write(map, 0, key);
      checksums.push(await ctx.checksum(map, 0, k.keyBytes));
      if (i !== k.bugs.skipFenceSignal) {
        await ctx.signal(fence);
        await ctx.put(fence);
      }
      await ctx.unmap(map);
      if (k.bugs.writeAfterUnmap) await ctx.write(map, 0, key);
      await ctx.detach(att);
      await ctx.release(buf);
    }
    return { frames: checksums.length, checksums };
  },
});
