/**
 * The GPU, video decoder and TEE models on the sim host (deterministic per seed): what each computes is
 * predicted here from its documented contract and checked byte for byte through checksums; eviction
 * reaches the GPU as move_notify and the moved bytes come out intact; every injected bug produces the
 * finding its model documents, and the same scenario without the bug is silent.
 */
import { describe, expect, it } from 'vitest';
import { nv12Bytes } from '../../src/devices/camera.js';
import { checksumBytes } from '../../src/devices/checksum.js';
import { type DeviceResult, FRAME_FAILED } from '../../src/devices/device.js';
import { composeNv12, GPU_SAMPLE_BYTES, type InputSample, sampleMean } from '../../src/devices/gpu.js';
import { decodeFills, decodeNv12 } from '../../src/devices/video-decoder.js';
import { PAGE_SIZE } from '../../src/kernel/uapi.js';
import { type Report, type RunOptions, runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario, type Scenario, ScenarioError, type ScenarioInput } from '../../src/workers/scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';

/** Small frames: every test here runs in milliseconds. */
const CW = 32;
const CH = 16;

async function run(input: ScenarioInput, opts: Partial<RunOptions> = {}): Promise<Report> {
  return runScenario(defineScenario(input), { seed: 7, host: 'sim', ...opts });
}

function result(r: Report, device: string): DeviceResult & Record<string, number[]> {
  const d = r.devices[device];
  expect(d, `${device} ran`).toBeDefined();
  expect(d && 'error' in d ? d.error : null, `${device} finished`).toBeNull();
  return d as DeviceResult & Record<string, number[]>;
}

function rules(r: Report): string[] {
  return [...new Set(r.findings.map((f) => f.rule))].sort();
}

function expectClean(r: Report): void {
  expect(r.findings.map((f) => `${f.rule}: ${f.message}`)).toEqual([]);
  expect(r.hang).toBeNull();
  expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  expect(r.ok).toBe(true);
}

/** A frame as the buffer holds it: the picture, then zeros up to the page. */
function inBuffer(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(frame.length / PAGE_SIZE) * PAGE_SIZE);
  out.set(frame);
  return out;
}

/** The farm's checksum (a display's CRC) of a buffer's bytes. */
function crc(bytes: Uint8Array): number {
  return checksumBytes(bytes);
}

/** The camera's documented picture for frame `seq`. */
function cameraFrame(width: number, height: number, seq: number): Uint8Array {
  const f = new Uint8Array(nv12Bytes(width, height));
  f.fill((seq * 7 + 16) & 0xff, 0, width * height);
  f.fill((seq * 13 + 128) & 0xff, width * height);
  return f;
}

/** What the GPU samples from an NV12 input frame (its contract). */
function sampleOf(frame: Uint8Array): InputSample {
  return {
    luma: sampleMean(frame.subarray(0, GPU_SAMPLE_BYTES)),
    chroma: sampleMean(frame.subarray(frame.length - GPU_SAMPLE_BYTES)),
  };
}

const camera = (knobs: Record<string, unknown> = {}) => ({
  model: 'camera',
  knobs: { width: CW, height: CH, fps: 100, buffers: 4, ...knobs },
});
const display = (knobs: Record<string, unknown> = {}) => ({ model: 'display', knobs: { refreshHz: 200, ...knobs } });

/**
 * cam0 → gpu.in0, cam1 → dec0 → gpu.in1, gpu → disp0: the GPU's output is predicted from the camera's
 * documented picture and the decoder's documented decode of it.
 */
