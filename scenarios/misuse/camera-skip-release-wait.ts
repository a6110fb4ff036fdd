// Misuse: a camera that recycles a buffer without waiting for its readers. The display publishes a READ
// (release) fence on every buffer it shows and signals it at the next flip; the camera writes frame N+4
// into frame N's buffer without waiting on it. Here the display has already scanned frame N out when the
// camera comes back, so the picture is right, but nothing orders the camera's write after the display's
// read: a write-after-read race on every recycled buffer. With a slower display or a smaller pool it
// tears the frame on screen.
// Fix: before writing into a pooled buffer, wait on its READ fences (waitResv(buf, READ)) — fixed/ twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-skip-release-wait',
  description:
    'camera recycles buffers without waiting for the display release fences (WAR race); ' +
    'fix: waitResv(buf, READ) before reuse',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, bugs: { skipReleaseWait: true } } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['dmabuf-hazard-war'] },
});
