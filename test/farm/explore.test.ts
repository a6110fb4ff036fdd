/**
 * Schedule exploration: the sim scheduler's policies (random stays what it was; PCT runs the highest-priority
 * ready device and changes priorities only at its change points), and `dmafarm explore` / `merge` as a user
 * meets them: each distinct finding once with a count and a replay command that reproduces the same report,
 * shards that partition a sweep and merge back into it, the same findings from any number of pool workers,
 * and bad input that exits 2 naming the option.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Exploration and replay through the library's public entry, as a user's own test would call them.
import { type ExploreResult, explore, loadScenario, mergeResults, type Report, runScenario } from '../../src/index.js';
import { shardSeeds } from '../../src/workers/explore.js';
import { Prng } from '../../src/workers/prng.js';
import {
  formatScheduleSpec,
  PCT_STEPS_DEFAULT,
  PctPolicy,
  parseScheduleSpec,
  randomPolicy,
  type SchedulableTask,
  type SchedulePolicy,
} from '../../src/workers/schedule-policy.js';
import { SimScheduler } from '../../src/workers/sim-host.js';
import { type CliResult, ROOT } from '../fixtures/farm/cli.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'explore');
const SIGNAL_TWICE = join(FIXTURES, 'signal-twice.ts');
/** The bench's deterministic-host scenario: five devices, small frames. */
const FIVE_DEVICES = join(ROOT, 'scenarios', 'bench', 'sim-5.ts');
const OTHER = join(FIXTURES, 'other-scenario.ts');

// ---------------------------------------------------------------------------------------------------------
// The scheduler with plain tasks: what each policy picks, step by step.

interface Step {
  ready: string[];
  pick: string;
}

/** Wraps a policy and records every ready set and pick. */
function recording(inner: SchedulePolicy, steps: Step[]): SchedulePolicy {
  return {
    pick(ready: readonly SchedulableTask[], prng: Prng): number {
      const i = inner.pick(ready, prng);
      steps.push({ ready: ready.map((t) => t.name), pick: (ready[i] as SchedulableTask).name });
      return i;
    },
  };
}

/**
 * Tasks of `body(name, park)` on a SimScheduler with `policy`; returns the order the tasks ran their steps
 * in (a name per resumed step).
 */
async function runTasks(
  names: string[],
  seed: number,
  policy: SchedulePolicy,
  body: (name: string, park: (ready?: () => boolean) => Promise<void>, trace: string[]) => Promise<void>,
): Promise<string[]> {
  const sched = new SimScheduler(new Prng(seed), policy);
  const trace: string[] = [];
  for (const n of names) sched.add(n);
  const hang = await sched.run((name) => {
    void (async () => {
      try {
        await body(name, (ready) => sched.park(name, 'point', ready ?? null), trace);
      } finally {
        sched.finish(name);
      }
    })();
  });
  expect(hang).toBeNull();
  return trace;
}

/** Whether one fixed priority order explains every pick (each pick beats every other ready task). */
function consistentWithFixedPriorities(steps: Step[]): boolean {
  const beats = new Map<string, Set<string>>();
  for (const s of steps) {
    for (const other of s.ready) {
      if (other === s.pick) continue;
      if (beats.get(other)?.has(s.pick)) return false;
      let set = beats.get(s.pick);
      if (set === undefined) {
        set = new Set();
        beats.set(s.pick, set);
      }
      set.add(other);
    }
  }
  // No cycles either (a beats b beats c beats a): repeatedly remove a task nobody beats.
  const left = new Set([...beats.keys(), ...[...beats.values()].flatMap((s) => [...s])]);
  while (left.size > 0) {
    const top = [...left].find((t) => ![...left].some((u) => u !== t && beats.get(u)?.has(t)));
    if (top === undefined) return false;
    left.delete(top);
  }
  return true;
}

describe('schedule specs', () => {
  it('parse and print back; a bad one names the option and the value', () => {
    expect(parseScheduleSpec('random')).toEqual({ kind: 'random' });
    expect(parseScheduleSpec('pct:3')).toEqual({ kind: 'pct', depth: 3, steps: PCT_STEPS_DEFAULT });
    expect(parseScheduleSpec('pct:2:500')).toEqual({ kind: 'pct', depth: 2, steps: 500 });
    for (const t of ['random', 'pct:1', 'pct:8', 'pct:3:91']) expect(formatScheduleSpec(parseScheduleSpec(t))).toBe(t);
    for (const bad of ['pct:x', 'pct:0', 'pct:9', 'pct:', 'pct:2:0', 'pct:2:y', 'fifo', 'pct:1.5']) {
      expect(() => parseScheduleSpec(bad)).toThrow(new RegExp(`--schedule.*'${bad.replace('.', '\\.')}'`));
    }
  });
});

