// Misuse: a wait with a timeout returns 0 (timed out) and the caller goes on as if the fence had
// signalled: it reads a frame still being written (so the race detector reports the read too). Fix: treat
// 0 as "not ready" — skip the frame (and fail your own fence), or wait longer.
//
// The decoder finishes the frame only once the display hands it back (or ends): the display's 1 ms wait
// therefore always times out first, on both hosts and at any speed — the order the bug needs is made,
// not hoped for from a decode that takes long enough.
import { defineScenario } from '../../src/workers/scenario.js';

const consumer = (check: boolean) => [
  { op: 'fence', fence: 'shown' },
  { op: 'recv', port: 'in', buf: 'frame' },
  check
    ? { op: 'waitResv', buf: 'frame', usage: 'write', timeoutNs: 1_000_000, orElse: 'stop' }
    : { op: 'waitResv', buf: 'frame', usage: 'write', timeoutNs: 1_000_000 },
  { op: 'read', buf: 'frame' },
  { op: 'send', port: 'out', buf: 'frame' },
  { op: 'signal', fence: 'shown' },
];

export default defineScenario({
  name: 'script-timeout-misread',
  description: 'disp0 reads a frame after its 1 ms wait timed out (still being decoded); fix: 0 means not ready',
  frames: 1,
  devices: {
    dec0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'frame' },
          { op: 'fence', fence: 'decoded' },
          // Implicit sync: the frame travels without a fence; its WRITE fence is in the buffer's resv.
          { op: 'addFence', buf: 'frame', fence: 'decoded', usage: 'write' },
          { op: 'send', port: 'out', buf: 'frame' },
          // Still decoding until the display gives the frame back, or ends without it (the fix stops).
          { op: 'recv', port: 'in', buf: 'frame', atEnd: 'continue' },
          { op: 'write', buf: 'frame' },
          { op: 'signal', fence: 'decoded' },
        ],
      },
    },
    disp0: {
      model: 'script',
      knobs: { inputs: ['in'], outputs: ['out'], steps: consumer(true), bugs: { steps: consumer(false) } },
    },
  },
  links: [
    { from: 'dec0.out', to: 'disp0.in', capacity: 1 },
    { from: 'disp0.out', to: 'dec0.in', capacity: 1 },
  ],
  expect: { findings: ['fence-timeout-misread', 'dmabuf-hazard-war'] },
});
