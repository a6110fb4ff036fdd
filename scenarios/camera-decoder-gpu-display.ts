// The full pipeline at 1080p NV12: a camera's frames go through a video decoder (each frame stands in
// for an access unit), a GPU that renders into vram and resolves into its output, and a display. Every
// link's checksums must agree end to end.
import { defineScenario } from '../src/workers/scenario.js';

const W = 1920;
const H = 1080;

export default defineScenario({
  name: 'camera-decoder-gpu-display',
  description: 'camera → video decoder → GPU (vram render targets) → display, 1920×1080 NV12, 10 frames',
  frames: 10,
  kernel: { vramBytes: 16 << 20 },
  devices: {
    cam0: { model: 'camera', knobs: { width: W, height: H, fps: 30, buffers: 4 } },
    dec0: {
      model: 'video-decoder',
      knobs: { input: true, width: W, height: H, buffers: 4, bitstreamBytes: 64 << 10, decodeNs: 6_000_000 },
    },
    gpu0: { model: 'gpu', knobs: { inputs: 1, width: W, height: H, vramBuffers: 2, queueDepth: 2 } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'dec0.in', capacity: 2 },
    { from: 'dec0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
});
