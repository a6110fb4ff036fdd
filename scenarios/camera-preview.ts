// Camera preview: a camera streams NV12 frames straight to a display. The clean baseline: explicit
// write fences from the camera, release fences from the display, no findings.
import { defineScenario } from '../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-preview',
  description: 'camera → display, 640×480 NV12 at 30 fps, 4 buffers, explicit and implicit sync',
  frames: 30,
  devices: {
    cam0: { model: 'camera', knobs: { width: 640, height: 480, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
});
