// Fixed twin of ../display-skip-fence-wait-camera.ts: the same scenario with the fix applied — the display waits on
// the frame fence before scan-out (knob skipFenceWait off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-skip-fence-wait-camera-fixed',
  description:
    'camera → display that waits on each frame fence before scan-out (fixed twin of misuse/display-skip-fence-wait-camera)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
