// Misuse: a display that waits on the fence it was handed with the previous frame instead of this one's
// (an off-by-one in a fence queue). It is ordered after the camera's frame N−1, not after frame N's
// write, so its scan-out of frame N races with it. The camera signals before it sends, so every frame
// happens to be complete; the race is reported anyway, as fence-wait-stale: the display did wait on the
// camera's timeline, for an older job.
// Fix: wait on the fence that comes with the frame — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-wait-previous-fence',
  description:
    'camera → display that waits on the previous frame fence (fence-wait-stale); ' +
    'fix: wait on the fence that comes with this frame',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60, bugs: { waitPreviousFence: true } } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['fence-wait-stale'] },
});
