/**
 * The watchdog's recovery from a hang, as a GPU reset: the job at the head of the wait-for chain completes
 * with -ETIME, and the error travels down the pipeline instead of the run ending — each device that waited
 * on a failed fence fails its own job with the same error and does not touch the bytes, the display does
 * not show the frame, and every other frame still arrives intact. Same outcome on both hosts.
 */
import { describe, expect, it } from 'vitest';
import { FRAME_FAILED } from '../../src/devices/device.js';
import type { HostKind, Report } from '../../src/workers/run-scenario.js';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario, type Scenario } from '../../src/workers/scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';
import { deviceResult } from '../fixtures/farm/scenarios.js';

/** Comfortably above worker start-up on a loaded machine (see failures.test.ts). */
const WATCHDOG_MS = 2500;
const FRAMES = 8;
/** The camera never signals this frame's fence (its seqno is one more: seqnos start at 1). */
const LOST = 2;

function pipeline(middle: 'gpu' | 'video-decoder'): Scenario {
  const knobs =
    middle === 'gpu'
      ? { width: 64, height: 48, buffers: 4, inputs: 1 }
      : { width: 64, height: 48, buffers: 4, input: true };
  return defineScenario({
    name: `lost-completion-through-${middle}`,
    frames: FRAMES,
    devices: {
      cam0: { model: 'camera', knobs: { width: 64, height: 48, buffers: 4, bugs: { skipFenceSignal: LOST } } },
      mid: { model: middle, knobs },
      disp0: { model: 'display' },
    },
    links: [
      { from: 'cam0.out', to: middle === 'gpu' ? 'mid.in0' : 'mid.in', capacity: 2 },
      { from: 'mid.out', to: 'disp0.in', capacity: 2 },
    ],
  });
}

const rules = (r: Report): string[] => r.findings.map((f) => f.rule).sort();

describe.each(['sim', 'worker'] as const)('a lost completion, on the %s host', (host: HostKind) => {
  it.each(['gpu', 'video-decoder'] as const)(
    'is timed out with -ETIME and the error passes through the %s to the display',
    async (middle) => {
      const r = await runScenario(pipeline(middle), { seed: 4, host, timeScale: 0, watchdogMs: WATCHDOG_MS });
      // Behind the GPU, the camera comes back to the lost frame's buffer before the watchdog fires and waits
      // on its own unsignalled write fence: a self-wait the wait-for walk names as it begins. Behind the
      // decoder, the link fills first, and the hang is all there is.
      expect(rules(r)).toEqual(middle === 'gpu' ? ['fence-wait-cycle', 'hang'] : ['hang']);
      expect(r.hang?.timedOut).toEqual([`cam0#${LOST + 1}`]);
      expect(r.findings.find((f) => f.rule === 'hang')?.message).toContain('with -ETIME');

      const mid = deviceResult(r, 'mid');
      const disp = deviceResult(r, 'disp0');
      const cam = deviceResult(r, 'cam0');
      const received = mid[middle === 'gpu' ? 'received:in0' : 'received:in'] as number[];
      // The middle device did not read the lost frame, failed its own job for it, and went on.
      expect(received[LOST]).toBe(FRAME_FAILED);
      expect((mid.checksums as number[])[LOST]).toBe(FRAME_FAILED);
      expect(mid[middle === 'gpu' ? 'failedJobs' : 'failedFrames']).toBe(1);
      // The display did not show it; every other frame arrived as its producer wrote it.
      expect(disp.failedFrames).toBe(1);
      const shown = disp.checksums as number[];
      expect(shown).toHaveLength(FRAMES);
      expect(shown[LOST]).toBe(FRAME_FAILED);
      const good = (xs: number[]) => xs.filter((_, i) => i !== LOST);
      expect(good(shown)).toEqual(good(mid.checksums as number[]));
      expect(good(received)).toEqual(good(cam.checksums as number[]));
      // The watchdog's reference for the camera is dropped at the end; nothing leaks.
      expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
    },
  );
});

/** gpu0 and disp0 each wait on the other's fence first; disp0's wait has a timeout and fails its job on it. */
function timedCycle(): Scenario {
  const side = (me: string, other: string, timeoutNs?: number) => [
    { op: 'allocate', buf: me },
    { op: 'fence', fence: 'mine' },
    { op: 'send', port: 'out', buf: me, fence: 'mine' },
    { op: 'recv', port: 'in', buf: other, fence: 'theirs' },
    { op: 'wait', fence: 'theirs', orElse: 'stop', ...(timeoutNs === undefined ? {} : { timeoutNs }) },
    { op: 'signal', fence: 'mine' },
  ];
  return defineScenario({
    name: 'timed-cycle',
    frames: 1,
    devices: {
      gpu0: { model: 'script', knobs: { inputs: ['in'], outputs: ['out'], steps: side('a', 'b') } },
      disp0: { model: 'script', knobs: { inputs: ['in'], outputs: ['out'], steps: side('b', 'a', 300_000_000) } },
    },
    links: [
      { from: 'gpu0.out', to: 'disp0.in', capacity: 1 },
      { from: 'disp0.out', to: 'gpu0.in', capacity: 1 },
    ],
  });
}

describe.each(['sim', 'worker'] as const)('a cycle with a timed wait, on the %s host', (host: HostKind) => {
  it('is reported as it forms but is no deadlock: its timeout ends it, nothing is timed out by the watchdog', async () => {
    // A 10-minute watchdog: the run ends by disp0's own 300 ms timeout or not at all.
    const r = await runScenario(timedCycle(), { seed: 1, host, watchdogMs: 600_000 });
    // Reported by the device whose wait closed the cycle — on the worker host possibly by both, when both
    // block at the same moment (each sees the other's wait): one rule either way.
    expect([...new Set(rules(r))]).toEqual(['fence-wait-cycle']);
    expect(r.hang).toBeNull();
    // disp0 timed out and failed its fence with -ETIME; gpu0 saw that error and stopped too.
    expect(r.devices.disp0).toMatchObject({ stopped: -62 });
    expect(r.devices.gpu0).toMatchObject({ stopped: -62 });
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

describe('in a cycle of fence waits', () => {
  it('only the fence waited on the longest times out, and the cycle unwinds from it', async () => {
    const s = await loadScenario('scenarios/misuse/script-fence-wait-cycle.ts');
    for (const seed of [1, 2, 3]) {
      const r = await runScenario(s, { seed, host: 'sim' });
      expect(r.hang?.cycle).toBe(true);
      expect(r.hang?.timedOut).toHaveLength(1);
      // One hang: the other device woke on the failed fence and signalled its own.
      expect(r.findings.find((f) => f.rule === 'hang')?.count).toBeUndefined();
      expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
    }
  });

  it('on the worker host, is broken as soon as it is proven, not after the watchdog', async () => {
    const s = await loadScenario('scenarios/misuse/script-fence-wait-cycle.ts');
    // A watchdog of 10 minutes: only the proven-deadlock path ends this run inside the test's timeout.
    const r = await runScenario(s, { seed: 1, host: 'worker', watchdogMs: 600_000 });
    expect(r.hang?.proven).toBe(true);
    expect(r.hang?.cycle).toBe(true);
    expect(r.hang?.timedOut).toHaveLength(1);
    expect(r.missing).toEqual([]);
    expect(r.unexpected).toEqual([]);
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});
