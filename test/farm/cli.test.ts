/**
 * The command line as a user meets it: bad input of every kind exits 2 and names what was wrong (the
 * scenario field by its path, the option by its name); a clean run exits 0 and prints its seed first; a
 * run with findings exits 1 and prints a command that replays it, and replaying reproduces the report.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../src/workers/run-scenario.js';
import { builtinScenarioNames } from '../../src/workers/scenario-loader.js';
import { buildCli, pipeline, runCli, writeScenarioFile } from '../fixtures/farm/cli.js';

let dir = '';

beforeAll(() => {
  buildCli();
  dir = mkdtempSync(join(tmpdir(), 'dmafarm-cli-'));
  writeScenarioFile(dir, 'bad-knobs.ts', pipeline('bad-knobs', { fps: -5, shutter: 1 }));
  writeScenarioFile(dir, 'bad-model.ts', {
    name: 'bad-model',
    devices: { cam0: { model: 'camera' }, scope0: { model: 'oscilloscope' } },
  });
  writeScenarioFile(dir, 'bad-link-device.ts', {
    ...pipeline('bad-link-device'),
    links: [{ from: 'cam0.out', to: 'disp9.in' }],
  });
  writeScenarioFile(dir, 'bad-link-port.ts', {
    ...pipeline('bad-link-port'),
    links: [{ from: 'cam0.out', to: 'disp0.video' }],
  });
  writeScenarioFile(dir, 'unlinked.ts', { ...pipeline('unlinked'), links: [] });
  writeScenarioFile(dir, 'bad-top-level.ts', { ...pipeline('bad-top-level'), frames: -3 });
  writeFileSync(join(dir, 'syntax-error.ts'), 'export default { name: "broken", devices: {\n');
  writeScenarioFile(dir, 'signal-twice.ts', pipeline('signal-twice', { bugs: { signalTwice: true } }));
  writeScenarioFile(dir, 'never-release.ts', pipeline('never-release', {}, { bugs: { neverRelease: true } }));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('bad input exits 2 and says what was wrong', () => {
  const cases: [string, string[], RegExp[]][] = [
    ['an unknown scenario name', ['run', 'no-such-scenario'], [/no-such-scenario/, /known: .*camera-preview/]],
    ['a missing scenario file', ['run', './nowhere.ts'], [/no such file/, /nowhere\.ts/]],
    ['a scenario file that does not parse', ['run', './syntax-error.ts'], [/syntax-error\.ts/, /cannot load/]],
    ['bad knobs', ['run', './bad-knobs.ts'], [/devices\.cam0\.knobs\.fps: /, /devices\.cam0\.knobs: .*shutter/]],
    ['a bad top-level field', ['run', './bad-top-level.ts'], [/^ {2}frames: /m]],
    ['an unknown model', ['run', './bad-model.ts'], [/devices\.scope0\.model: unknown model 'oscilloscope'/]],
    ['a link to a missing device', ['run', './bad-link-device.ts'], [/links\.0\.to: no device 'disp9'/]],
    [
      'a link to a missing port',
      ['run', './bad-link-port.ts'],
      [/links\.0\.to: disp0 \(display\) has no input 'video'/],
    ],
    [
      'ports left unlinked',
      ['run', './unlinked.ts'],
      [
        /devices\.cam0: output 'out' of camera is not linked \(add a link with from: 'cam0\.out'\)/,
        /devices\.disp0: input 'in' of display is not linked \(add a link with to: 'disp0\.in'\)/,
      ],
    ],
    [
      '--seed -1',
      ['run', 'camera-preview', '--seed', '-1', '--host', 'sim'],
      [/--seed must be a non-negative integer/, /-1/],
    ],
    ['--seed 1.5', ['run', 'camera-preview', '--seed', '1.5', '--host', 'sim'], [/--seed/, /1\.5/]],
    ['--frames abc', ['run', 'camera-preview', '--frames', 'abc', '--host', 'sim'], [/--frames must be an integer/]],
    ['--host gpu', ['run', 'camera-preview', '--host', 'gpu'], [/host/, /"gpu"/, /"worker", "sim"/]],
    ['an unknown option', ['run', 'camera-preview', '--colour', 'red'], [/Unknown argument: colour/]],
    ['an unknown command', ['frobnicate'], [/frobnicate/]],
    ['heaps of an unknown scenario', ['heaps', 'no-such-scenario'], [/no-such-scenario/, /known: .*camera-preview/]],
  ];
  // Separate processes with nothing shared: run them side by side.
  it.concurrent.for(cases)('%s', async ([_what, args, patterns], { expect }) => {
    const r = await runCli(args, dir);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^dmafarm: /);
    for (const p of patterns) expect(r.stderr).toMatch(p);
    expect(r.stdout).not.toMatch(/SEED=/); // nothing was run
  });
});

describe('runs', () => {
  it('exits 0 for a clean run and prints its seed first', async () => {
    const r = await runCli(['run', 'camera-preview', '--seed', '7', '--host', 'sim'], dir);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^SEED=7 /);
    expect(lines[0]).toContain('host=sim');
    expect(lines[0]).toContain('camera-preview');
    expect(r.stdout).toMatch(/^camera-preview +ok +30 frames +0 findings/m);
    expect(r.stdout).toMatch(/^SUMMARY: 1 scenario\(s\), 0 finding\(s\), all as expected$/m);
    expect(r.stdout).not.toContain('replay:');
  });

  it("lists a scenario's heaps: its protected pools with the firewall each admits", async () => {
    const file = fileURLToPath(new URL('../../scenarios/misuse/gpu-sample-protected.ts', import.meta.url));
    const r = await runCli(['heaps', file, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const heaps = JSON.parse(r.stdout) as { name: string; capacityBytes: number; restriction: { kind: string } }[];
    expect(heaps.find((h) => h.name === 'protected,secure-video')).toMatchObject({
      capacityBytes: 1 << 20,
      restriction: { kind: 'protected', useCase: 'secure-video', firewall: ['video-decoder', 'display', 'tee'] },
    });
    const plain = await runCli(['heaps'], dir);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^system +buddy/m);
    expect(plain.stdout).not.toContain('protected');
  });

  it('lists every built-in scenario', async () => {
    const r = await runCli(['list'], dir);
    expect(r.code, r.stderr).toBe(0);
    const listed = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/)[0]);
    expect(listed).toContain('camera-preview');
    expect(listed).toEqual(await builtinScenarioNames());
    expect(r.stdout).toMatch(/^camera-preview +camera → display/m);
  });

  it('exits 1 for a hang and prints how to replay it', async () => {
    const r = await runCli(['run', './never-release.ts', '--seed', '12', '--host', 'sim'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.split('\n')[0]).toMatch(/^SEED=12 host=sim scenarios=never-release$/);
    expect(r.stdout).toMatch(/^ {4}hang: nothing could make progress: .*cam0 in wait fence/m);
    expect(r.stdout).toMatch(/^ {4}replay: dmafarm run \S+ --seed 12 --host sim$/m);
  });
});

/** The reports of a `--json` run (everything after the SEED line). */
function jsonReports(stdout: string): { seed: number; host: string; reports: Report[] } {
  const lines = stdout.split('\n');
  expect(lines[0]).toMatch(/^SEED=\d+ /);
  return JSON.parse(lines.slice(1).join('\n'));
}