function composeScenario(frames: number, gpuKnobs: Record<string, unknown> = {}, vramBytes = 0): ScenarioInput {
  return {
    name: 'compose',
    frames,
    ...(vramBytes > 0 ? { kernel: { vramBytes } } : {}),
    devices: {
      cam0: camera(),
      cam1: camera({ busyFraction: 0.2 }),
      dec0: {
        model: 'video-decoder',
        knobs: { input: true, width: CW, height: CH, decodeNs: 1_000_000, jitterNs: 200_000 },
      },
      gpu0: {
        model: 'gpu',
        knobs: { inputs: 2, width: 40, height: 24, inputWidth: CW, inputHeight: CH, jitterNs: 100_000, ...gpuKnobs },
      },
      disp0: display(),
    },
    links: [
      { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
      { from: 'cam1.out', to: 'dec0.in', capacity: 2 },
      { from: 'dec0.out', to: 'gpu0.in1', capacity: 2 },
      { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
    ],
  };
}

/** Expected decoder and GPU checksums for frame `seq` of composeScenario. */
function composeExpected(seq: number): { decoded: number; composed: number } {
  const cam = cameraFrame(CW, CH, seq);
  // The decoder reads up to bitstreamBytes (4096) of its input buffer: the camera's one page.
  const decoded = decodeNv12(inBuffer(cam), CW, CH, 64);
  const composed = composeNv12([sampleOf(cam), sampleOf(decoded)], 40, 24);
  return { decoded: crc(inBuffer(decoded)), composed: crc(inBuffer(composed)) };
}

describe('gpu: composition', () => {
  it('composes every job from both inputs as documented, and every link delivers what was sent', async () => {
    const frames = 6;
    const r = await run(composeScenario(frames));
    expectClean(r);
    const cam0 = result(r, 'cam0');
    const cam1 = result(r, 'cam1');
    const dec = result(r, 'dec0');
    const gpu = result(r, 'gpu0');
    const disp = result(r, 'disp0');
    const want = Array.from({ length: frames }, (_, seq) => composeExpected(seq));
    expect(new Set(want.map((w) => w.composed)).size).toBe(frames);
    expect(dec.checksums).toEqual(want.map((w) => w.decoded));
    expect(gpu.checksums).toEqual(want.map((w) => w.composed));
    expect(disp.checksums).toEqual(gpu.checksums);
    expect(gpu['received:in0']).toEqual(cam0.checksums);
    expect(gpu['received:in1']).toEqual(dec.checksums);
    expect(dec['received:in']).toEqual(cam1.checksums);
    expect(gpu.frames).toBe(frames);
  });

  it('gives the same output through vram render targets and a resolve as rendering straight to the output', async () => {
    const r = await run(composeScenario(5, { vramBuffers: 2 }, 64 << 10));
    expectClean(r);
    const gpu = result(r, 'gpu0');
    expect(gpu.checksums).toEqual(Array.from({ length: 5 }, (_, seq) => composeExpected(seq).composed));
    expect(gpu.moveNotifies).toBe(0);
  });

  it('stops at the end of the shortest input and drains the others, so no producer is left blocked', async () => {
    const r = await run({
      name: 'uneven',
      devices: {
        cam0: camera({ frames: 3 }),
        cam1: camera({ frames: 7 }),
        gpu0: { model: 'gpu', knobs: { inputs: 2, width: CW, height: CH } },
        disp0: display(),
      },
      links: [
        { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
        { from: 'cam1.out', to: 'gpu0.in1', capacity: 2 },
        { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
      ],
    });
    expectClean(r);
    expect(result(r, 'gpu0').frames).toBe(3);
    expect(result(r, 'cam1').frames).toBe(7);
  });
});

/**
 * cam0 → gpu (3 render targets of one page each in a two-page vram, evicting every other job's target
 * between render and resolve) → disp0.
 */
function pressureScenario(bugs: Record<string, unknown> = {}): ScenarioInput {
  return {
    name: 'pressure',
    frames: 8,
    kernel: { vramBytes: 2 * PAGE_SIZE },
    devices: {
      cam0: camera(),
      gpu0: {
        model: 'gpu',
        knobs: { inputs: 1, width: CW, height: CH, vramBuffers: 3, evictEvery: 2, queueDepth: 2, bugs },
      },
      disp0: display(),
    },
    links: [
      { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
      { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
    ],
  };
}

describe('gpu: eviction and move_notify', () => {
  it('receives move_notify for every move, re-maps, and resolves the moved bytes intact', async () => {
    const r = await run(pressureScenario());
    expectClean(r);
    const gpu = result(r, 'gpu0');
    // Allocating the third target evicts the first (rt0). Then the GPU asks after jobs 1, 3, 5 and 7: rt1,
    // rt0, rt2, rt1. rt0 moves nothing (still in system memory: VRAM has had no room for it since), the
    // others move and come back at their re-map. Every move is one move_notify, and one re-map.
    expect(gpu.evictions).toBe(3);
    expect(gpu.moveNotifies).toBe(4);
    expect(gpu.remaps).toBe(4);
    const want = Array.from({ length: 8 }, (_, seq) =>
      crc(inBuffer(composeNv12([sampleOf(cameraFrame(CW, CH, seq))], CW, CH))),
    );
    expect(gpu.checksums).toEqual(want);
    expect(result(r, 'disp0').checksums).toEqual(want);
  });

  it('useMappingAfterMoveNotify: writing and reading through the moved mapping are reported', async () => {
    const r = await run(pressureScenario({ useMappingAfterMoveNotify: true }));
    expect(rules(r)).toContain('dma-write-after-move-notify');
    expect(rules(r)).toContain('dma-read-after-move-notify');
    expect(r.findings.find((f) => f.rule === 'dma-write-after-move-notify')?.device).toBe('gpu0');
    expect(result(r, 'gpu0').remaps).toBe(0);
  });

  it('without vram the GPU cannot allocate render targets: a device-call-failed finding, not a crash', async () => {
    const input = pressureScenario();
    const r = await run({ ...input, kernel: {} });
    expect(rules(r)).toContain('device-call-failed');
    expect(r.findings[0]?.message).toMatch(/vram/);
  });
});

/** dec0 (self-fed, slow, sends ahead of its picture) → gpu → disp0. */
function decoderGpuScenario(gpuBugs: Record<string, unknown> = {}): ScenarioInput {
  return {
    name: 'decoder-gpu',
    frames: 4,
    devices: {
      dec0: {
        model: 'video-decoder',
        knobs: { width: CW, height: CH, fps: 25, decodeNs: 20_000_000, jitterNs: 0 },
      },
      gpu0: {
        model: 'gpu',
        knobs: { inputs: 1, width: CW, height: CH, queueDepth: 1, jobNs: 100_000, jitterNs: 0, bugs: gpuBugs },
      },
      disp0: display(),
    },
    links: [
      { from: 'dec0.out', to: 'gpu0.in0', capacity: 2 },
      { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
    ],
  };
}

describe('gpu: injected bugs', () => {
  it('without bugs, a GPU behind a decoder that sends ahead waits for every decode and is silent', async () => {
    const r = await run(decoderGpuScenario());
    expectClean(r);
    expect(result(r, 'gpu0')['received:in0']).toEqual(result(r, 'dec0').checksums);
  });

  it('skipFenceWait: the GPU reads half-decoded frames → content-mismatch on the decoder link', async () => {
    const r = await run(decoderGpuScenario({ skipFenceWait: true }));
    // The bytes were wrong (content) and the race is flagged: the GPU's read and the decoder's write
    // were unordered (seen as WAR: the read came first, then the decoder wrote under it).
    expect(rules(r)).toEqual(['content-mismatch', 'dmabuf-hazard-war']);
    const f = r.findings.find((x) => x.rule === 'content-mismatch');
    expect(f?.objects).toMatchObject({ producer: 'dec0', consumer: 'gpu0', frames: 4 });
  });

  it('signalTwice: fence-double-signal', async () => {
    const r = await run(decoderGpuScenario({ signalTwice: true }));
    expect(rules(r)).toEqual(['fence-double-signal']);
    expect(r.findings.every((f) => f.device === 'gpu0')).toBe(true);
  });

  it('neverSignal: the display hangs on the job fence that never signals', async () => {
    const r = await run(decoderGpuScenario({ neverSignal: 1 }));
    expect(rules(r)).toContain('hang');
    // The decoder hangs too: the job fence is also the GPU's READ fence on the decoder's buffer.
    expect(r.hang?.waiting.map((w) => w.device).sort()).toEqual(['dec0', 'disp0', 'gpu0']);
    expect(r.findings.filter((f) => f.rule !== 'hang')).toEqual([]);
  });
});

/** dec0 (self-fed) → disp0. */
function playbackScenario(
  decKnobs: Record<string, unknown> = {},
  dispKnobs: Record<string, unknown> = {},
): ScenarioInput {
  return {
    name: 'playback',
    frames: 6,
    devices: {
      dec0: { model: 'video-decoder', knobs: { width: CW, height: CH, fps: 50, ...decKnobs } },
      disp0: display(dispKnobs),
    },
    links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
  };
}

describe('video decoder', () => {
  it('decodes its own bitstream into distinct frames the display shows, the same for the same seed', async () => {
    const a = await run(playbackScenario());
    expectClean(a);
    const dec = result(a, 'dec0');
    expect(dec.frames).toBe(6);
    expect(new Set(dec.checksums).size).toBe(6);
    expect(result(a, 'disp0').checksums).toEqual(dec.checksums);
    const again = await run(playbackScenario());
    expect(result(again, 'dec0').checksums).toEqual(dec.checksums);
    const other = await run(playbackScenario(), { seed: 8 });
    expect(result(other, 'dec0').checksums).not.toEqual(dec.checksums);
  });

  it('writes its picture a row of coding blocks at a time: stripeRows rows per stripe, each from its own byte', () => {
    const head = Uint8Array.from([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70]);
    const hash = 0xab03;
    const w = 8;
    const h = 100;
    const chroma: [number, number, number] = [w * h, nv12Bytes(w, h) - w * h, 0xab];
    // HEVC CTU rows: 64 rows, then the 36 left; each stripe's byte is head[j] ^ (hash & 0xff).
    expect(decodeFills(hash, 4096, head, w, h, 64)).toEqual([[0, 64 * w, 0x13], [64 * w, 36 * w, 0x23], chroma]);
    // H.264 macroblock rows: seven stripes, the last of 4 rows.
    const mb = decodeFills(hash, 4096, head, w, h, 16);
    expect(mb.map(([o, n]) => [o / w, n / w])).toEqual([
      [0, 16],
      [16, 16],
      [32, 16],
      [48, 16],
      [64, 16],
      [80, 16],
      [96, 4],
      [100, nv12Bytes(w, h) / w - 100],
    ]);
    expect(mb.map(([, , v]) => v)).toEqual([0x13, 0x23, 0x33, 0x43, 0x53, 0x63, 0x73, 0xab]);
    // A unit shorter than the stripes: its bytes repeat.
    expect(decodeFills(hash, 2, head, w, h, 16).map(([, , v]) => v)).toEqual([
      0x13, 0x23, 0x13, 0x23, 0x13, 0x23, 0x13, 0xab,
    ]);
  });

  it('a self-fed decoder at 16 and at 64 rows per stripe: different pictures, each shown as decoded', async () => {
    const tall = { width: 16, height: 160 };
    const sums: number[][] = [];
    for (const stripeRows of [16, 64]) {
      const r = await run(playbackScenario({ ...tall, stripeRows }));
      expectClean(r);
      expect(result(r, 'disp0').checksums).toEqual(result(r, 'dec0').checksums);
      sums.push(result(r, 'dec0').checksums as number[]);
    }
    // Same seed, same bitstream: only the stripes differ (10 of 16 rows vs 3 of 64).
    expect(sums[0]).not.toEqual(sums[1]);
  });

  it('stripeRows must be a coding block height: another value is a scenario error naming the knob', () => {
    expect(() => defineScenario(playbackScenario({ stripeRows: 20 }))).toThrow(
      /devices\.dec0\.knobs.*stripeRows.*16, 32, 64, 128/,
    );
  });

  it('secure mode allocates its output from secureHeap (a missing heap fails the allocation, by name)', async () => {
    const normal = await run(playbackScenario({ secureHeap: 'restricted-video' }));
    expectClean(normal);
    const secure = await run(playbackScenario({ secure: true, secureHeap: 'restricted-video' }));
    expect(rules(secure)).toContain('device-call-failed');
    expect(secure.findings[0]?.message).toMatch(/restricted-video/);
    // Its default heap is the TEE's protected,secure-video, which exists only where the scenario gives it a pool.
    const noPool = await run(playbackScenario({ secure: true }));
    expect(rules(noPool)).toContain('device-call-failed');
    expect(noPool.findings[0]?.message).toMatch(/protected,secure-video/);
    const secureOnSystem = await run(playbackScenario({ secure: true, secureHeap: 'system' }));
    expectClean(secureOnSystem);
    expect(result(secureOnSystem, 'dec0').secure).toBe(1);
  });

  it('skipFenceSignal: the display hangs on the frame whose fence never signals, until the watchdog fails it', async () => {
    const r = await run(playbackScenario({ bugs: { skipFenceSignal: 2 } }));
    expect(rules(r)).toContain('hang');
    expect(r.hang?.waiting.map((w) => w.device)).toContain('disp0');
    expect(r.hang?.timedOut).toEqual(['dec0#3']);
    // The display skipped that frame only, and finished.
    expect(r.devices.disp0).toMatchObject({ failedFrames: 1 });
    expect((r.devices.disp0 as DeviceResult).checksums).toHaveProperty([2], FRAME_FAILED);
  });

  it('signalBeforeWrite: a fast display shows pictures not yet decoded → content-mismatch', async () => {
    const slow = { decodeNs: 20_000_000, jitterNs: 0, fps: 25 };
    const clean = await run(playbackScenario(slow, { refreshHz: 1000 }));
    expectClean(clean);
    const r = await run(playbackScenario({ ...slow, bugs: { signalBeforeWrite: true } }, { refreshHz: 1000 }));
    expect(rules(r)).toEqual(['content-mismatch', 'dmabuf-hazard-war']);
    const mismatch = r.findings.find((f) => f.rule === 'content-mismatch');
    expect(mismatch?.objects).toMatchObject({ producer: 'dec0', consumer: 'disp0', frames: 6 });
  });
});

describe('display', () => {
  it('reports when it scanned each frame out: at vblanks, one per frame shown, never two in one refresh', async () => {
    const r = await run(playbackScenario({}, { refreshHz: 50 }));
    expectClean(r);
    const periodNs = 1e9 / 50;
    const at = result(r, 'disp0').scanoutNs as number[];
    expect(at).toHaveLength(6);
    for (const [i, t] of at.entries()) {
      expect(t % periodNs, `frame ${i} at a vblank`).toBe(0);
      if (i > 0) expect(t - (at[i - 1] as number)).toBeGreaterThanOrEqual(periodNs);
    }
  });
});

describe('tee', () => {
  const teeScenario = (knobs: Record<string, unknown> = {}): ScenarioInput => ({
    name: 'tee',
    devices: { tee0: { model: 'tee', knobs: { keys: 3, keyBytes: 256, ...knobs } } },
  });

  it('provisions its keys: distinct, fenced, everything released', async () => {
    const r = await run(teeScenario());
    expectClean(r);
    const t = result(r, 'tee0');
    expect(t.frames).toBe(3);
    expect(new Set(t.checksums).size).toBe(3);
  });

  it('skipFenceSignal: fence-never-signalled when the TEE finishes', async () => {
    const r = await run(teeScenario({ bugs: { skipFenceSignal: 1 } }));
    expect(rules(r)).toEqual(['fence-never-signalled']);
    expect(r.findings[0]?.objects).toMatchObject({ pending: 1 });
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('writeAfterUnmap: dma-access-unmapped, and the write does not land', async () => {
    const r = await run(teeScenario({ keys: 1, bugs: { writeAfterUnmap: true } }));
    expect(rules(r)).toEqual(['dma-access-unmapped']);
    expect(r.findings[0]?.device).toBe('tee0');
  });
});

describe('canonical scenarios of these models', () => {
  it.each([
    ['video-playback', 'dec0', 30],
    ['gpu-composition', 'gpu0', 30],
    ['gpu-memory-pressure', 'gpu0', 30],
    ['camera-decoder-gpu-display', 'gpu0', 10],
  ] as const)('%s runs clean on the sim host, the display showing what %s made', async (name, producer, frames) => {
    const s: Scenario = await loadScenario(name);
    const r = await runScenario(s, { seed: 3, host: 'sim' });
    expectClean(r);
    const made = result(r, producer);
    expect(made.frames).toBe(frames);
    expect(result(r, 'disp0').checksums).toEqual(made.checksums);
    if (name === 'gpu-memory-pressure') {
      expect(made.evictions).toBeGreaterThan(0);
      expect(made.remaps).toBe(made.moveNotifies);
    }
  });

  it('gpu-memory-pressure runs clean on the worker host: move_notify reaches the GPU thread before it writes', async () => {
    const s = await loadScenario('gpu-memory-pressure');
    const r = await runScenario(s, { seed: 3, host: 'worker', timeScale: 0 });
    expectClean(r);
    const gpu = result(r, 'gpu0');
    expect(gpu.moveNotifies).toBe(11);
    expect(gpu.remaps).toBe(11);
    expect(result(r, 'disp0').checksums).toEqual(gpu.checksums);
  });

  it('a scenario vram size must be whole pages', () => {
    expect(() => defineScenario({ ...pressureScenario(), kernel: { vramBytes: 1000 } })).toThrow(ScenarioError);
  });
});

describe('camera CPU rendering through the non-coherent cache', () => {
  const scenario = (writeWithoutSync: boolean) =>
    defineScenario({
      name: 'cpu-render',
      frames: 12,
      devices: {
        cam0: { model: 'camera', knobs: { cpuRender: true, bugs: { writeWithoutSync } } },
        disp0: { model: 'display' },
      },
      links: [{ from: 'cam0.out', to: 'disp0.in' }],
    });

  for (const host of ['sim', 'worker'] as const) {
    it(`with SYNC START/END the display shows exactly what the CPU wrote (${host})`, async () => {
      const r = await runScenario(scenario(false), { seed: 5, host, timeScale: 0 });
      expect(r.findings).toEqual([]);
      expect((r.devices.disp0 as unknown as { checksums: number[] }).checksums).toEqual(
        (r.devices.cam0 as unknown as { checksums: number[] }).checksums,
      );
      expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
    });

    it(`skipping SYNC END shows stale bytes once buffers are reused (${host})`, async () => {
      const r = await runScenario(scenario(true), { seed: 5, host, timeScale: 0 });
      const mismatch = r.findings.filter((f) => f.rule === 'content-mismatch');
      expect(mismatch).toHaveLength(1);
      // The camera also sends every frame with its CPU writes still inside the open START bracket.
      expect(r.findings.map((f) => f.rule).sort()).toEqual(['content-mismatch', 'cpu-sync-end-missing']);
      const shown = (r.devices.disp0 as unknown as { checksums: number[] }).checksums;
      const wrote = (r.devices.cam0 as unknown as { checksums: number[] }).checksums;
      expect(shown).toHaveLength(12);
      if (host === 'sim') {
        // Deterministic: the display's first map of each of the 4 buffers cleans the cache (after the
        // frame is complete, since on this schedule it maps after the write), so frames 4.. are stale.
        expect(mismatch[0]?.message).toContain('in frames 4, 5, 6, 7, 8, 9, 10, 11');
        expect(shown.slice(0, 4)).toEqual(wrote.slice(0, 4));
        expect(shown.slice(4).every((c, i) => c !== wrote[i + 4])).toBe(true);
      } else {
        // Real threads: which frames go stale depends on when the display's map cleaned the cache
        // relative to the camera's writes — as on hardware. Some must.
        expect(shown.some((c, i) => c !== wrote[i])).toBe(true);
      }
    });
  }

  it('a CPU map of device-local vram is refused (no CPU path): the camera fails its call, reported', async () => {
    const s = defineScenario({
      name: 'cpu-vram',
      frames: 2,
      kernel: { vramBytes: 4 << 20 },
      devices: {
        cam0: { model: 'camera', knobs: { heap: 'vram', width: 64, height: 64, cpuRender: true } },
        disp0: { model: 'display' },
      },
      links: [{ from: 'cam0.out', to: 'disp0.in' }],
      expect: { findings: ['device-call-failed'] },
    });
    const r = await runScenario(s, { seed: 1, host: 'sim' });
    expect(r.findings.map((f) => f.rule)).toEqual(['device-call-failed']);
    expect(r.findings[0]?.message).toMatch(/CPU-map buffer \d+ failed: -EINVAL/);
    expect(r.ok).toBe(true);
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

describe('pool and link sizes', () => {
  it('more devices than the race detector has clocks for is a scenario error naming the field', () => {
    const devices = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`tee${i}`, { model: 'tee' }]));
    expect(() => defineScenario({ name: 'crowd', devices: devices(17) })).toThrow(/devices: at most 16 devices/);
    expect(() => defineScenario({ name: 'crowd', devices: devices(16) })).not.toThrow();
  });

  it('a link longer than a producer pool minus two is refused: the producer could overwrite a queued frame', () => {
    const input = {
      name: 'overrun',
      devices: { cam0: { model: 'camera', knobs: { buffers: 4 } }, disp0: { model: 'display' } },
      links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 3 }],
    };
    expect(() => defineScenario(input)).toThrow(/links\.0\.capacity: 3 lets cam0 overwrite a frame still queued/);
    expect(() =>
      defineScenario({ ...input, links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }] }),
    ).not.toThrow();
  });
});
