// Fixed twin of ../gpu-never-signal.ts: the same scenario with the fix applied — every GPU job signals its fence
// (knob neverSignal off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-never-signal-fixed',
  description: 'camera → GPU → display, every job fence signalled (fixed twin of misuse/gpu-never-signal)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    gpu0: { model: 'gpu', knobs: { inputs: 1, width: 160, height: 120, queueDepth: 2 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: [] },
});
