// Fixed twin of ../camera-skip-release-wait.ts: the same scenario with the fix applied — the camera waits on a
// buffer's READ fences before reusing it (knob skipReleaseWait off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-skip-release-wait-fixed',
  description:
    'camera waits for the display release fences before reusing a buffer (fixed twin of misuse/camera-skip-release-wait)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
