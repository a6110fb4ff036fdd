/**
 * A device that crashes or hangs must not take the run down with it: the failure is reported (which
 * device, and for a hang what each stuck device was doing), the consumers of a crashed device wake because
 * its pending fences complete with -ETIME, every page and buffer it held is reclaimed, and the run ends —
 * on the worker host within the watchdog, on the sim host at once.
 */
import { describe, expect, it } from 'vitest';
import type { Finding, HostKind, Report } from '../../src/workers/run-scenario.js';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario, type Scenario } from '../../src/workers/scenario.js';
import { crashSink, SINK_CRASH_MESSAGE } from '../fixtures/farm/crash-sink.js';
import { CRASH_MESSAGE, crasher } from '../fixtures/farm/crasher.js';
import { READ_CRASH_MESSAGE, readCrasher } from '../fixtures/farm/read-crasher.js';
import { crashScenario, deviceResult, ETIME, hangScenario, neverReleaseScenario } from '../fixtures/farm/scenarios.js';
import { sink } from '../fixtures/farm/sink.js';

/**
 * The watchdog also runs while workers start (under vitest each loads the sources through tsx, over a
 * second on a loaded 2-core machine), and a start-up longer than the watchdog is reported as a hang 'in
 * start'. 2.5 s keeps these tests clear of that and still quick.
 */
const WATCHDOG_MS = 2500;

const rules = (r: Report): string[] => r.findings.map((f) => f.rule);
const findingsOf = (r: Report, rule: string): Finding[] => r.findings.filter((f) => f.rule === rule);