describe('policies on the sim scheduler', () => {
  const counting = (steps: number) => async (_name: string, park: () => Promise<void>, trace: string[]) => {
    for (let i = 0; i < steps; i++) {
      await park();
      trace.push(_name);
    }
  };

  it('random is uniform over the ready tasks, drawing exactly as the scheduler always did', async () => {
    const steps: Step[] = [];
    await runTasks(['a', 'b', 'c'], 5, recording(randomPolicy, steps), counting(6));
    // Replay the draws by hand: one prng.int(0, n-1) per step with more than one ready task, none otherwise.
    const prng = new Prng(5);
    for (const s of steps) {
      const i = s.ready.length === 1 ? 0 : prng.int(0, s.ready.length - 1);
      expect(s.ready[i]).toBe(s.pick);
    }
    expect(consistentWithFixedPriorities(steps)).toBe(false); // no priorities behind random choices
  });

  it('pct:1 runs the highest-priority task until it finishes or blocks, with random priorities', async () => {
    const firsts = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const trace = await runTasks(['a', 'b', 'c'], seed, new PctPolicy(1, 100), counting(5));
      // Three contiguous blocks: a task, once picked, runs to its end before any other.
      const blocks = trace.filter((n, i) => i === 0 || trace[i - 1] !== n);
      expect(blocks, trace.join('')).toHaveLength(3);
      expect(new Set(blocks).size).toBe(3);
      firsts.add(blocks[0] as string);
    }
    expect(firsts.size).toBe(3); // the priorities are random: each task is on top for some seed

    // With a block: b waits for a flag a sets at its third step. The highest-priority task runs until it
    // blocks, and b runs as soon as it can if it outranks whoever is running.
    for (let seed = 1; seed <= 12; seed++) {
      let flag = false;
      const steps: Step[] = [];
      const trace = await runTasks(
        ['a', 'b', 'c'],
        seed,
        recording(new PctPolicy(1, 100), steps),
        async (name, park, tr) => {
          for (let i = 0; i < 4; i++) {
            await park(name === 'b' && i === 1 ? () => flag : undefined);
            tr.push(name);
            if (name === 'a' && i === 2) flag = true;
          }
        },
      );
      expect(trace).toHaveLength(12);
      expect(consistentWithFixedPriorities(steps), trace.join('')).toBe(true);
      // The very first task runs uninterrupted until it finishes or blocks (b blocks after one step).
      const first = trace[0] as string;
      const run = trace.findIndex((n) => n !== first);
      expect(run, trace.join('')).toBe(first === 'b' ? 1 : 4);
    }
  });

  it('pct:d changes priorities at d−1 change points only: one fixed order before and after each', async () => {
    let changed = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const steps: Step[] = [];
      const policy = new PctPolicy(3, 12);
      await runTasks(['a', 'b', 'c'], seed, recording(policy, steps), counting(5));
      expect(policy.changes).toHaveLength(2);
      const [c1, c2] = policy.changes as [number, number];
      expect(c1).toBeGreaterThanOrEqual(1);
      expect(c2).toBeLessThanOrEqual(12);
      expect(c1).toBeLessThan(c2);
      // Steps are 1-based; a change point applies from its own step on.
      const parts = [steps.slice(0, c1 - 1), steps.slice(c1 - 1, c2 - 1), steps.slice(c2 - 1)];
      for (const part of parts) expect(consistentWithFixedPriorities(part)).toBe(true);
      // At each change point the task that ran last drops below every other: until the next change point it
      // runs only when it is the only one ready.
      const after: [number, Step[]][] = [
        [c1, parts[1] ?? []],
        [c2, parts[2] ?? []],
      ];
      for (const [at, part] of after) {
        const dropped = steps[at - 2]?.pick;
        if (dropped === undefined) continue; // a change at step 1: nothing ran yet
        for (const st of part) if (st.ready.length > 1) expect(st.pick).not.toBe(dropped);
      }
      if (!consistentWithFixedPriorities(steps)) changed++;
    }
    expect(changed).toBeGreaterThan(0); // the priorities did change, for some seeds
  });

  it('PCT finds a depth-1 ordering bug that random practically never finds', async () => {
    // PCT paper, Fig. 5 shape: the bug shows when `late` takes its one step after all of `busy`'s 20.
    const hits = async (policy: () => SchedulePolicy): Promise<number> => {
      let n = 0;
      for (let seed = 1; seed <= 40; seed++) {
        let busyDone = false;
        await runTasks(['late', 'busy'], seed, policy(), async (name, park) => {
          if (name === 'late') {
            await park();
            if (busyDone) n++;
            return;
          }
          for (let i = 0; i < 20; i++) await park();
          busyDone = true;
        });
      }
      return n;
    };
    const random = await hits(() => randomPolicy); // p ≈ 2^-20 per run
    const pct = await hits(() => new PctPolicy(1, 30)); // p = 1/2 per run
    expect(random).toBe(0);
    expect(pct).toBeGreaterThanOrEqual(10);
  });
});

