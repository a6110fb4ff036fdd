/**
 * Device-farm figures for `npm run bench`, each against a baseline measured in the same run:
 * - the 1080p camera → decoder → GPU → display pipeline on the worker host, flat out (timeScale 0):
 *   frames/s and bytes/s, as a ratio to TypedArray.set copy bandwidth (target ≥ 0.5);
 * - the deterministic host: complete runs ("schedules") per second of a 5-device, 30-frame scenario
 *   (target ≥ 200/s), the unit an exploration sweep is made of. Two figures: the first runs of a fresh
 *   process (V8 is still compiling the models: a one-run warm-up is far from enough) and the steady
 *   state after them, which is what a sweep of thousands of runs per pool worker spends its time in;
 *   the target is held against the steady state;
 * - the frame checksum's bandwidth over arena (wasm) memory and over an ordinary buffer (the JS loop),
 *   each as a ratio to TypedArray.set;
 * - the race detector's cost on the same pipeline: time per frame and peak RSS with detection on ÷ off
 *   (targets ≤ 1.5× and ≤ 1.25×), runs alternated so drift hits both alike;
 * - exploration schedules/s with 1 and 2 piscina workers.
 *
 * Pipeline throughput is the steady state: frames/s between the display's 10th-percentile scan-out and
 * its last, so worker start-up (hundreds of ms of module loading per run) does not count as frame time.
 * Beside it, not held against the target, the same ratio over the second half of one 3000-frame run: in
 * the target's half-second window V8 is still compiling the device code in every worker.
 */
import { nv12Bytes } from '../devices/camera.js';
import { checksumBytes } from '../devices/checksum.js';
import { sharedWasmMemory } from '../kernel/memory.js';
import { explore } from '../workers/explore.js';
import { type Report, runScenario } from '../workers/run-scenario.js';
import { defineScenario, type Scenario } from '../workers/scenario.js';
import { loadScenario } from '../workers/scenario-loader.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Bytes per second of `TypedArray.prototype.set` between two 64 MiB buffers. */
export function copyBandwidth(): number {
  const size = 64 << 20;
  const a = new Uint8Array(size).fill(1);
  const b = new Uint8Array(size);
  const rates: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    b.set(a);
    rates.push(size / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

/** Bytes per second of the frame checksum over a 3 MiB frame in an arena (wasm) and in an ArrayBuffer (JS). */
export function checksumBandwidth(): { wasmBytesPerS: number; jsBytesPerS: number } {
  const size = 3 << 20;
  const inArena = new Uint8Array(sharedWasmMemory(size).buffer, 0, size);
  const plain = new Uint8Array(size);
  for (let i = 0; i < size; i++) plain[i] = (i * 0x9e3779b1) >>> 24;
  inArena.set(plain);
  const rate = (bytes: Uint8Array): number => {
    const rates: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      checksumBytes(bytes);
      rates.push(size / ((performance.now() - t0) / 1000));
    }
    return median(rates.slice(5));
  };
  return { wasmBytesPerS: rate(inArena), jsBytesPerS: rate(plain) };
}

/** The canonical full pipeline: camera → decoder → GPU → display at 1080p NV12. */
async function pipeline(): Promise<{ s: Scenario; frameBytes: number; name: string }> {
  const s = await loadScenario('camera-decoder-gpu-display');
  return { s, frameBytes: nv12Bytes(1920, 1080), name: s.name };
}

export interface FarmFigures {
  copyBytesPerS: number;
  checksum: { wasmBytesPerS: number; jsBytesPerS: number };
  pipeline: {
    scenario: string;
    framesPerS: number;
    bytesPerS: number;
    ratio: number;
    target: number;
    /** CPU of the whole process (every thread) per frame, over the same steady-state window. */
    cpuMsPerFrame: number;
    /**
     * Not the target's figure: one longer run measured over its second half, once V8's optimising compiler
     * has caught up. In the target's window (frames 31-300, about half a second) the compiler threads
     * still use about a third of the process's CPU; this shows what the pipeline costs without them.
     */
    settled: { frames: number; fromFrame: number; ratio: number; cpuMsPerFrame: number };
  };
  sim: {
    scenario: string;
    devices: number;
    frames: number;
    /** Runs 1..coldRuns of the process (after one warm-up run): JIT still compiling. */
    coldSchedulesPerS: number;
    coldRuns: number;
    /** The runs after those: steady state, held against the target. */
    schedulesPerS: number;
    runs: number;
    target: number;
  };
  detector: { timeRatio: number; memoryRatio: number; timeTarget: number; memoryTarget: number };
  explore: { scenario: string; workers1PerS: number; workers2PerS: number };
}

/** One worker-host run flat out: steady-state frames/s (from scan-out times) and peak RSS. */
async function pipelineRun(
  s: Scenario,
  seed: number,
  frames: number,
  detect: boolean,
  /** Where the measured window starts, as a fraction of the frames (the target's figure: 0.1). */
  fromFraction = 0.1,
): Promise<{ framesPerS: number; cpuMsPerFrame: number; rssPeakBytes: number; report: Report }> {
  const scanouts: number[] = [];
  let cpuFrom: NodeJS.CpuUsage | null = null;
  let cpuTo: NodeJS.CpuUsage | null = null;
  let cpuFromIndex = 0;
  let rssPeakBytes = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    rssPeakBytes = Math.max(rssPeakBytes, process.memoryUsage().rss);
  }, 5);
  try {
    const report = await runScenario(s, {
      seed,
      host: 'worker',
      timeScale: 0,
      frames,
      detect,
      log: (_device, message) => {
        if (message !== 'scanout') return;
        scanouts.push(performance.now());
        // process.cpuUsage counts every thread: the same window as the frame times, start-up excluded.
        if (scanouts.length === Math.floor(frames * fromFraction) + 1) {
          cpuFrom = process.cpuUsage();
          cpuFromIndex = scanouts.length - 1;
        }
        cpuTo = process.cpuUsage();
      },
    });
    const from = Math.floor(scanouts.length * fromFraction);
    const spanMs = (scanouts.at(-1) ?? 0) - (scanouts[from] ?? 0);
    const framesPerS = spanMs > 0 ? (scanouts.length - 1 - from) / (spanMs / 1000) : Number.NaN;
    const cpuFrames = scanouts.length - 1 - cpuFromIndex;
    const cpu = cpuFrom !== null && cpuTo !== null ? process.cpuUsage(cpuFrom) : null;
    const cpuMsPerFrame = cpu !== null && cpuFrames > 0 ? (cpu.user + cpu.system) / 1000 / cpuFrames : Number.NaN;
    rssPeakBytes = Math.max(rssPeakBytes, process.memoryUsage().rss);
    return { framesPerS, cpuMsPerFrame, rssPeakBytes, report };
  } finally {
    clearInterval(sampler);
  }
}

