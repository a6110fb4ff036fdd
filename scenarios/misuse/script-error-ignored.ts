// Misuse: the producer's job failed (its fence completes with -EIO) and the consumer uses the buffer
// anyway: a wait returns > 0 for a failed fence too; only dma_fence_get_status tells. Fix: check the status
// after the wait, drop the frame, and pass the error on to your own fence.
import { defineScenario } from '../../src/workers/scenario.js';

const consumer = (check: boolean) => [
  { op: 'fence', fence: 'shown' },
  { op: 'recv', port: 'in', buf: 'frame', fence: 'decoded' },
  check ? { op: 'wait', fence: 'decoded', orElse: 'stop' } : { op: 'wait', fence: 'decoded' },
  { op: 'read', buf: 'frame' },
  { op: 'signal', fence: 'shown' },
];

export default defineScenario({
  name: 'script-error-ignored',
  description: 'disp0 reads a frame whose decode fence failed with -EIO; fix: check the status, propagate',
  frames: 1,
  devices: {
    dec0: {
      model: 'script',
      knobs: {
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'frame' },
          { op: 'fence', fence: 'decoded' },
          { op: 'signal', fence: 'decoded', error: -5 },
          { op: 'send', port: 'out', buf: 'frame', fence: 'decoded' },
        ],
      },
    },
    disp0: { model: 'script', knobs: { inputs: ['in'], steps: consumer(true), bugs: { steps: consumer(false) } } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 1 }],
  expect: { findings: ['fence-error-ignored'] },
});
