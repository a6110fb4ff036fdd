// Misuse: a fence added to a buffer's dma_resv without holding its lock and without reserving a slot
// (dma_resv_add_fence asserts the lock; adding without dma_resv_reserve_fences is a BUG_ON in the kernel).
// Fix: lock, reserve, add, unlock — or the one-call addFence that does all four.
import { defineScenario } from '../../src/workers/scenario.js';

const job = (locked: boolean) => [
  { op: 'allocate', buf: 'out' },
  { op: 'fence', fence: 'job' },
  ...(locked
    ? [
        { op: 'lock', buf: 'out' },
        { op: 'reserve', buf: 'out', n: 1 },
        { op: 'addFenceLocked', buf: 'out', fence: 'job', usage: 'write' },
        { op: 'unlock', buf: 'out' },
      ]
    : [{ op: 'addFenceLocked', buf: 'out', fence: 'job', usage: 'write' }]),
  { op: 'write', buf: 'out' },
  { op: 'signal', fence: 'job' },
];

export default defineScenario({
  name: 'script-add-fence-unlocked',
  description: 'gpu0 adds its fence to a resv without the lock or a reserved slot; fix: lock, reserve, add, unlock',
  frames: 1,
  devices: { gpu0: { model: 'script', knobs: { steps: job(true), bugs: { steps: job(false) } } } },
  links: [],
  expect: { findings: ['lockdep-assert-held', 'resv-add-without-reserve'] },
});
