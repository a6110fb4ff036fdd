// The TSan-style text of a race finding: both sides, the missing edge, a fix, SUMMARY and repro lines;
// and a replay (same scenario, same seed, sim host) prints it byte for byte.
import { describe, expect, it } from 'vitest';
import { formatFinding } from '../../src/detect/report-text.js';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';

/** A decoder sends each frame before decoding it; the display reads without waiting for the fence. */
const unfenced = defineScenario({
  name: 'unfenced-display',
  frames: 6,
  devices: {
    dec0: { model: 'video-decoder', knobs: { width: 64, height: 64, buffers: 4 } },
    disp0: { model: 'display', knobs: { bugs: { skipFenceWait: true } } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
});

async function text(seed: number): Promise<string> {
  const r = await runScenario(unfenced, { seed, host: 'sim' });
  const repro = `dmafarm run unfenced-display --seed ${seed} --host sim`;
  return r.findings.flatMap((f) => formatFinding(f, repro)).join('\n');
}

describe('race reports', () => {
  it('name both sides, the missing edge and the fix, with a SUMMARY and a repro line', async () => {
    const r = await runScenario(unfenced, { seed: 3, host: 'sim' });
    const raw = r.findings.find((f) => f.rule === 'dmabuf-hazard-raw');
    expect(raw, JSON.stringify(r.findings.map((f) => f.rule))).toBeDefined();
    expect(raw?.sides?.map((s) => [s.device, s.op])).toEqual([
      ['disp0', 'checksum'],
      ['dec0', 'fill'],
    ]);
    // The display never waited on a fence of the decoder: nothing to name on its side.
    expect(raw?.sides?.[0]?.waited).toEqual([]);
    expect(raw?.site).toBe('dec0.fill>disp0.checksum');
    const lines = formatFinding(raw ?? { rule: '', message: '', device: null }, 'dmafarm run x --seed 3 --host sim');
    expect(lines[1]).toMatch(/^WARNING: dmafarm: dmabuf-hazard-raw: /);
    expect(lines.some((l) => l.startsWith('  Read  by disp0 (checksum)'))).toBe(true);
    expect(lines.some((l) => l.startsWith('  Previous write by dec0 (fill)'))).toBe(true);
    expect(lines.some((l) => l.startsWith('  missing edge: disp0 never waited on a fence of dec0'))).toBe(true);
    expect(lines).toContain('SUMMARY: dmafarm: dmabuf-hazard-raw dec0.fill>disp0.checksum');
    expect(lines).toContain('repro: dmafarm run x --seed 3 --host sim');
  });

  it('replaying the seed prints the same text byte for byte', async () => {
    const a = await text(3);
    expect(a.length).toBeGreaterThan(0);
    expect(await text(3)).toBe(a);
  });

  it('a finding without two sides prints one line with its count', () => {
    expect(
      formatFinding({ rule: 'fence-double-signal', message: 'cam0: signalled twice', device: 'cam0', count: 3 }, null),
    ).toEqual(['  fence-double-signal: cam0: signalled twice (seen 3 times)']);
  });
});