describe('policies on a scenario', () => {
  it('the same seed and pct:3 give the same event hash; pct and random schedule differently', async () => {
    const s = await loadScenario(FIVE_DEVICES);
    const pct3 = parseScheduleSpec('pct:3:300');
    for (const seed of [1, 2, 3]) {
      const a = await runScenario(s, { seed, host: 'sim', frames: 4, schedule: pct3 });
      const b = await runScenario(s, { seed, host: 'sim', frames: 4, schedule: pct3 });
      const r = await runScenario(s, { seed, host: 'sim', frames: 4 });
      expect(a.ok && b.ok && r.ok).toBe(true);
      expect(a.schedule).toBe('pct:3:300');
      expect(r.schedule).toBe('random');
      expect(b.eventHash).toBe(a.eventHash);
      expect(b).toEqual(a);
      expect(r.eventHash).not.toBe(a.eventHash);
    }
    // An explicit random spec is the default, draw for draw.
    const d = await runScenario(s, { seed: 9, host: 'sim', frames: 4 });
    const e = await runScenario(s, { seed: 9, host: 'sim', frames: 4, schedule: { kind: 'random' } });
    expect(e).toEqual(d);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The CLI. Built into a directory of its own (with the package's node_modules linked in), so the replay
// command printed as `node dist/src/cli.js ...` runs exactly as printed, with no other test rebuilding dist/
// underneath it.

let home = '';
let out = '';

/** `node dist/src/cli.js ...args` from the build directory; never rejects. */
function cli(args: readonly string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(home, 'dist', 'src', 'cli.js'), ...args],
      { cwd: home, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        done({ code, stdout, stderr });
      },
    );
  });
}

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'dmafarm-explore-'));
  out = join(home, 'out');
  symlinkSync(join(ROOT, 'node_modules'), join(home, 'node_modules'), 'dir');
  writeFileSync(join(home, 'package.json'), '{ "type": "module" }\n');
  const r = spawnSync('npx', ['tsc', '-p', '.', '--outDir', join(home, 'dist')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`tsc failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  mkdirSync(out);
});

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

function jsonOf(r: CliResult): ExploreResult {
  return JSON.parse(r.stdout) as ExploreResult;
}

/** The one `--json` report of a `run` (everything after the SEED line). */
function runReport(stdout: string): Report {
  const lines = stdout.split('\n');
  expect(lines[0]).toMatch(/^SEED=\d+ /);
  const reports = (JSON.parse(lines.slice(1).join('\n')) as { reports: Report[] }).reports;
  expect(reports).toHaveLength(1);
  return reports[0] as Report;
}

describe('dmafarm explore', () => {
  it('prints each distinct finding once with a count and a replay command that reproduces the report', async () => {
    const file = join(out, 'sweep.json');
    const r = await cli(['explore', SIGNAL_TWICE, '--runs', '20', '--schedule', 'mix', '--out', file]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(''); // no progress bar when stderr is not a terminal
    expect(r.stdout).toMatch(/^EXPLORE scenario=explore-signal-twice seeds=1\.\.20 runs=20 schedule=mix pct-steps=\d+/);
    expect(r.stdout.match(/^ {2}fence-double-signal \[cam0\]: /gm)).toHaveLength(1);
    expect(r.stdout).toMatch(/^ {4}seeds: 20 of 20, first 1 \(schedule pct:2:\d+\)$/m);
    expect(r.stdout).toMatch(/^SUMMARY: 20 run\(s\) in .* schedules\/s\), 1 distinct finding\(s\), 20 seed\(s\) not/m);
    const printed = /^ {4}repro: (.*)$/m.exec(r.stdout)?.[1] ?? '';

    const result = JSON.parse(readFileSync(file, 'utf8')) as ExploreResult;
    expect(Object.keys(result)).toEqual(
      expect.arrayContaining(['scenario', 'runs', 'seeds', 'shard', 'schedule', 'schedulesPerS', 'findings']),
    );
    expect(result).toMatchObject({ scenario: 'explore-signal-twice', runs: 20, seeds: [1, 20], shard: null });
    expect(result.schedulesPerS).toBeGreaterThan(0);
    expect(result.failedSeeds).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(result.findings).toHaveLength(1);
    const f = result.findings[0];
    expect(f).toMatchObject({ rule: 'fence-double-signal', device: 'cam0', count: 20, firstSeed: 1 });
    expect(f?.repro).toBe(printed);

    // The replay command exactly as printed, from the directory holding dist/: the same finding, the same hash.
    const words = printed.split(' ');
    expect(words.slice(0, 3)).toEqual(['node', 'dist/src/cli.js', 'run']);
    expect(words).toContain('--schedule');
    const replayed = await cli([...words.slice(2), '--json']);
    expect(replayed.code, replayed.stderr).toBe(1);
    const report = runReport(replayed.stdout);
    expect(report.findings.map((x) => x.rule)).toContain('fence-double-signal');
    expect(report.seed).toBe(1);
    expect(report.schedule).toBe(f?.schedule);
    expect(report.eventHash).toBe(f?.eventHash);
    // The run's own replay line carries the schedule too.
    const text = await cli(words.slice(2));
    expect(text.stdout).toContain(`--seed 1 --host sim --schedule ${f?.schedule}`);
  });

  it('--shard 1/2 and 2/2 split the seeds; merging them gives the unsharded findings and counts', async () => {
    expect(shardSeeds(5, 7, { index: 1, count: 2 })).toEqual([5, 7, 9, 11]);
    expect(shardSeeds(5, 7, { index: 2, count: 2 })).toEqual([6, 8, 10]);
    const common = ['explore', SIGNAL_TWICE, '--runs', '9', '--seed-base', '3', '--schedule', 'mix', '--json'];
    const [whole, a, b] = await Promise.all([
      cli([...common, '--workers', '1']),
      cli([...common, '--shard', '1/2', '--workers', '1', '--out', join(out, 's1.json')]),
      cli([...common, '--shard', '2/2', '--workers', '1', '--out', join(out, 's2.json')]),
    ]);
    for (const r of [whole, a, b]) expect(r?.code, r?.stderr).toBe(1);
    const [rw, r1, r2] = [whole, a, b].map((r) => jsonOf(r as CliResult)) as [
      ExploreResult,
      ExploreResult,
      ExploreResult,
    ];
    expect(r1.shard).toBe('1/2');
    expect(r1.runs + r2.runs).toBe(9);
    // Every seed fails in this scenario, so the failed seeds are the seeds each shard ran.
    const s1 = new Set(r1.failedSeeds);
    expect(r2.failedSeeds.filter((x) => s1.has(x))).toEqual([]);
    expect([...r1.failedSeeds, ...r2.failedSeeds].sort((x, y) => x - y)).toEqual(rw.failedSeeds);
    expect(rw.failedSeeds).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);

    const merged = await cli(['merge', join(out, 's1.json'), join(out, 's2.json'), '--json']);
    expect(merged.code, merged.stderr).toBe(1);
    const rm = jsonOf(merged);
    const summary = (r: ExploreResult) => r.findings.map((f) => [f.key, f.count, f.firstSeed, f.schedule, f.repro]);
    expect(summary(rm)).toEqual(summary(rw));
    expect(rm).toMatchObject({
      scenario: rw.scenario,
      runs: 9,
      seeds: [3, 11],
      shard: null,
      failedSeeds: rw.failedSeeds,
    });
    const mergedText = await cli(['merge', join(out, 's2.json'), join(out, 's1.json')]);
    expect(mergedText.code).toBe(1);
    expect(mergedText.stdout).toMatch(/^ {4}seeds: 9 of 9, first 3 /m);
  });

  it('a piscina pool of 2 workers finds what one inline worker finds, for the same seeds', async () => {
    const options = { scenario: SIGNAL_TWICE, runs: 12, seedBase: 40, schedule: 'mix', batchSize: 2 };
    const inline = await explore({ ...options, workers: 1 });
    const pooled = await explore({ ...options, workers: 2 });
    const strip = ({ elapsedS: _e, schedulesPerS: _s, ...rest }: ExploreResult) => rest;
    expect(strip(pooled)).toEqual(strip(inline));
    expect(inline.findings.map((f) => f.rule)).toEqual(['fence-double-signal']);
    expect(inline.findings[0]?.count).toBe(12);
  });

  it('a clean scenario exits 0', async () => {
    const r = await cli(['explore', 'camera-preview', '--runs', '4', '--frames', '3', '--schedule', 'pct:2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^SUMMARY: 4 run\(s\) .* 0 distinct finding\(s\), every run as expected$/m);
  });
});

describe('merging results', () => {
  const base: ExploreResult = {
    scenario: 's',
    runs: 5,
    seeds: [1, 10],
    shard: '1/2',
    schedule: 'random',
    pctSteps: null,
    frames: null,
    schedulesPerS: 10,
    elapsedS: 0.5,
    findings: [],
    failedSeeds: [],
    errors: [],
  };
  const finding = (firstSeed: number, count: number) => ({
    key: 'r|d|',
    rule: 'r',
    device: 'd',
    site: null,
    message: `seen at ${firstSeed}`,
    count,
    firstSeed,
    schedule: 'random',
    eventHash: `h${firstSeed}`,
    expected: false,
    repro: `replay ${firstSeed}`,
  });

  it('adds counts and keeps the smallest first seed with its message and replay', () => {
    const a = { ...base, findings: [finding(7, 2)], failedSeeds: [7, 9] };
    const b = { ...base, shard: '2/2', findings: [finding(4, 3)], failedSeeds: [4, 6, 8] };
    for (const m of [mergeResults([a, b]), mergeResults([b, a])]) {
      expect(m.findings).toEqual([finding(4, 5)]);
      expect(m.failedSeeds).toEqual([4, 6, 7, 8, 9]);
      expect(m).toMatchObject({ runs: 10, shard: null, seeds: [1, 10], schedulesPerS: 10 });
    }
  });

  it('refuses different scenarios and the same part twice', () => {
    expect(() => mergeResults([base, { ...base, scenario: 't', shard: '2/2' }], ['a.json', 'b.json'])).toThrow(
      /b\.json is scenario 't' but a\.json is 's'/,
    );
    expect(() => mergeResults([base, base], ['a.json', 'b.json'])).toThrow(/b\.json repeats/);
  });
});

describe('bad input exits 2 and names the option', () => {
  const cases: [string, string[], RegExp][] = [
    ['--runs 0', ['explore', 'camera-preview', '--runs', '0'], /--runs must be an integer in 1\.\.\d+, got '0'/],
    ['--runs abc', ['explore', 'camera-preview', '--runs', 'abc'], /--runs must be an integer, got 'abc'/],
    ['--shard 3/2', ['explore', 'camera-preview', '--runs', '4', '--shard', '3/2'], /--shard must be 'i\/n'.*'3\/2'/],
    ['--schedule pct:x', ['explore', 'camera-preview', '--runs', '4', '--schedule', 'pct:x'], /--schedule.*'pct:x'/],
    ['an unknown scenario', ['explore', 'no-such-scenario', '--runs', '4'], /no built-in scenario 'no-such-scenario'/],
    ['run --schedule pct:9', ['run', 'camera-preview', '--host', 'sim', '--schedule', 'pct:9'], /--schedule.*'pct:9'/],
    ['run --schedule on workers', ['run', 'camera-preview', '--schedule', 'pct:2'], /--schedule needs --host sim/],
    ['merge of a missing file', ['merge', 'nowhere.json'], /merge: cannot read nowhere\.json/],
  ];
  it.concurrent.for(cases)('%s', async ([_what, args, pattern], { expect }) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^dmafarm: /);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toBe('');
  });

  it('merge of two different scenarios', async () => {
    const [a, b] = await Promise.all([
      cli(['explore', SIGNAL_TWICE, '--runs', '2', '--workers', '0', '--out', join(out, 'm1.json')]),
      cli(['explore', OTHER, '--runs', '2', '--workers', '0', '--out', join(out, 'm2.json')]),
    ]);
    expect(a.code, a.stderr).toBe(1);
    expect(b.code, b.stderr).toBe(0);
    const r = await cli(['merge', join(out, 'm1.json'), join(out, 'm2.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/m2\.json is scenario 'explore-other' but .*m1\.json is 'explore-signal-twice'/);
  });
});
