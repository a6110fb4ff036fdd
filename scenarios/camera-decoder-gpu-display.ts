// The full pipeline at 1080p NV12, as on a phone or set-top SoC: a camera's frames go through a video
// decoder (each frame stands in for an access unit), a GPU and a display, all in system memory — an SoC's
// GPU has no VRAM and renders straight into the buffers the display scans out (render targets in
// device-local memory, eviction and move_notify are gpu-memory-pressure's subject). Every link's
// checksums must agree end to end.
import { defineScenario } from '../src/workers/scenario.js';

const W = 1920;
const H = 1080;

export default defineScenario({
  name: 'camera-decoder-gpu-display',
  description: 'camera → video decoder → GPU → display, 1920×1080 NV12 in system memory, 10 frames',
  frames: 10,
  devices: {
    cam0: { model: 'camera', knobs: { width: W, height: H, fps: 30, buffers: 4 } },
    dec0: {
      model: 'video-decoder',
      knobs: { input: true, width: W, height: H, buffers: 4, bitstreamBytes: 64 << 10, decodeNs: 6_000_000 },
    },
    gpu0: { model: 'gpu', knobs: { inputs: 1, width: W, height: H, queueDepth: 2 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'dec0.in', capacity: 2 },
    { from: 'dec0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
});
