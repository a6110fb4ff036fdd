// Misuse: the in-place GPU of gpu-in-place-waw behind a camera that synchronises explicitly (its write
// fence travels only with the frame, never in the resv). Now the two writers of the buffer share nothing
// at all — no fence waited on, no resv lock taken after the other — like two GPU queues writing the same
// tiles with no semaphore between them: dmabuf-hazard-wrw (after the RAW of the GPU's reads).
// Fix: make one writer wait on the other's fence — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-in-place-wrw',
  description:
    'explicit-sync camera → in-place GPU that skips the camera fence: two writers that never ' +
    'synchronised (dmabuf-hazard-wrw, after the RAW of its reads); fix: wait on the frame fence',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, resvUsage: 'none' } },
    gpu0: {
      model: 'gpu',
      knobs: { inputs: 1, width: 160, height: 120, queueDepth: 2, inPlace: true, bugs: { skipFenceWait: true } },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: ['dmabuf-hazard-raw', 'dmabuf-hazard-wrw'] },
});
