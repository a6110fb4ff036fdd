// Misuse: a completion worker waits on another device's fence inside its fence signalling section
// (between dma_fence_begin_signalling and dma_fence_end_signalling). If that other fence ever depends on
// this device's fence, neither signals; lockdep's dma_fence_map annotation rejects any wait there.
// Fix: wait for dependencies before entering the signalling section.
import { defineScenario } from '../../src/workers/scenario.js';

/** gpu0's job; `bug`: the wait on its input moves inside the signalling section. */
const gpu = (bug: boolean) => [
  { op: 'fence', fence: 'job' },
  { op: 'recv', port: 'in', buf: 'frame', fence: 'ready' },
  ...(bug ? [] : [{ op: 'wait', fence: 'ready' }]),
  { op: 'beginSignalling' },
  ...(bug ? [{ op: 'wait', fence: 'ready' }] : []),
  { op: 'read', buf: 'frame' },
  { op: 'signal', fence: 'job' },
  { op: 'endSignalling' },
];

export default defineScenario({
  name: 'script-wait-in-signalling',
  description: 'gpu0 waits on cam0 fence inside its signalling section; fix: wait before begin_signalling',
  frames: 1,
  devices: {
    cam0: {
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
    gpu0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        steps: gpu(false),
        bugs: { steps: gpu(true) },
      },
    },
  },
  links: [{ from: 'cam0.out', to: 'gpu0.in', capacity: 1 }],
  expect: { findings: ['fence-wait-in-signalling'] },
});