describe('a run with findings', () => {
  it('exits 1, names the finding, and prints a replay command that reproduces the same report', async () => {
    const first = await runCli(['run', './signal-twice.ts', '--seed', '31337'], dir); // worker host
    expect(first.code, first.stderr).toBe(1);
    expect(first.stdout).toMatch(/^ {4}fence-double-signal \[cam0\]: /m);
    const replay = /^ {4}replay: dmafarm (run .* --seed 31337 --host sim)$/m.exec(first.stdout);
    expect(replay, first.stdout).not.toBeNull();
    const replayArgs = (replay?.[1] ?? '').split(' ');

    // The replay command, exactly as printed (plus --json), twice: the same report both times.
    const a = await runCli([...replayArgs, '--json'], dir);
    const b = await runCli([...replayArgs, '--json'], dir);
    expect(a.code, a.stderr).toBe(1);
    expect(b.code, b.stderr).toBe(1);
    const ra = jsonReports(a.stdout);
    const rb = jsonReports(b.stdout);
    expect(ra.seed).toBe(31337);
    expect(ra.host).toBe('sim');
    expect(ra.reports).toHaveLength(1);
    expect(ra.reports[0]?.scenario).toBe('signal-twice');
    expect(ra.reports[0]?.findings.map((f) => f.rule)).toContain('fence-double-signal');
    expect(rb).toEqual(ra); // every field, virtual time and the event-log hash included
  });

  it('gives the same JSON report for the same file and seed on the sim host, and another for another seed', async () => {
    const args = ['run', './signal-twice.ts', '--host', 'sim', '--json'];
    const [a, b, ...others] = await Promise.all([
      runCli([...args, '--seed', '4'], dir),
      runCli([...args, '--seed', '4'], dir),
      ...[5, 6, 7, 8].map((seed) => runCli([...args, '--seed', String(seed)], dir)),
    ]);
    for (const r of [a, b, ...others]) expect(r?.code, r?.stderr).toBe(1);
    const ra = jsonReports(a?.stdout ?? '');
    expect(jsonReports(b?.stdout ?? '')).toEqual(ra);
    // Two seeds may happen to pick the same schedule on a scenario this small; five cannot all agree.
    const hashes = new Set(
      [ra, ...others.map((o) => jsonReports(o?.stdout ?? ''))].map((r) => r.reports[0]?.eventHash),
    );
    expect(hashes.size).toBeGreaterThan(1);
    const rc = jsonReports(others[0]?.stdout ?? '');
    // The bug is found whatever the schedule: one double signal per frame, folded into one finding per site.
    for (const r of [ra, rc]) {
      const doubles = r.reports[0]?.findings.filter((f) => f.rule === 'fence-double-signal') ?? [];
      expect(doubles).toHaveLength(1);
      expect(doubles[0]?.count).toBe(8);
    }
  });

  describe('device logs on the worker host', () => {
    it('every device logs through its own destination: each stderr line is one whole JSON record', async () => {
      const r = await runCli(['run', 'gpu-composition', '--seed', '3', '--frames', '10'], dir, {
        DMAFARM_LOG: 'debug',
      });
      expect(r?.code, r?.stderr).toBe(0);
      const lines = (r?.stderr ?? '').split('\n').filter((l) => l.trim() !== '');
      const records = lines.map((l) => JSON.parse(l) as { device?: string; msg?: string; seq?: number });
      const scanouts = records.filter((x) => x.msg === 'scanout');
      expect(scanouts.map((x) => x.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(new Set(scanouts.map((x) => x.device))).toEqual(new Set(['disp0']));
    });
  });
});
