/**
 * Protected (restricted) buffers in the farm: the TEE's protected,secure-video heap behind a firewall that
 * admits only the devices the scenario says (default: decoder, display, TEE). A device outside it is
 * reported at its attach (restricted-attach) and its DMA never reaches the memory — reads see zeros, writes
 * are dropped; a CPU mapping is refused with -EINVAL and reported (restricted-cpu-map). Devices that check
 * `BufferRef.restricted` (the GPU composes the layer black, the display's screenshots are black) are silent.
 * The buggy examples themselves (scenarios/misuse/*-protected) run in misuse.test.ts on both hosts.
 */
import { describe, expect, it } from 'vitest';
import { nv12Bytes } from '../../src/devices/camera.js';
import { checksumOfFills } from '../../src/devices/checksum.js';
import { FRAME_UNREAD } from '../../src/devices/device.js';
import { composeBands, PROTECTED_LAYER_SAMPLE } from '../../src/devices/gpu.js';
import { PAGE_SIZE } from '../../src/kernel/uapi.js';
import { type Report, runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario, type Scenario, ScenarioError, type ScenarioInput } from '../../src/workers/scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';
import { prober } from '../fixtures/farm/protected-prober.js';
import { reader } from '../fixtures/farm/protected-reader.js';

const W = 160;
const H = 120;
const POOL = { bytes: 1 << 20 };
/** An NV12 frame of W×H in whole pages: what a frame buffer holds. */
const BUFFER_BYTES = Math.ceil(nv12Bytes(W, H) / PAGE_SIZE) * PAGE_SIZE;

const rules = (r: Report): string[] => [...new Set(r.findings.map((f) => f.rule))].sort();
const dev = (r: Report, name: string): Record<string, unknown> => {
  const d = r.devices[name] as Record<string, unknown> | undefined;
  expect(d && 'error' in d ? d.error : null, `${name} finished`).toBeNull();
  return d as Record<string, unknown>;
};

/** w0 (protected-prober.ts) writes a protected page, r0 (protected-reader.ts, admitted) reads it. */
function outsiderScenario(): ScenarioInput & { kernel: NonNullable<ScenarioInput['kernel']> } {
  return {
    name: 'outsider',
    kernel: { protected: { 'secure-video': { ...POOL, firewall: ['r0'] } } },
    devices: { w0: { model: 'prober' }, r0: { model: 'reader' } },
    links: [
      { from: 'w0.out', to: 'r0.in' },
      { from: 'r0.ack', to: 'w0.ack' },
    ],
    models: { prober, reader },
  };
}

/** The GPU example with its bug on and the given firewall for secure video. */
async function gpuExample(firewall?: string[]): Promise<Scenario> {
  const s = await loadScenario('scenarios/misuse/gpu-sample-protected.ts');
  const { models, parsedKnobs: _p, ...input } = s;
  return defineScenario({
    ...input,
    kernel: { ...s.kernel, protected: { 'secure-video': { ...POOL, ...(firewall ? { firewall } : {}) } } },
    expect: { findings: [] },
    models,
  } as ScenarioInput);
}

