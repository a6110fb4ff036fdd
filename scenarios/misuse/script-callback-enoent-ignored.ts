// Misuse: an ignored -ENOENT from dma_fence_add_callback. gpu0 renders, signals its fence, then sends the
// frame; by the time disp0 registers a callback on that fence it has signalled, so the add returns -ENOENT
// and the callback will never run — but disp0 waits for it anyway (on hardware: forever). The link orders
// the signal before the registration, so every run takes this path.
// Fix: -ENOENT means "already signalled": do the completion's work now instead of waiting for it.
import { defineScenario } from '../../src/workers/scenario.js';

const consumer = (checksEnoent: boolean) => [
  { op: 'recv', port: 'in', buf: 'frame', fence: 'done' },
  { op: 'addCallback', fence: 'done', cb: 'flip' },
  checksEnoent ? { op: 'waitCallback', cb: 'flip', onEnoent: 'proceed' } : { op: 'waitCallback', cb: 'flip' },
  { op: 'read', buf: 'frame' },
];

export default defineScenario({
  name: 'script-callback-enoent-ignored',
  description: 'disp0 waits for a fence callback that add_callback refused with -ENOENT; fix: run it at once',
  frames: 1,
  devices: {
    gpu0: {
      model: 'script',
      knobs: {
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'frame' },
          { op: 'fence', fence: 'done' },
          { op: 'write', buf: 'frame' },
          { op: 'signal', fence: 'done' },
          { op: 'send', port: 'out', buf: 'frame', fence: 'done' },
        ],
      },
    },
    disp0: { model: 'script', knobs: { inputs: ['in'], steps: consumer(true), bugs: { steps: consumer(false) } } },
  },
  links: [{ from: 'gpu0.out', to: 'disp0.in', capacity: 1 }],
  expect: { findings: ['fence-callback-enoent-ignored'] },
});
