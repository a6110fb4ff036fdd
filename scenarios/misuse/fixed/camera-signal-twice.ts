// Fixed twin of ../camera-signal-twice.ts: the same scenario with the fix applied — the camera signals each fence
// once (knob signalTwice off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-signal-twice-fixed',
  description: 'camera signals each frame fence exactly once (fixed twin of misuse/camera-signal-twice)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