describe('protected buffers: the firewall', () => {
  for (const host of ['sim', 'worker'] as const) {
    it(`a GPU the scenario admits (by model or by name) reads the decoder's real bytes (${host})`, async () => {
      for (const admitted of ['gpu', 'gpu0']) {
        const r = await runScenario(await gpuExample(['video-decoder', 'display', admitted]), { seed: 2, host });
        expect(r.findings).toEqual([]);
        expect(dev(r, 'gpu0')['received:in0']).toEqual(dev(r, 'dec0').checksums);
      }
    });
  }

  it('a GPU outside the firewall is reported once per heap, and every read it makes sees zeros', async () => {
    const r = await runScenario(await gpuExample(), { seed: 2, host: 'sim' });
    expect(rules(r)).toEqual(['content-mismatch', 'restricted-attach']);
    const attach = r.findings.find((f) => f.rule === 'restricted-attach');
    expect(attach?.device).toBe('gpu0');
    expect(attach?.count).toBe(4); // one per decoder buffer, one finding for the site (the heap)
    expect(attach?.hint).toMatch(/BufferRef\.restricted/);
    const zeros = checksumOfFills(BUFFER_BYTES, []);
    expect(new Set(dev(r, 'gpu0')['received:in0'] as number[])).toEqual(new Set([zeros]));
  });

  it('a device outside the firewall writes nothing: an admitted reader finds the bytes untouched', async () => {
    for (const host of ['sim', 'worker'] as const) {
      const r = await runScenario(defineScenario(outsiderScenario()), { seed: 3, host });
      expect(rules(r)).toEqual(['restricted-attach']);
      expect(r.findings[0]?.device).toBe('w0');
      // w0 filled the buffer and copied it over a system buffer it had filled: the firewall answered both
      // without memory, so the copy brought zeros and the reader, admitted, sees the pool's zeros.
      expect(dev(r, 'w0').copied).toBe(checksumOfFills(PAGE_SIZE, []));
      expect(dev(r, 'r0').seen).toBe(checksumOfFills(PAGE_SIZE, []));
    }
    // Admitted too, the same writer's bytes land, and the copy moves them.
    const both = outsiderScenario();
    both.kernel = { protected: { 'secure-video': { ...POOL, firewall: ['r0', 'w0'] } } };
    const ok = await runScenario(defineScenario(both), { seed: 3, host: 'sim' });
    expect(ok.findings).toEqual([]);
    expect(dev(ok, 'r0').seen).toBe(checksumOfFills(PAGE_SIZE, [[0, PAGE_SIZE, 0x55]]));
    expect(dev(ok, 'w0').copied).toBe(checksumOfFills(PAGE_SIZE, [[0, PAGE_SIZE, 0x55]]));
  });

  it('a device outside the firewall reads zeros: a TEE excluded from its own pool checksums zeros', async () => {
    const input: ScenarioInput = {
      name: 'tee-outside',
      kernel: { protected: { 'secure-video': { ...POOL, firewall: ['video-decoder'] } } },
      devices: { tee0: { model: 'tee', knobs: { heap: 'protected,secure-video', keys: 2, keyBytes: 8192 } } },
    };
    const r = await runScenario(defineScenario(input), { seed: 1, host: 'sim' });
    expect(rules(r)).toEqual(['restricted-attach']);
    expect(dev(r, 'tee0').checksums).toEqual([checksumOfFills(8192, []), checksumOfFills(8192, [])]);
    // Admitted (the default firewall), the same keys land.
    const ok = await runScenario(defineScenario({ ...input, kernel: { protected: { 'secure-video': POOL } } }), {
      seed: 1,
      host: 'sim',
    });
    expect(ok.findings).toEqual([]);
    expect(dev(ok, 'tee0').checksums).not.toContain(checksumOfFills(8192, []));
    expect(ok.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

describe('protected buffers: devices that check BufferRef.restricted', () => {
  it('an in-place GPU composes into its output instead of touching a protected input 0', async () => {
    const s = await loadScenario('scenarios/misuse/fixed/gpu-sample-protected.ts');
    const { models, parsedKnobs: _p, ...input } = s;
    const gpu0 = input.devices.gpu0 as { model: string; knobs: Record<string, unknown> };
    const inPlace = defineScenario({
      ...input,
      devices: { ...input.devices, gpu0: { model: 'gpu', knobs: { ...gpu0.knobs, inPlace: true } } },
      models,
    } as ScenarioInput);
    for (const host of ['sim', 'worker'] as const) {
      const r = await runScenario(inPlace, { seed: 4, host });
      expect(r.findings).toEqual([]);
      expect(dev(r, 'gpu0').protectedLayers).toBe(6);
      expect(dev(r, 'disp0').checksums).toEqual(dev(r, 'gpu0').checksums);
    }
  });

  it('the GPU composes a protected layer black without importing it; the display shows exactly that', async () => {
    const s = await loadScenario('scenarios/misuse/fixed/gpu-sample-protected.ts');
    const r = await runScenario(s, { seed: 4, host: 'sim' });
    expect(r.findings).toEqual([]);
    const gpu = dev(r, 'gpu0');
    expect(gpu.protectedLayers).toBe(6);
    expect(gpu['received:in0']).toEqual(Array(6).fill(FRAME_UNREAD));
    const black = checksumOfFills(
      BUFFER_BYTES,
      composeBands([PROTECTED_LAYER_SAMPLE], W, H).sort((a, b) => a[0] - b[0]),
    );
    expect(dev(r, 'disp0').checksums).toEqual(Array(6).fill(black));
  });

  it('screenshots: of normal frames what was shown; of protected frames black, or refused and reported', async () => {
    const buggy = await loadScenario('scenarios/misuse/display-screenshot-protected.ts');
    const { models, parsedKnobs: _p, ...input } = buggy;
    const normal = defineScenario({
      ...input,
      name: 'screenshots-normal',
      devices: { ...input.devices, dec0: { model: 'video-decoder', knobs: { width: W, height: H, buffers: 4 } } },
      expect: { findings: [] },
      models,
    } as ScenarioInput);
    const shown = await runScenario(normal, { seed: 5, host: 'sim' });
    expect(shown.findings).toEqual([]);
    const checksums = dev(shown, 'disp0').checksums as number[];
    expect(dev(shown, 'disp0').screenshots).toEqual([checksums[1], checksums[3], checksums[5]]);

    const fixed = await runScenario(await loadScenario('scenarios/misuse/fixed/display-screenshot-protected.ts'), {
      seed: 5,
      host: 'sim',
    });
    expect(fixed.findings).toEqual([]);
    expect(dev(fixed, 'disp0')).toMatchObject({ screenshots: [], screenshotsBlack: 3, screenshotsFailed: 0 });

    const bad = await runScenario(buggy, { seed: 5, host: 'sim' });
    expect(rules(bad)).toEqual(['restricted-cpu-map']);
    expect(dev(bad, 'disp0')).toMatchObject({ screenshots: [], screenshotsBlack: 0, screenshotsFailed: 3 });
    // The display's scan-out is by DMA, which the firewall admits: it showed the decoder's pictures.
    expect(dev(bad, 'disp0').checksums).toEqual(dev(bad, 'dec0').checksums);
  });
});

describe('protected heaps in scenarios', () => {
  it('a bad protected pool is a scenario error naming the field', () => {
    const base: ScenarioInput = { name: 'bad', devices: { tee0: { model: 'tee' } } };
    expect(() => defineScenario({ ...base, kernel: { protected: { 'secure-audio': POOL } } } as ScenarioInput)).toThrow(
      /kernel\.protected: Unrecognized key: "secure-audio"/,
    );
    expect(() => defineScenario({ ...base, kernel: { protected: { 'trusted-ui': { bytes: 1000 } } } })).toThrow(
      /kernel\.protected\.trusted-ui\.bytes: a whole number of 4096-byte pages/,
    );
    expect(() => defineScenario({ ...base, kernel: { protected: { 'trusted-ui': { bytes: 4096 } } } })).not.toThrow();
    expect(() => defineScenario({ ...base, kernel: { protected: { 'trusted-ui': { bytes: 1000 } } } })).toThrow(
      ScenarioError,
    );
  });
});
