/**
 * The misuse examples (scenarios/misuse, catalogued in docs/findings.md): each is a small pipeline with one
 * model bug knob on, and declares in `expect.findings` exactly the rules it must produce.
 *
 * - On the sim host, over several seeds, every one produces exactly its declared findings (report `ok`:
 *   none missing, none unexpected), and its twin in scenarios/misuse/fixed — the same scenario with the fix
 *   applied — produces none.
 * - On the worker host (real threads, flat out), once each. Races are found by happens-before, so they are
 *   reported whatever the interleaving; only what needs a bad interleaving to have happened (the content
 *   check of a display that read too early) depends on timing there, and is checked as "a race, and nothing
 *   outside the declared findings".
 *
 * Scenario files are loaded the way the CLI loads them (`loadScenario(path)`).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Report, runScenario } from '../../src/workers/run-scenario.js';
import type { Scenario } from '../../src/workers/scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';

const DIR = fileURLToPath(new URL('../../scenarios/misuse/', import.meta.url));
const SEEDS = [1, 2, 3, 4, 5];
/** Hang scenarios on the worker host: the watchdog ends the run (a few seconds keeps the suite quick). */
const HANG_WATCHDOG_MS = 2500;
const RACE_RULES = [
  'dmabuf-hazard-raw',
  'fence-wait-stale',
  'dmabuf-hazard-war',
  'dmabuf-hazard-waw',
  'dmabuf-hazard-wrw',
];

const tsFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => e.name.slice(0, -'.ts'.length))
    .sort();

const NAMES = tsFiles(DIR);
const load = (name: string): Promise<Scenario> => loadScenario(`${DIR}${name}.ts`);
const loadFixed = (name: string): Promise<Scenario> => loadScenario(`${DIR}fixed/${name}.ts`);
const rules = (r: Report): string[] => [...new Set(r.findings.map((f) => f.rule))].sort();

/**
 * What each example must do on the worker host:
 * - 'exact': the report is `ok`, exactly as on the sim host;
 * - 'race': a content-mismatch there needs the consumer to have read too early, which a flat-out worker
 *   run may or may not do; the race is reported either way (RAW if the write came first, WAR if the read
 *   did), and nothing outside the declared findings may appear;
 * - knownGap: the worker host does not produce the finding yet (the comment names the code); the check is
 *   `it.fails`, so it turns red — and must become 'exact' — once the gap is closed.
 */
type WorkerCheck = 'exact' | 'race' | { knownGap: string };
const WORKER: Record<string, WorkerCheck> = {
  'camera-cpu-sync-read-flags': 'exact',
  'camera-cpu-write-unbracketed': 'exact',
  'camera-cpu-write-without-sync': 'exact',
  'camera-signal-twice': 'exact',
  'camera-skip-fence-signal': 'exact',
  'camera-skip-release-wait': 'exact',
  'decoder-signal-before-write': 'race',
  'display-cpu-sync-not-fence': 'exact',
  'display-implicit-sync-bookkeep': 'exact',
  'display-never-release': 'exact',
  'display-screenshot-protected': 'exact',
  'display-skip-fence-wait-camera': 'exact',
  'display-skip-fence-wait-decoder': 'race',
  'display-wait-previous-fence': 'exact',
  'gpu-in-place-waw': 'exact',
  'gpu-in-place-wrw': 'exact',
  'gpu-never-signal': 'exact',
  'gpu-sample-protected': 'exact',
  'gpu-use-mapping-after-move-notify': 'exact',
  'gpu-write-fence-as-read': 'exact',
  'tee-skip-fence-signal': 'exact',
  'tee-write-after-unmap': 'exact',
  'script-abba-no-ctx': 'exact',
  'script-add-fence-unlocked': 'exact',
  'script-callback-enoent-ignored': 'exact',
  'script-ealready-ignored': 'exact',
  'script-error-ignored': 'exact',
  'script-fence-wait-cycle': 'exact',
  'script-lock-across-wait': 'exact',
  'script-lock-in-signalling': 'exact',
  'script-no-backoff': 'exact',
  'script-seqno-order': 'exact',
  'script-timeout-misread': 'exact',
  'script-wait-in-signalling': 'exact',
};

/** Knobs without `bugs`: what a fixed twin must share with its buggy scenario. */
function withoutBugs(s: Scenario): unknown {
  const devices = Object.fromEntries(
    Object.entries(s.devices).map(([name, d]) => {
      const { bugs: _bugs, ...knobs } = d.knobs as Record<string, unknown>;
      return [name, { model: d.model, knobs }];
    }),
  );
  return { frames: s.frames, kernel: s.kernel, links: s.links, devices };
}

