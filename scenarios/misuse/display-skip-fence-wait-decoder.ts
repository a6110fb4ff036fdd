// Misuse: a display that scans out without waiting for the frame's fence, behind a video decoder that sends
// each frame as soon as its decode is queued (the fence signals when the picture is written). The display
// reads buffers the decoder has not written yet: it shows the previous picture or a half-decoded one
// (content-mismatch), and the happens-before detector flags both orders of the unordered pair — the
// display's scan-out after the decoder's write (RAW) and the decoder's write after the display's scan-out
// (WAR). The display did add its release fence to the buffer's resv, which orders it after the decoder's
// addFence, but not after the decode: a shared resv lock is no fence wait.
// Fix: wait on the frame's fence (or the buffer's WRITE fences) before scan-out — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-skip-fence-wait-decoder',
  description:
    'video decoder → display that skips the fence wait: scans out undecoded pictures (RAW+WAR race, ' +
    'content-mismatch); fix: wait on the frame fence before scan-out',
  frames: 8,
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: { width: 160, height: 120, fps: 30, buffers: 4, decodeNs: 8_000_000, jitterNs: 1_000_000 },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60, bugs: { skipFenceWait: true } } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['content-mismatch', 'dmabuf-hazard-raw', 'dmabuf-hazard-war'] },
});
