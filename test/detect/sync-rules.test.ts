// The CPU-access and resv-usage rules (catalog classes 5–9): the bracket bookkeeping and the race classes
// on their own, then through the device runtime with a scripted device on the sim host (edge cases the
// misuse examples do not reach: a read after END, END with other flags, a read in a WRITE bracket, a
// WRITE fence re-added as READ, a fence added as READ after the write).
import { describe, expect, it } from 'vitest';
import type { HbRace, HbSide } from '../../src/detect/hb.js';
import { describeRace, type RaceSync, raceRule } from '../../src/detect/race-report.js';
import { CpuBrackets } from '../../src/detect/sync-rules.js';
import { defineDevice } from '../../src/devices/device.js';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResvUsage,
} from '../../src/kernel/dma-resv.js';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';

describe('CpuBrackets', () => {
  it('an access outside START/END is unbracketed, inside one with its flags is fine', () => {
    const b = new CpuBrackets();
    expect(b.access(1, false, 'cpu-read')?.rule).toBe('cpu-access-unbracketed');
    b.start(1, 'rw');
    expect(b.access(1, true, 'cpu-write')).toBeNull();
    expect(b.access(1, false, 'cpu-read')).toBeNull();
    expect(b.access(2, true, 'cpu-write')?.rule).toBe('cpu-access-unbracketed'); // per buffer
    expect(b.end(1, 'rw')).toBeNull();
    // After END: the CPU keeps reading.
    expect(b.access(1, false, 'cpu-read')?.rule).toBe('cpu-access-unbracketed');
  });

  it('flags: a write in a READ bracket, a read in a WRITE bracket, END with other flags than START', () => {
    const b = new CpuBrackets();
    b.start(1, 'read');
    expect(b.access(1, true, 'cpu-write')).toMatchObject({ rule: 'cpu-access-flags', site: 'cpu-write-in-read' });
    expect(b.end(1, 'read')).toBeNull();
    b.start(1, 'write');
    expect(b.access(1, false, 'cpu-read')).toMatchObject({ rule: 'cpu-access-flags', site: 'cpu-read-in-write' });
    expect(b.end(1, 'rw')).toMatchObject({ rule: 'cpu-access-flags', site: 'end-write-rw' });
    // END without START: the kernel keeps no state and accepts it; so does the bracket check.
    expect(b.end(1, 'read')).toBeNull();
  });

  it('publishing with CPU writes in an open bracket is cpu-sync-end-missing; a clean or closed one is not', () => {
    const b = new CpuBrackets();
    b.start(1, 'write');
    expect(b.published(1)).toBeNull(); // nothing written yet
    b.access(1, true, 'cpu-write');
    expect(b.published(1)?.rule).toBe('cpu-sync-end-missing');
    b.start(1, 'write'); // a second START does not write anything back
    expect(b.published(1)?.rule).toBe('cpu-sync-end-missing');
    b.end(1, 'write');
    expect(b.published(1)).toBeNull();
  });
});

function side(tid: number, clock: number, job: number, waitedCtx = 0, waitedSeqno = 0): HbSide {
  return { tid, clock, lo: 0, hi: 64, op: 12, job, timeNs: 0, waitedCtx, waitedSeqno };
}
const race = (kind: HbRace['kind'], current: HbSide, previous: HbSide, syncedClock = 0): HbRace => ({
  kind,
  resvSlot: 0,
  current,
  previous,
  syncedClock,
});
const sync = (cpuBracket: boolean, resvWait: DmaResvUsage | null, covering: DmaResvUsage | null): RaceSync => ({
  cpuBracket,
  resvWait,
  covering,
});

