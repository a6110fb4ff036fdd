// Misuse: a display that never signals its release fences. The camera waits on a buffer's READ fences
// before it reuses it, so when it comes back to its first buffer it waits forever; the display then waits
// for a frame that never comes. A hang, with both devices named: the camera in the fence wait, the display
// in recv on an empty link. The watchdog times the release fence out and the run goes on, until the
// display hangs the camera again on the next one: guilty twice, it ends the run.
// Fix: signal the release fence of a buffer when it leaves the screen (at the next flip, and at the end).
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-never-release',
  description:
    'display never signals its release fences; the camera cannot reuse a buffer (hang); fix: release at flip',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60, bugs: { neverRelease: true } } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['hang'] },
});
