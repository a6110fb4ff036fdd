// Video playback: a video decoder feeds itself a bitstream and decodes NV12 frames to a display. The
// decoder sends each frame as soon as its decode is queued, so the display must wait on the decode
// fence: the clean baseline for fence-based producers.
import { defineScenario } from '../src/workers/scenario.js';

export default defineScenario({
  name: 'video-playback',
  description: 'video decoder → display, 1280×720 NV12 at 30 fps, decode fences sent ahead of the picture',
  frames: 30,
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: { width: 1280, height: 720, fps: 30, buffers: 4, decodeNs: 8_000_000, jitterNs: 2_000_000 },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
});