describe('race classes refined by how the current device synchronised', () => {
  const raw = race('RAW', side(1, 3, 2), side(0, 5, 4));
  it('without a resv wait nothing changes', () => {
    expect(raceRule(raw)).toBe('dmabuf-hazard-raw');
    expect(raceRule(raw, sync(true, null, null))).toBe('dmabuf-hazard-raw'); // a bracket, but no START wait seen
  });
  it('BOOKKEEP covering fence behind an implicit wait, on either side of the race', () => {
    expect(raceRule(raw, sync(false, DMA_RESV_USAGE_WRITE, DMA_RESV_USAGE_BOOKKEEP))).toBe('resv-bookkeep-nosync');
    const war = race('WAR', side(1, 3, 2), side(0, 5, 4));
    expect(raceRule(war, sync(false, DMA_RESV_USAGE_READ, DMA_RESV_USAGE_BOOKKEEP))).toBe('resv-bookkeep-nosync');
    expect(raceRule(war, sync(false, DMA_RESV_USAGE_READ, null))).toBe('dmabuf-hazard-war');
  });
  it('a READ covering fence is a downgrade only for a reader that waited for WRITE fences', () => {
    expect(raceRule(raw, sync(false, DMA_RESV_USAGE_WRITE, DMA_RESV_USAGE_READ))).toBe('resv-usage-downgrade');
    expect(raceRule(raw, sync(false, DMA_RESV_USAGE_READ, DMA_RESV_USAGE_READ))).toBe('dmabuf-hazard-raw');
  });
  it('SYNC used as a fence: a CPU access in a bracket whose START never saw the writer fence', () => {
    expect(raceRule(raw, sync(true, DMA_RESV_USAGE_WRITE, null))).toBe('cpu-sync-not-fence');
    expect(raceRule(raw, sync(false, DMA_RESV_USAGE_WRITE, null))).toBe('dmabuf-hazard-raw'); // DMA read
    const r = describeRace(raw, 7, (t) => `dev${t}`, sync(true, DMA_RESV_USAGE_WRITE, null));
    expect(r.detail.hint).toMatch(/before DMA_BUF_IOCTL_SYNC START/);
    expect(r.detail.missingEdge).toMatch(/never there/);
  });
  it('a stale fence wait stays stale', () => {
    const stale = race('RAW', side(1, 3, 2, 1, 3), side(0, 5, 4));
    expect(raceRule(stale, sync(true, DMA_RESV_USAGE_WRITE, null))).toBe('fence-wait-stale');
  });
});

/** A device that runs a script of CPU and resv calls on one buffer of its own. */
type Step =
  | ['start' | 'end', 'read' | 'write' | 'rw']
  | ['cpu-read' | 'cpu-write' | 'dma-write' | 'signal' | 'signal-first' | 'fence']
  | ['add', DmaResvUsage];
const scripted = defineDevice<{ steps: Step[] }>({
  name: 'scripted',
  parseKnobs: (raw) => raw as { steps: Step[] },
  inputs: () => [],
  outputs: () => [],
  async run(ctx, k) {
    const buf = await ctx.allocate('system', 8192);
    const att = await ctx.attach(buf);
    const map = await ctx.map(att);
    const cpu = await ctx.cpuMap(buf);
    const fences: number[] = [];
    let fence = 0;
    for (const s of k.steps) {
      if (s[0] === 'start' || s[0] === 'end') await ctx.cpuSync(buf, s[0], s[1]);
      else if (s[0] === 'cpu-read') await ctx.cpuRead(cpu, 0, 64);
      else if (s[0] === 'cpu-write') await ctx.cpuWrite(cpu, 0, new Uint8Array(64).fill(1));
      else if (s[0] === 'dma-write') await ctx.fill(map, 0, 64, 2);
      else if (s[0] === 'fence') {
        fence = await ctx.createFence();
        fences.push(fence);
      } else if (s[0] === 'signal') await ctx.signal(fence);
      else if (s[0] === 'signal-first') await ctx.signal(fences[0] as number);
      else await ctx.addFence(buf, fence, s[1] as DmaResvUsage);
    }
    for (const f of fences) {
      if (ctx.status(f) === 0) await ctx.signal(f);
      await ctx.put(f);
    }
    await ctx.detach(att);
    await ctx.release(buf);
    return { frames: 0 };
  },
});

