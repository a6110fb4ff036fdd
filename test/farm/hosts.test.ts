/**
 * The farm on both hosts: every built-in scenario runs clean and the display proves the right bytes
 * arrived; the sim host is deterministic per seed and the seed really drives the interleaving; the worker
 * host puts each device in a thread of its own and moves frames without copying a byte through messages.
 */
import { threadId as mainThreadId } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { nv12Bytes } from '../../src/devices/camera.js';
import { checksumBytes } from '../../src/devices/checksum.js';
import { DMA_DIR_BIDIRECTIONAL, defineDevice } from '../../src/devices/device.js';
import { PAGE_SIZE } from '../../src/kernel/uapi.js';
import { type Report, runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';
import { builtinScenarioNames, loadScenario } from '../../src/workers/scenario-loader.js';
import { deviceResult, expectCleanRun, probeScenario } from '../fixtures/farm/scenarios.js';
import { installWireMeter } from '../fixtures/farm/wire-size.js';

const names = await builtinScenarioNames();

/**
 * What a display must show for frame `seq` of a camera at width×height: the camera's documented image
 * (luma byte (7·seq + 16) mod 256, chroma (13·seq + 128) mod 256) in a page-aligned buffer whose tail past
 * the NV12 image is zero (fresh heap pages are zeroed), built here byte by byte and hashed with the farm's
 * checksum function — so the bytes, not just the two devices' agreement, are checked.
 */
function expectedFrameChecksum(width: number, height: number, seq: number): number {
  const size = nv12Bytes(width, height);
  const luma = width * height;
  const frame = new Uint8Array(Math.ceil(size / PAGE_SIZE) * PAGE_SIZE);
  frame.fill((seq * 7 + 16) & 0xff, 0, luma);
  frame.fill((seq * 13 + 128) & 0xff, luma, size);
  return checksumBytes(frame);
}

describe('built-in scenarios', () => {
  it('are found by the loader (camera-preview among them)', () => {
    expect(names).toContain('camera-preview');
  });

  describe.each(names)('%s', (name) => {
    it.each(['sim', 'worker'] as const)(
      'runs clean on the %s host, every link delivering what was sent',
      async (host) => {
        const s = await loadScenario(name);
        const r = await runScenario(s, { seed: 11, host, timeScale: 0 });
        expect(r.host).toBe(host);
        expect(r.scenario).toBe(s.name);
        const checkedLinks = expectCleanRun(s, r);
        if (name === 'camera-preview') {
          expect(checkedLinks).toBe(1);
          const cam = deviceResult(r, 'cam0');
          const disp = deviceResult(r, 'disp0');
          expect(disp.checksums).toEqual(cam.checksums);
          expect(disp.checksums).toHaveLength(30);
          expect(disp.frames).toBe(30);
          // The bytes themselves, independently of the farm's own bookkeeping: 30 different frames, in order.
          const want = Array.from({ length: 30 }, (_, seq) => expectedFrameChecksum(640, 480, seq));
          expect(new Set(want).size).toBe(30);
          expect(disp.checksums).toEqual(want);
        }
      },
    );

    it('gives the same report for the same seed on the sim host', async () => {
      const s = await loadScenario(name);
      const a = await runScenario(s, { seed: 424242, host: 'sim' });
      const b = await runScenario(await loadScenario(name), { seed: 424242, host: 'sim' });
      expect(a.eventCount).toBeGreaterThan(0);
      expect(b.eventHash).toBe(a.eventHash);
      expect(b.eventCount).toBe(a.eventCount);
      expect(b).toEqual(a); // virtual time, scheduler steps, every device figure
    });
  });
});

describe('the sim host is driven by its seed', () => {
  it('replays an identical event log for a seed and a different interleaving for other seeds', async () => {
    const s = await loadScenario('camera-preview');
    const seeds = [1, 2, 3, 4, 5, 1_000_003, 0xfffffffe];
    const reports: Report[] = [];
    for (const seed of seeds) reports.push(await runScenario(s, { seed, host: 'sim' }));
    for (const r of reports) expectCleanRun(s, r); // every interleaving is a correct one
    const again = await runScenario(s, { seed: 3, host: 'sim' });
    expect(again.eventHash).toBe(reports[2]?.eventHash);
    expect(again.eventCount).toBe(reports[2]?.eventCount);
    const hashes = new Set(reports.map((r) => r.eventHash));
    expect(hashes.size).toBeGreaterThanOrEqual(seeds.length - 1);
    // The frames are the same whatever the schedule: only the order of events differs.
    const shown = reports.map((r) => JSON.stringify(deviceResult(r, 'disp0').checksums));
    expect(new Set(shown).size).toBe(1);
  });
});

describe('the sim host schedules at synchronisation points, not at memory accesses', () => {
  /** Who touched memory last: shared by every device, which all run on this one thread on the sim host. */
  let lastWriter = '';
  let interleaved = 0;
  const writer = defineDevice<Record<string, never>>({
    name: 'burst-writer',
    parseKnobs: () => ({}),
    inputs: () => [],
    outputs: () => [],
    async run(ctx) {
      const buf = await ctx.allocate('system', 4096);
      const att = await ctx.attach(buf);
      const map = await ctx.map(att, DMA_DIR_BIDIRECTIONAL);
      for (let burst = 0; burst < 10; burst++) {
        await ctx.busy(1000);
        lastWriter = ctx.name;
        // A burst of accesses with no point between them: nobody else may run until the next busy.
        for (let i = 0; i < 4; i++) {
          await ctx.fill(map, i * 64, 64, burst);
          await ctx.checksum(map, 0, 256);
          await ctx.read(map, i * 64, 16);
          if (lastWriter !== ctx.name) interleaved++;
        }
      }
      await ctx.unmap(map);
      await ctx.detach(att);
      await ctx.release(buf);
      return { frames: 10 };
    },
  });

  it('runs a burst of reads and writes as one step on every seed', async () => {
    const s = defineScenario({
      name: 'access-bursts',
      devices: { a: { model: 'burst-writer' }, b: { model: 'burst-writer' }, c: { model: 'burst-writer' } },
      models: { 'burst-writer': writer },
    });
    const hashes = new Set<string>();
    for (let seed = 1; seed <= 8; seed++) {
      const r = await runScenario(s, { seed, host: 'sim' });
      expect(r.ok).toBe(true);
      hashes.add(r.eventHash);
    }
    expect(hashes.size).toBeGreaterThan(1); // the seeds did interleave the devices, between bursts
    expect(interleaved).toBe(0);
  });
});

describe('the worker host', () => {
  it('runs each device in a thread of its own, and the device code really runs there', async () => {
    const s = probeScenario(3);
    const r = await runScenario(s, { seed: 5, host: 'worker', timeScale: 0 });
    expect(r.ok).toBe(true);
    const threads = r.threads ?? {};
    expect(Object.keys(threads).sort()).toEqual(['probe0', 'probe1', 'probe2']);
    const ids = Object.values(threads);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) {
      expect(id).not.toBe(0);
      expect(id).not.toBe(mainThreadId);
    }
    // From inside: each probe saw the thread id the host reports for it.
    for (const [name, id] of Object.entries(threads)) expect(deviceResult(r, name).threadId).toBe(id);

    // The sim host, for contrast: every device on this one thread, and no thread report.
    const sim = await runScenario(s, { seed: 5, host: 'sim' });
    for (const name of Object.keys(s.devices)) expect(deviceResult(sim, name).threadId).toBe(mainThreadId);
    expect(sim.threads).toBeUndefined();
  });

  /*
   * No buffer byte crosses a message. Covered: every message the main (kernel) thread posts on any
   * MessagePort or Worker — including the internal message that carries workerData to a new worker — and
   * every message it receives on a port it listens to or as a Worker 'message' event (a device's comlink
   * control-plane calls, its result). Not covered: messages between two workers directly (the farm creates
   * no such channel: links are SharedArrayBuffer rings), and worker stdout/stderr streams.
   * The frames are 640×480 NV12 (460,800 bytes each, 30 of them); the display's checksums show every one
   * of them arrived, so the bytes went through shared memory.
   */
  it('moves 30 frames of 460 KB with no message anywhere near a frame in size', async () => {
    const s = await loadScenario('camera-preview');
    const frameBytes = nv12Bytes(640, 480);
    expect(frameBytes).toBe(460_800);
    const meter = installWireMeter();
    let r: Report;
    try {
      r = await runScenario(s, { seed: 77, host: 'worker' }); // real time: 30 fps
    } finally {
      meter.restore();
    }
    expectCleanRun(s, r);
    const threads = r.threads ?? {};
    expect(Object.keys(threads).sort()).toEqual(['cam0', 'disp0']);
    expect(new Set(Object.values(threads)).size).toBe(2);
    for (const id of Object.values(threads)) expect(id).not.toBe(mainThreadId);
    expect(deviceResult(r, 'disp0').checksums).toHaveLength(30);

    expect(meter.errors).toEqual([]);
    const by = (c: string) => meter.records.filter((m) => m.channel === c);
    // The meter saw both directions: replies and worker start-up going out, control-plane calls and results in.
    expect(by('port-out').length).toBeGreaterThanOrEqual(10);
    expect(by('port-in').length).toBeGreaterThanOrEqual(10);
    expect(by('worker-in').length).toBe(2); // each device's last word
    const largest = Math.max(...meter.records.map((m) => m.bytes));
    const total = meter.records.reduce((n, m) => n + m.bytes, 0);
    expect(largest).toBeLessThan(16 * 1024);
    // Everything posted over the whole run is less than a single frame; 30 frames (13.8 MB) were shown.
    expect(total).toBeLessThan(frameBytes);
  });
});
