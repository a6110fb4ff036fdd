/**
 * The device lock API's misuse paths that the misuse examples do not cover: a ticket used after
 * ww_acquire_fini is reported and refused with -EINVAL (misuse is data), on both hosts.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../src/workers/run-scenario.js';
import { defineScenario } from '../../src/workers/scenario.js';

const EINVAL = 22;

const afterFini = defineScenario({
  name: 'lock-after-fini',
  description: 'gpu0 locks with a ticket it already finished',
  frames: 1,
  devices: {
    gpu0: {
      model: 'script',
      knobs: {
        steps: [
          { op: 'allocate', buf: 'a' },
          { op: 'acquireInit', ctx: 't' },
          { op: 'acquireFini', ctx: 't' },
          { op: 'lock', buf: 'a', ctx: 't' },
          { op: 'lock', buf: 'a' },
          { op: 'unlock', buf: 'a' },
        ],
      },
    },
  },
  links: [],
  expect: { findings: ['ww-acquire-ctx-unknown'] },
});

describe.each(['sim', 'worker'] as const)('device lock API on the %s host', (host) => {
  it('reports a finished ticket, refuses the lock with -EINVAL, and the device goes on', async () => {
    const r = await runScenario(afterFini, { seed: 1, host });
    expect(r.ok).toBe(true);
    expect(r.findings.map((f) => f.rule)).toEqual(['ww-acquire-ctx-unknown']);
    // The refused lock, then a plain lock that works: the device was not failed by its misuse.
    expect(r.devices.gpu0).toMatchObject({ results: [-EINVAL, 0] });
    expect(r.leaks).toEqual({ pages: 0, buffers: 0, fences: 0 });
  });
});
