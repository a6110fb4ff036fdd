/**
 * The device lock API beyond the misuse examples, on both hosts: Wait-Die between two devices that lock
 * the same two buffers in opposite orders (the younger ticket backs off with -EDEADLK, the older waits, both
 * finish); a lock held across a wait that its waiter must end (a hang with its cycle, never a silent hang
 * of the kernel thread); a device returning with a lock held (device-exit-locked); and a ticket used after
 * ww_acquire_fini, reported and refused with -EINVAL (misuse is data).
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';

const EINVAL = 22;

/** One script device, gpu0, running `steps`. */
const oneScript = (name: string, steps: Record<string, unknown>[], findings: string[] = []) =>
  defineScenario({
    name,
    frames: 1,
    devices: { gpu0: { model: 'script', knobs: { steps } } },
    links: [],
    expect: { findings },
  });

/** gpu0 locks with a ticket it already finished, then without one. */
const afterFini = oneScript(
  'lock-after-fini',
  [
    { op: 'allocate', buf: 'a' },
    { op: 'acquireInit', ctx: 't' },
    { op: 'acquireFini', ctx: 't' },
    { op: 'lock', buf: 'a', ctx: 't' },
    { op: 'lock', buf: 'a' },
    { op: 'unlock', buf: 'a' },
  ],
  ['ww-acquire-ctx-unknown'],
);

const EDEADLK = 35;

/**
 * old0 locks a, then sends a and b to young0 and waits for its reply; young0 must map a on receipt, which
 * needs a's lock: a deadlock through a lock held across a wait (a frame) that the lock's waiter provides.
 */
const heldAcrossRecv = defineScenario({
  name: 'lock-held-across-recv',
  description: 'old0 holds the lock of a buffer while it waits for a frame from the device that must map it',
  frames: 1,
  devices: {
    old0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'a' },
          { op: 'lock', buf: 'a' },
          { op: 'send', port: 'out', buf: 'a' },
          { op: 'recv', port: 'in', buf: 'reply' },
          { op: 'unlock', buf: 'a' },
        ],
      },
    },
    young0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        outputs: ['out'],
        steps: [
          { op: 'recv', port: 'in', buf: 'a' },
          { op: 'allocate', buf: 'reply' },
          { op: 'send', port: 'out', buf: 'reply' },
        ],
      },
    },
  },
  links: [
    { from: 'old0.out', to: 'young0.in', capacity: 1 },
    { from: 'young0.out', to: 'old0.in', capacity: 1 },
  ],
});

/** old0 holds a's lock while it lends a to young0, whose receipt (attach + map) needs that lock. */
const lentLocked = defineScenario({
  name: 'lent-while-locked',
  description: 'young0 imports a buffer old0 holds locked for a moment',
  frames: 1,
  devices: {
    old0: {
      model: 'script',
      knobs: {
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'a' },
          { op: 'lock', buf: 'a' },
          { op: 'send', port: 'out', buf: 'a' },
          { op: 'busy', ns: 1_000_000 },
          { op: 'unlock', buf: 'a' },
        ],
      },
    },
    young0: { model: 'script', knobs: { inputs: ['in'], steps: [{ op: 'recv', port: 'in', buf: 'a' }] } },
  },
  links: [{ from: 'old0.out', to: 'young0.in', capacity: 1 }],
});

describe.each(['sim', 'worker'] as const)('device lock API on the %s host', (host) => {
  it('importing a buffer another device holds locked waits for the unlock, then succeeds', async () => {
    for (const seed of host === 'sim' ? [1, 2, 3, 4, 5] : [1]) {
      const r = await runScenario(lentLocked, { seed, host, timeScale: 0 });
      expect({ seed, findings: r.findings, hang: r.hang }).toEqual({ seed, findings: [], hang: null });
      expect(r.devices.young0).toMatchObject({ frames: 1 });
      expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
    }
  });

  it('a lock held across a wait its waiter must end is a hang with the cycle named, and the run ends', async () => {
    // The kernel thread does not sleep on old0's lock for young0's map (it would stop the watchdog with it):
    // young0 waits for the lock on its own thread, where the wait-for table sees it.
    const r = await runScenario(heldAcrossRecv, { seed: 1, host, watchdogMs: 2500 });
    // old0 is stopped holding a's lock: the hang is its finding; the lock is released at teardown.
    expect(r.findings.map((f) => f.rule).sort()).toEqual(['hang']);
    expect(r.hang?.cycle).toBe(true);
    expect(r.hang?.chain.join('; ')).toMatch(
      /old0 waits for a frame from young0; young0 waits for the resv lock of buffer \d+ \(held by old0\)/,
    );
    expect(r.hang?.timedOut).toEqual([]);
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('a device that returns still holding a resv lock is reported, and the lock is released at teardown', async () => {
    const s = oneScript('exit-locked', [
      { op: 'allocate', buf: 'a' },
      { op: 'lock', buf: 'a' },
    ]);
    const r = await runScenario(s, { seed: 1, host });
    expect(r.findings.map((f) => [f.rule, f.device])).toEqual([['device-exit-locked', 'gpu0']]);
    // Released for it, the buffer could be freed: nothing leaks.
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });

  it('Wait-Die between two devices: the younger ticket backs off with -EDEADLK, the older waits, both finish', async () => {
    // The correct protocol of the wrong-backoff example: gpu0 holds the older ticket, disp0 the younger,
    // and the links order the locks so that each asks for the buffer the other holds.
    const abba = await loadScenario('scenarios/misuse/fixed/script-no-backoff.ts');
    for (const seed of host === 'sim' ? [1, 2, 3, 4, 5] : [1]) {
      const r = await runScenario(abba, { seed, host });
      expect({ seed, findings: r.findings }).toEqual({ seed, findings: [] });
      expect(r.hang).toBeNull();
      expect(r.devices.gpu0).toMatchObject({ results: [0, 0] });
      expect(r.devices.disp0).toMatchObject({ results: [0, -EDEADLK, 0, 0] });
      expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
    }
  });

  it('reports a finished ticket, refuses the lock with -EINVAL, and the device goes on', async () => {
    const r = await runScenario(afterFini, { seed: 1, host });
    expect(r.ok).toBe(true);
    expect(r.findings.map((f) => f.rule)).toEqual(['ww-acquire-ctx-unknown']);
    // The refused lock, then a plain lock that works: the device was not failed by its misuse.
    expect(r.devices.gpu0).toMatchObject({ results: [-EINVAL, 0] });
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});
