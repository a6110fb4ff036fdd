// Misuse: a GPU with render targets in vram (a dynamic exporter that may move them) that ignores
// move_notify. Every 2nd job it evicts its render target between render and resolve; the exporter moves
// the bytes and invalidates the GPU's mapping, and the GPU keeps writing through the old one — into pages
// the buffer left, and its resolve reads from them. Reported as dma-write-after-move-notify and
// dma-read-after-move-notify (one finding each, with how many accesses). The frames
// on screen are still right on this run only because nothing else allocates the vacated vram pages; on a
// real device the writes land in whatever buffer gets them next.
// Fix: on move_notify drop the mapping and map again before the next access — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-use-mapping-after-move-notify',
  description:
    'GPU keeps writing a vram render target through its mapping after move_notify ' +
    '(dma-write-after-move-notify, dma-read-after-move-notify); fix: unmap and re-map on move_notify',
  frames: 8,
  kernel: { vramBytes: 256 << 10 },
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    gpu0: {
      model: 'gpu',
      knobs: {
        inputs: 1,
        width: 160,
        height: 120,
        vramBuffers: 2,
        evictEvery: 2,
        queueDepth: 2,
        bugs: { useMappingAfterMoveNotify: true },
      },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: ['dma-read-after-move-notify', 'dma-write-after-move-notify'] },
});
