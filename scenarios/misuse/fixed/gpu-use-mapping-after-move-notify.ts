// Fixed twin of ../gpu-use-mapping-after-move-notify.ts: the same scenario with the fix applied — the GPU drops the
// moved mapping and maps again on move_notify (knob useMappingAfterMoveNotify off); the evictions and moves still
// happen. Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-use-mapping-after-move-notify-fixed',
  description:
    'GPU re-maps its vram render target after each move_notify, evicting every 2nd job (fixed twin of misuse/gpu-use-mapping-after-move-notify)',
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
      },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: [] },
});
