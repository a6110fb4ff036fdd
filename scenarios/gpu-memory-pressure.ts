// GPU memory pressure: the GPU renders into three render targets in a vram that holds only two, so
// allocating the third evicts the least recently used one, and every third job the GPU evicts its render
// target between render and resolve. Each move reaches the GPU as move_notify; it re-maps and resolves
// the moved bytes, so the display's checksums prove nothing was lost in the moves.
import { defineScenario } from '../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-memory-pressure',
  description: '2 cameras → GPU (3 render targets in a 1 MiB vram, evicts every 3rd) → display; move_notify',
  frames: 30,
  kernel: { vramBytes: 1 << 20 },
  devices: {
    cam0: { model: 'camera', knobs: { width: 640, height: 480, fps: 30, buffers: 4 } },
    cam1: { model: 'camera', knobs: { width: 640, height: 480, fps: 30, buffers: 4, busyFraction: 0.25 } },
    gpu0: {
      model: 'gpu',
      knobs: { inputs: 2, width: 640, height: 480, vramBuffers: 3, evictEvery: 3, queueDepth: 2 },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'cam1.out', to: 'gpu0.in1', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
});
