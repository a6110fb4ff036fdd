// GPU composition: three cameras feed a GPU that tiles their frames into one 1280×720 picture for a
// display. Every job depends on three producers' fences and publishes one for the display; the
// display's checksums must be the GPU's, and the GPU's received checksums each camera's.
import { defineScenario } from '../src/workers/scenario.js';

const camera = (busyFraction: number) => ({
  model: 'camera',
  knobs: { width: 640, height: 480, fps: 30, buffers: 4, busyFraction },
});

export default defineScenario({
  name: 'gpu-composition',
  description: '3 cameras (640×480) → GPU (tiles them, 1280×720, job queue of 2) → display',
  frames: 30,
  devices: {
    cam0: camera(0.5),
    cam1: camera(0.3),
    cam2: camera(0.7),
    gpu0: {
      model: 'gpu',
      knobs: { inputs: 3, width: 1280, height: 720, inputWidth: 640, inputHeight: 480, queueDepth: 2 },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'cam1.out', to: 'gpu0.in1', capacity: 2 },
    { from: 'cam2.out', to: 'gpu0.in2', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
});
