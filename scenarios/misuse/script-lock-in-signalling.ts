// Misuse: a device takes a buffer's dma_resv lock inside its fence signalling section. Other drivers wait
// on fences while holding resv locks (the kernel primes lockdep with dma_resv_lock → dma_fence_map), so a
// signalling path that needs one can deadlock against any of them; the same holds for allocating memory.
// Fix: take the lock (and add the fence) before dma_fence_begin_signalling.
import { defineScenario } from '../../src/workers/scenario.js';

/** gpu0's job; `bug`: locking and adding the fence happen inside the signalling section. */
const job = (bug: boolean) => {
  const publish = [
    { op: 'lock', buf: 'out' },
    { op: 'reserve', buf: 'out', n: 1 },
    { op: 'addFenceLocked', buf: 'out', fence: 'job', usage: 'write' },
    { op: 'unlock', buf: 'out' },
  ];
  return [
    { op: 'allocate', buf: 'out' },
    { op: 'fence', fence: 'job' },
    ...(bug ? [] : publish),
    { op: 'beginSignalling' },
    ...(bug ? publish : []),
    { op: 'write', buf: 'out' },
    { op: 'signal', fence: 'job' },
    { op: 'endSignalling' },
  ];
};

export default defineScenario({
  name: 'script-lock-in-signalling',
  description: 'gpu0 locks a resv inside its signalling section; fix: lock and add the fence before it',
  frames: 1,
  devices: {
    gpu0: {
      model: 'script',
      knobs: {
        steps: job(false),
        bugs: { steps: job(true) },
      },
    },
  },
  links: [],
  expect: { findings: ['fence-signal-path-lock'] },
});