describe.each(['sim', 'worker'] as const)('a device that crashes, on the %s host', (host: HostKind) => {
  it('is reported, its consumer wakes with -ETIME instead of hanging, and its resources are reclaimed', async () => {
    const crashAfter = 3;
    const r = await runScenario(crashScenario(crashAfter), {
      seed: 21,
      host,
      timeScale: 0,
      // If the consumer were left waiting, the watchdog would end the run and report a hang.
      watchdogMs: 2 * WATCHDOG_MS,
    });

    const crashed = findingsOf(r, 'device-crashed');
    expect(crashed).toHaveLength(1);
    expect(crashed[0]?.device).toBe('src');
    expect(crashed[0]?.message).toContain('src');
    expect(crashed[0]?.message).toContain(CRASH_MESSAGE);
    expect(r.devices.src).toEqual({ error: expect.stringContaining(CRASH_MESSAGE) });
    expect(r.ok).toBe(false);
    expect(r.unexpected).toContain('device-crashed');

    // The consumer was not left hanging on the dead producer's last fence.
    expect(rules(r)).not.toContain('hang');
    expect(r.hang).toBeNull();
    const snk = deviceResult(r, 'snk');
    expect(snk.frames).toBe(crashAfter + 1);
    // Good frames completed normally; the frame the producer never finished completed with -ETIME.
    expect(snk.statuses).toEqual([1, 1, 1, -ETIME]);
    expect(snk.waits).toEqual([1, 1, 1, 1]);
    expect((snk.resvWaits as number[]).every((w) => w > 0)).toBe(true);

    // The crasher's buffers (allocated, attached, mapped, never released) are gone; nothing else leaked.
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

/** camera → crash-sink: the sink crashes on its second frame; the camera's link then has no reader. */
function consumerCrashScenario(): Scenario {
  return defineScenario({
    name: 'consumer-crash',
    frames: 8,
    devices: {
      cam0: { model: 'camera', knobs: { width: 64, height: 48, buffers: 4 } },
      snk: { model: 'crash-sink', knobs: { crashAfter: 1 } },
    },
    links: [{ from: 'cam0.out', to: 'snk.in', capacity: 2 }],
    models: { 'crash-sink': crashSink },
  });
}

/** crasher → sink where frame 1 names a buffer that does not exist: the sink's recv of it fails. */
function corruptFrameScenario(): Scenario {
  return defineScenario({
    name: 'corrupt-frame',
    frames: 4,
    devices: {
      src: { model: 'crasher', knobs: { crashAfter: 3, buffers: 6, bogusBufferAt: 1 } },
      snk: { model: 'sink' },
    },
    links: [{ from: 'src.out', to: 'snk.in', capacity: 4 }],
    models: { crasher, sink },
  });
}

describe.each(['sim', 'worker'] as const)('a consumer that crashes, on the %s host', (host: HostKind) => {
  it('does not leave its producer blocked: what it sends from then on is dropped, and no fence reference leaks', async () => {
    const r = await runScenario(consumerCrashScenario(), { seed: 5, host, timeScale: 0, watchdogMs: WATCHDOG_MS });
    const crashed = findingsOf(r, 'device-crashed');
    expect(crashed.map((f) => f.device)).toEqual(['snk']);
    expect(crashed[0]?.message).toContain(SINK_CRASH_MESSAGE);
    // The link's reader is gone, so the camera's sends go nowhere (as writes to a pipe nobody reads) instead
    // of waiting for room forever: it produces all its frames and finishes, with no hang and no watchdog.
    expect(r.hang).toBeNull();
    expect(rules(r)).toEqual(['device-crashed']);
    expect(deviceResult(r, 'cam0').frames).toBe(8);
    // References: the frame the sink held when it crashed (its ledger), the frames queued on the link
    // (drained at the end), and each dropped frame's (put by the sender).
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('whose recv fails after it took the frame (a corrupt descriptor) leaks no fence reference', async () => {
    const r = await runScenario(corruptFrameScenario(), { seed: 6, host, timeScale: 0, watchdogMs: WATCHDOG_MS });
    const failed = findingsOf(r, 'device-call-failed');
    expect(failed.map((f) => f.device)).toEqual(['snk']);
    expect(failed[0]?.message).toContain('ENOENT');
    expect(findingsOf(r, 'device-crashed').map((f) => f.device)).toEqual(['src']);
    expect(r.hang).toBeNull();
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

/** camera → read-crasher: the consumer reads a frame under a release fence, then throws. */
function readCrashScenario(): Scenario {
  return defineScenario({
    name: 'read-crash',
    frames: 8,
    devices: {
      cam0: { model: 'camera', knobs: { width: 64, height: 48, buffers: 4 } },
      rd: { model: 'read-crasher' },
    },
    links: [{ from: 'cam0.out', to: 'rd.in', capacity: 2 }],
    models: { 'read-crasher': readCrasher },
  });
}

describe.each(['sim', 'worker'] as const)('a consumer that crashes after reading, on the %s host', (host) => {
  it('is ordered before the producer reuses its buffer: its failed release fence carries its accesses', async () => {
    const r = await runScenario(readCrashScenario(), { seed: 2, host, timeScale: 0, watchdogMs: WATCHDOG_MS });
    // The camera comes back to the buffer the crashed device read once the host has failed its release
    // fence; without the crashed device's clock on that fence, the camera's write would be a WAR race.
    expect(rules(r)).toEqual(['device-crashed']);
    expect(findingsOf(r, 'device-crashed')[0]?.message).toContain(READ_CRASH_MESSAGE);
    expect(deviceResult(r, 'cam0').frames).toBe(8);
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

describe('a device that hangs, on the worker host', () => {
  it('waiting on its own fence is a proven deadlock: broken at once, not after the watchdog', async () => {
    // A watchdog of 10 minutes: only the proven-deadlock path can end this run inside the test's timeout.
    const r = await runScenario(hangScenario(), { seed: 3, host: 'worker', timeScale: 0, watchdogMs: 600_000 });
    expect(r.hang?.proven).toBe(true);
    expect(r.hang?.waiting).toEqual([{ device: 'stuck', op: 'wait' }]);
    const hang = findingsOf(r, 'hang');
    expect(hang).toHaveLength(1);
    expect(hang[0]?.objects).toEqual({ stuck: 'wait' });
    expect(hang[0]?.message).toContain('deadlocked (proven by the wait-for walk');
    // The job it waited on failed with -ETIME; the device woke, saw it and finished.
    expect(r.hang?.timedOut).toEqual(['stuck#1']);
    expect(r.devices.stuck).toEqual({ frames: 0, status: -ETIME });
    expect(r.ok).toBe(false);
    // Waiting on its own unsignalled fence is a deadlock the wait-for walk sees as the wait begins.
    expect(r.unexpected).toEqual(['fence-wait-cycle', 'hang']);
    expect(findingsOf(r, 'fence-wait-cycle')[0]?.message).toContain('stuck waits for stuck#1');
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('names what every stuck device of a pipeline was doing; hung again by the same device, ends the run', async () => {
    // The display never releases: the camera blocks on the buffer's READ fences, the display on its input.
    // A cycle through a link is not proven (the link's peer might still move): the watchdog waits it out.
    const t0 = performance.now();
    const r = await runScenario(neverReleaseScenario(), {
      seed: 8,
      host: 'worker',
      timeScale: 0,
      watchdogMs: WATCHDOG_MS,
    });
    expect(r.hang).not.toBeNull();
    expect(r.hang?.proven).toBeUndefined();
    // Two hangs, each declared only after a whole watchdog period without progress.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * WATCHDOG_MS);
    const ops = Object.fromEntries((r.hang?.waiting ?? []).map((w) => [w.device, w.op]));
    expect(ops).toEqual({ cam0: 'resv-wait', disp0: 'recv' });
    expect(findingsOf(r, 'hang')[0]?.objects).toEqual({ cam0: 'resv-wait', disp0: 'recv' });
    // The first hang times out the display's first release fence; the display hangs the camera again on
    // the next one, and a device guilty twice ends the run: both workers are stopped.
    expect(r.hang?.timedOut).toEqual(['disp0#1']);
    expect(findingsOf(r, 'hang')[0]?.count).toBe(2);
    expect(r.devices.cam0).toEqual({ error: expect.any(String) });
    expect(r.devices.disp0).toEqual({ error: expect.any(String) });
    // The camera was killed inside a resv wait, holding references on the display's release fences.
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});

describe('a device that hangs, on the sim host', () => {
  it('is reported as a hang at once, with the wait-for list, and its fence is timed out with -ETIME', async () => {
    const t0 = performance.now();
    const r = await runScenario(hangScenario(), { seed: 3, host: 'sim', watchdogMs: 600_000 });
    expect(performance.now() - t0).toBeLessThan(5000); // nowhere near the watchdog
    expect(r.hang).not.toBeNull();
    expect(r.hang?.timeNs).toBe(0); // no virtual time had to pass: nothing was runnable, nothing asleep
    expect(r.hang?.waiting).toHaveLength(1);
    expect(r.hang?.waiting[0]?.device).toBe('stuck');
    expect(r.hang?.waiting[0]?.op).toMatch(/^wait fence \d+:1$/); // its own first fence
    expect(findingsOf(r, 'hang')).toHaveLength(1);
    expect(r.hang?.timedOut).toEqual(['stuck#1']);
    expect(r.devices.stuck).toEqual({ frames: 0, status: -ETIME });
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('lists each stuck device of a pipeline with what it waits for, and leaks nothing', async () => {
    const r = await runScenario(neverReleaseScenario(), { seed: 8, host: 'sim' });
    const waiting = r.hang?.waiting ?? [];
    expect(waiting.map((w) => w.device).sort()).toEqual(['cam0', 'disp0']);
    const ops = Object.fromEntries(waiting.map((w) => [w.device, w.op]));
    // The camera waits for the display's first release fence (to reuse its first buffer); the display
    // waits for a frame the camera will never send.
    expect(ops.cam0).toMatch(/^wait fence \d+:1$/);
    expect(ops.disp0).toBe('recv (link empty)');
    expect(findingsOf(r, 'hang')).toHaveLength(1);
    expect(r.hang?.timedOut).toEqual(['disp0#1']);
    // Timed out once, the display hangs the camera again on its next release: the second hang ends the run.
    expect(findingsOf(r, 'hang')[0]?.count).toBe(2);
    expect(r.devices.disp0).toEqual({ error: expect.stringContaining('hung in recv') });
    expect(r.unexpected).toEqual(['hang']);
    // A hang is not a leak: every reference the stuck devices held is dropped at teardown.
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('replays the same hang for the same seed', async () => {
    const a = await runScenario(neverReleaseScenario(), { seed: 99, host: 'sim' });
    const b = await runScenario(neverReleaseScenario(), { seed: 99, host: 'sim' });
    expect(b.hang).toEqual(a.hang);
    expect(b.eventHash).toBe(a.eventHash);
    expect(b.findings).toEqual(a.findings);
  });
});