/** A 5-device, 30-frame scenario with small frames: what exploration runs thousands of times. */
function simScenario(): Scenario {
  const small = { width: 64, height: 64, buffers: 4 };
  return defineScenario({
    name: 'bench-sim-5',
    frames: 30,
    // Sized to what 64×64 frames need: a sweep boots one kernel per run.
    kernel: { systemBytes: 4 << 20, cmaBytes: 0, carveoutBytes: 0, fences: 256, resvs: 64 },
    devices: {
      cam0: { model: 'camera', knobs: small },
      cam1: { model: 'camera', knobs: small },
      cam2: { model: 'camera', knobs: small },
      gpu0: { model: 'gpu', knobs: { inputs: 3, width: 64, height: 64 } },
      disp0: { model: 'display' },
    },
    links: [
      { from: 'cam0.out', to: 'gpu0.in0' },
      { from: 'cam1.out', to: 'gpu0.in1' },
      { from: 'cam2.out', to: 'gpu0.in2' },
      { from: 'gpu0.out', to: 'disp0.in' },
    ],
  });
}

export async function farmBench(quick: boolean): Promise<FarmFigures> {
  const copyBytesPerS = copyBandwidth();
  const checksum = checksumBandwidth();
  const frames = quick ? 60 : 300;
  const { s, frameBytes, name } = await pipeline();
  const on: { framesPerS: number; cpuMsPerFrame: number; rssPeakBytes: number }[] = [];
  const off: { framesPerS: number; cpuMsPerFrame: number; rssPeakBytes: number }[] = [];
  // Alternate detector on and off so that machine drift lands on both alike.
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    for (const detect of [true, false]) {
      const r = await pipelineRun(s, i + 1, frames, detect);
      if (!r.report.ok) {
        throw new Error(`bench pipeline ${name} did not run clean: ${r.report.findings.map((f) => f.rule).join(', ')}`);
      }
      (detect ? on : off).push(r);
    }
  }
  const settledFrames = quick ? 600 : 3000;
  const settledRun = await pipelineRun(s, 7, settledFrames, true, 0.5);
  if (!settledRun.report.ok) throw new Error(`bench pipeline ${name} (settled run) did not run clean`);
  const settled = {
    frames: settledFrames,
    fromFrame: settledFrames / 2 + 1,
    ratio: (settledRun.framesPerS * frameBytes) / copyBytesPerS,
    cpuMsPerFrame: settledRun.cpuMsPerFrame,
  };
  const framesPerS = median(on.map((r) => r.framesPerS));
  const cpuMsPerFrame = median(on.map((r) => r.cpuMsPerFrame));
  const bytesPerS = framesPerS * frameBytes;
  const detector = {
    timeRatio: median(off.map((r) => r.framesPerS)) / framesPerS,
    memoryRatio: median(on.map((r) => r.rssPeakBytes)) / median(off.map((r) => r.rssPeakBytes)),
    timeTarget: 1.5,
    memoryTarget: 1.25,
  };

  const sim = simScenario();
  const coldRuns = quick ? 10 : 60;
  const runs = quick ? 20 : 120;
  const simRate = async (firstSeed: number, n: number): Promise<number> => {
    const t0 = performance.now();
    for (let seed = firstSeed; seed < firstSeed + n; seed++) {
      const r = await runScenario(sim, { seed, host: 'sim' });
      if (!r.ok) throw new Error(`bench sim scenario did not run clean (seed ${seed})`);
    }
    return n / ((performance.now() - t0) / 1000);
  };
  await simRate(0, 1);
  const coldSchedulesPerS = await simRate(1, coldRuns);
  const schedulesPerS = await simRate(1 + coldRuns, runs);

  const exploreScenario = 'gpu-composition';
  const sweep = async (workers: number): Promise<number> =>
    (await explore({ scenario: exploreScenario, runs: quick ? 20 : 120, workers, frames: 30 })).schedulesPerS;
  const workers1PerS = await sweep(1);
  const workers2PerS = await sweep(2);
  return {
    copyBytesPerS,
    checksum,
    pipeline: {
      scenario: name,
      framesPerS,
      bytesPerS,
      ratio: bytesPerS / copyBytesPerS,
      target: 0.5,
      cpuMsPerFrame,
      settled,
    },
    sim: {
      scenario: sim.name,
      devices: Object.keys(sim.devices).length,
      frames: 30,
      coldSchedulesPerS,
      coldRuns,
      schedulesPerS,
      runs,
      target: 200,
    },
    detector,
    explore: { scenario: exploreScenario, workers1PerS, workers2PerS },
  };
}
