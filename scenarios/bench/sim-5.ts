// The benchmark's deterministic-host scenario (`npm run bench`): 5 devices, 30 frames, small frames —
// three cameras tiled by a GPU onto a display, the unit an exploration sweep runs thousands of times.
// Not a built-in scenario (`npm start` does not run it); load it by path.
import { defineScenario } from '../../src/workers/scenario.js';

const small = { width: 64, height: 64, buffers: 4 };

export default defineScenario({
  name: 'bench-sim-5',
  description: '3 cameras (64×64) → GPU → display, 30 frames: the sim-host and exploration benchmark',
  frames: 30,
  // Sized to what 64×64 frames need: a sweep boots one kernel per run.
  kernel: { systemBytes: 4 << 20, cmaBytes: 0, carveoutBytes: 0, fences: 256, resvs: 64 },
  devices: {
    cam0: { model: 'camera', knobs: small },
    cam1: { model: 'camera', knobs: small },
    cam2: { model: 'camera', knobs: small },
    gpu0: { model: 'gpu', knobs: { inputs: 3, width: 64, height: 64 } },
    disp0: { model: 'display' },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0' },
    { from: 'cam1.out', to: 'gpu0.in1' },
    { from: 'cam2.out', to: 'gpu0.in2' },
    { from: 'gpu0.out', to: 'disp0.in' },
  ],
});