async function rulesOf(steps: Step[]): Promise<string[]> {
  const s = defineScenario({
    name: 'scripted',
    frames: 1,
    devices: { dev0: { model: 'scripted', knobs: { steps } } },
    links: [],
    models: { scripted },
  });
  const r = await runScenario(s, { seed: 1, host: 'sim' });
  return r.findings.map((f) => `${f.rule}@${f.site ?? ''}`).sort();
}

describe('through the device runtime (sim host)', () => {
  it('a bracketed CPU read-modify-write is clean; a read after END is unbracketed', async () => {
    expect(await rulesOf([['start', 'rw'], ['cpu-read'], ['cpu-write'], ['end', 'rw']])).toEqual([]);
    expect(await rulesOf([['start', 'read'], ['cpu-read'], ['end', 'read'], ['cpu-read']])).toEqual([
      'cpu-access-unbracketed@cpu-read',
    ]);
  });
  it('END with other flags than START, and a read inside a WRITE bracket', async () => {
    expect(await rulesOf([['start', 'write'], ['cpu-write'], ['end', 'rw']])).toEqual([
      'cpu-access-flags@end-write-rw',
    ]);
    expect(await rulesOf([['start', 'write'], ['cpu-read'], ['end', 'write']])).toEqual([
      'cpu-access-flags@cpu-read-in-write',
    ]);
  });
  it('a job fence added as READ to a buffer the job writes: before or after the write', async () => {
    expect(await rulesOf([['fence'], ['add', DMA_RESV_USAGE_READ], ['dma-write'], ['signal']])).toEqual([
      'resv-usage-downgrade@write-under-read-fence',
    ]);
    expect(await rulesOf([['fence'], ['dma-write'], ['add', DMA_RESV_USAGE_READ], ['signal']])).toEqual([
      'resv-usage-downgrade@resv-add-read-after-write',
    ]);
  });
  it('WRITE then READ of the same fence is flagged; WRITE, BOOKKEEP and an older READ fence are not', async () => {
    expect(
      await rulesOf([
        ['fence'],
        ['add', DMA_RESV_USAGE_WRITE],
        ['dma-write'],
        ['add', DMA_RESV_USAGE_READ],
        ['signal'],
      ]),
    ).toEqual(['resv-usage-downgrade@resv-add-write-then-read']);
    expect(await rulesOf([['fence'], ['add', DMA_RESV_USAGE_WRITE], ['dma-write'], ['signal']])).toEqual([]);
    expect(await rulesOf([['fence'], ['add', DMA_RESV_USAGE_BOOKKEEP], ['dma-write'], ['signal']])).toEqual([]);
    // A read job's fence, signalled, then a write job with its own WRITE fence.
    expect(
      await rulesOf([
        ['fence'],
        ['add', DMA_RESV_USAGE_READ],
        ['signal'],
        ['fence'],
        ['add', DMA_RESV_USAGE_WRITE],
        ['dma-write'],
        ['signal'],
      ]),
    ).toEqual([]);
  });
  it('a pass with its own WRITE fence, then the job fence added as READ to read the result back: clean', async () => {
    // The GPU's render target: render fence (created first), job fence, the render writes under the render
    // fence, which signals; then the resolve reads the target under the job fence, added as READ.
    const pass: Step[] = [['fence'], ['add', DMA_RESV_USAGE_WRITE], ['fence'], ['dma-write'], ['signal-first']];
    expect(await rulesOf([...pass, ['add', DMA_RESV_USAGE_READ], ['signal']])).toEqual([]);
    // The same write with no WRITE fence of its own in the resv is still a downgrade.
    expect(
      await rulesOf([['fence'], ['fence'], ['dma-write'], ['signal-first'], ['add', DMA_RESV_USAGE_READ], ['signal']]),
    ).toEqual(['resv-usage-downgrade@resv-add-read-after-write']);
  });
});