function expectNoLeaks(r: Report): void {
  expect(r.leaks.pages).toBe(0);
  expect(r.leaks.buffers).toBe(0);
  // Hangs included: the references of frames queued on a link (drained at teardown), of a stuck device's
  // ledger, and of the frame a device was blocked sending (still in its ledger) are all dropped.
  expect(r.leaks.fences).toBe(0);
}

/** Every finding of a race carries both sides, the missing edge and the fix. */
function expectRacesExplained(r: Report): void {
  for (const f of r.findings.filter((x) => RACE_RULES.includes(x.rule))) {
    expect(f.sides, `${f.rule} sides`).toHaveLength(2);
    expect(f.missingEdge, `${f.rule} missing edge`).toBeTruthy();
    expect(f.hint, `${f.rule} hint`).toBeTruthy();
    expect(f.site, `${f.rule} site`).toMatch(/^\w+\.[\w-]+>\w+\.[\w-]+$/);
  }
}

describe('scenarios/misuse', () => {
  it('every example has a fixed twin, a worker-host check, and a bug knob on', async () => {
    expect(NAMES.length).toBeGreaterThanOrEqual(12);
    expect(tsFiles(`${DIR}fixed/`)).toEqual(NAMES);
    expect(Object.keys(WORKER).sort()).toEqual(NAMES);
    for (const name of NAMES) {
      const s = await load(name);
      expect(s.name).toBe(name);
      expect(s.expect.findings.length, `${name} declares its findings`).toBeGreaterThan(0);
      expect(s.description, `${name} says what the bug and the fix are`).toMatch(/fix/i);
      const knobs = Object.values(s.devices).map((d) => (d.knobs as { bugs?: Record<string, unknown> }).bugs);
      expect(
        knobs.some((b) => b !== undefined && Object.keys(b).length > 0),
        `${name} turns a bug knob on`,
      ).toBe(true);
      const fixed = await loadFixed(name);
      expect(fixed.name).toBe(`${name}-fixed`);
      expect(fixed.expect.findings).toEqual([]);
      // The same scenario with the fix applied: only the bug knobs differ.
      expect(withoutBugs(fixed), `${name}: fixed twin differs beyond its bug knobs`).toEqual(withoutBugs(s));
      for (const d of Object.values(fixed.devices)) expect(d.knobs).not.toHaveProperty('bugs');
    }
  });

  describe.each(NAMES)('%s', (name) => {
    it(`produces exactly its declared findings on the sim host (seeds ${SEEDS.join(', ')})`, async () => {
      const s = await load(name);
      for (const seed of SEEDS) {
        const r = await runScenario(s, { seed, host: 'sim' });
        expect({ seed, unexpected: r.unexpected, missing: r.missing }).toEqual({ seed, unexpected: [], missing: [] });
        expect(r.ok).toBe(true);
        expect(rules(r)).toEqual([...s.expect.findings].sort());
        expect(r.hang !== null).toBe(s.expect.findings.includes('hang'));
        expectNoLeaks(r);
        expectRacesExplained(r);
      }
    });

    it('its fixed twin is clean on the sim host over the same seeds', async () => {
      const s = await loadFixed(name);
      for (const seed of SEEDS) {
        const r = await runScenario(s, { seed, host: 'sim' });
        expect({ seed, findings: r.findings }).toEqual({ seed, findings: [] });
        expect(r.ok).toBe(true);
        expect(r.hang).toBeNull();
        expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
      }
    });

    const check = WORKER[name] ?? 'exact';
    const onWorker = async (): Promise<{ s: Scenario; r: Report }> => {
      const s = await load(name);
      const hang = s.expect.findings.includes('hang');
      const r = await runScenario(s, {
        seed: 7,
        host: 'worker',
        timeScale: 0,
        ...(hang ? { watchdogMs: HANG_WATCHDOG_MS } : {}),
      });
      return { s, r };
    };
    if (typeof check === 'object') {
      it.fails(`on the worker host (known gap: ${check.knownGap})`, async () => {
        const { r } = await onWorker();
        expect(r.missing).toEqual([]);
      });
    } else if (check === 'exact') {
      it('produces exactly its declared findings on the worker host', async () => {
        const { s, r } = await onWorker();
        expect({ unexpected: r.unexpected, missing: r.missing }).toEqual({ unexpected: [], missing: [] });
        expect(r.ok).toBe(true);
        expect(r.hang !== null).toBe(s.expect.findings.includes('hang'));
        expectNoLeaks(r);
        expectRacesExplained(r);
      });
    } else {
      it('reports the race on the worker host, and nothing it does not declare', async () => {
        const { r } = await onWorker();
        expect(r.unexpected).toEqual([]);
        const races = rules(r).filter((x) => RACE_RULES.includes(x));
        expect(races.length, `a race among ${rules(r).join(', ')}`).toBeGreaterThan(0);
        expect(r.hang).toBeNull();
        expectNoLeaks(r);
        expectRacesExplained(r);
      });
    }
  });
});
