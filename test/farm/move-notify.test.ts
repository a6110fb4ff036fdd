/**
 * A move made by another device: the exporter moves a dynamic importer's buffer at another device's
 * request while the importer is between two passes (the links fix that order). On the worker host the
 * importer hears of it by a message it has no reason to read; taking the resv lock to publish its next
 * fence must deliver it, so the importer re-maps before it writes and its bytes land in the buffer's new
 * pages. Without that, it writes through the invalidated mapping (dma-write-after-move-notify) into pages
 * the buffer has left.
 */
import { describe, expect, it } from 'vitest';
import type { HostKind } from '../../src/workers/run-scenario.js';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';
import { evictor } from '../fixtures/farm/evictor.js';
import { deviceResult } from '../fixtures/farm/scenarios.js';
import { secondPassChecksum, vramUser } from '../fixtures/farm/vram-user.js';

const SIZE_BYTES = 16_384;

const scenario = defineScenario({
  name: 'moved-by-another-device',
  kernel: { vramBytes: 1 << 20 },
  devices: { user: { model: 'vram-user', knobs: { sizeBytes: SIZE_BYTES } }, other: { model: 'evictor' } },
  links: [
    { from: 'user.out', to: 'other.in', capacity: 1 },
    { from: 'other.out', to: 'user.in', capacity: 1 },
  ],
  models: { 'vram-user': vramUser, evictor },
});

describe.each(['sim', 'worker'] as const)('a buffer moved by another device, on the %s host', (host: HostKind) => {
  it('is re-mapped by its importer before the next write, which lands in the new pages', async () => {
    const r = await runScenario(scenario, { seed: 2, host, timeScale: 0 });
    expect(r.findings).toEqual([]);
    expect(deviceResult(r, 'other').moved).toBe(SIZE_BYTES);
    const user = deviceResult(r, 'user');
    expect(user).toMatchObject({ moveNotifies: 1, remaps: 1 });
    expect(user.held).toBe(secondPassChecksum(SIZE_BYTES));
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});
