// Fixed twin of ../display-never-release.ts: the same scenario with the fix applied — the display signals each
// release fence at the next flip (knob neverRelease off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-never-release-fixed',
  description: 'display releases each buffer at the next flip (fixed twin of misuse/display-never-release)',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
