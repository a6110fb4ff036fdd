// Misuse: the same display bug (scan-out without waiting for the frame's fence), behind a camera that
// signals each frame's fence before it sends the frame. By the time the display reads, the frame is always
// complete, so no byte on screen is wrong and no content check can see anything. The race is still reported
// on every run: the display's read is not ordered after the camera's write by any fence it waited on, and
// happens-before finds that whatever the timing. A faster camera, a slower one, or a producer that sends
// early (display-skip-fence-wait-decoder) turns the same code into torn frames.
// Fix: wait on the frame's fence (or the buffer's WRITE fences) before scan-out — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-skip-fence-wait-camera',
  description:
    'camera → display that skips the fence wait; every frame happens to be complete, the RAW race is ' +
    'reported anyway; fix: wait on the frame fence before scan-out',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    disp0: { model: 'display', knobs: { refreshHz: 60, bugs: { skipFenceWait: true } } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['dmabuf-hazard-raw'] },
});
