// Misuse: a wait with a timeout returns 0 (timed out) and the caller goes on as if the fence had
// signalled: it reads a frame still being written (so the race detector reports the read too). Fix: treat
// 0 as "not ready" — skip the frame (and fail your own fence), or wait longer.
import { defineScenario } from '../../src/workers/scenario.js';

const consumer = (check: boolean) => [
  { op: 'fence', fence: 'shown' },
  { op: 'recv', port: 'in', buf: 'frame' },
  check
    ? { op: 'waitResv', buf: 'frame', usage: 'write', timeoutNs: 1_000_000, orElse: 'stop' }
    : { op: 'waitResv', buf: 'frame', usage: 'write', timeoutNs: 1_000_000 },
  { op: 'read', buf: 'frame' },
  { op: 'signal', fence: 'shown' },
];

export default defineScenario({
  name: 'script-timeout-misread',
  description: 'disp0 reads a frame after its 1 ms wait timed out (the decode takes 200 ms); fix: 0 means not ready',
  frames: 1,
  devices: {
    dec0: {
      model: 'script',
      knobs: {
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'frame' },
          { op: 'fence', fence: 'decoded' },
          // Implicit sync: the frame travels without a fence; its WRITE fence is in the buffer's resv.
          { op: 'addFence', buf: 'frame', fence: 'decoded', usage: 'write' },
          { op: 'send', port: 'out', buf: 'frame' },
          { op: 'busy', ns: 200_000_000 },
          { op: 'write', buf: 'frame' },
          { op: 'signal', fence: 'decoded' },
        ],
      },
    },
    disp0: { model: 'script', knobs: { inputs: ['in'], steps: consumer(true), bugs: { steps: consumer(false) } } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 1 }],
  expect: { findings: ['fence-timeout-misread', 'dmabuf-hazard-war'] },
});
