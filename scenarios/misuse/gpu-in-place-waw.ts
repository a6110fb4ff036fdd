// Misuse: a GPU that first draws its composition in place, into the camera's buffer (then copies it to
// its own output for the display), without waiting for the camera's fence. Two producers now write the
// same bytes: the camera (frame N) and the GPU's job, which is not ordered after the camera's write. They did synchronise, but only up to an older point: the
// GPU published its job fence in the buffer's resv after the camera published its own, so it holds the
// camera's clock from before the camera's write (dmabuf-hazard-waw). Its reads of the frame, before it
// writes, race too (dmabuf-hazard-raw). The camera signals before it sends, so no byte goes wrong here;
// the camera's reuse of the buffer waits for the GPU's WRITE fence, so that side is ordered.
// Fix: a second writer waits on the first writer's fence before writing — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-in-place-waw',
  description:
    'camera → in-place GPU that skips the camera fence: two writers of one buffer, ordered only up to ' +
    'an older point (dmabuf-hazard-waw, after the RAW of its reads); fix: wait on the frame fence',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
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
  expect: { findings: ['dmabuf-hazard-raw', 'dmabuf-hazard-waw'] },
});
