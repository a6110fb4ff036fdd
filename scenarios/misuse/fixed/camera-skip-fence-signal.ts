// Fixed twin of ../camera-skip-fence-signal.ts: the same scenario with the fix applied — the camera signals every
// fence (knob skipFenceSignal off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-skip-fence-signal-fixed',
  description: 'camera signals every frame fence (fixed twin of misuse/camera-skip-fence-signal)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
