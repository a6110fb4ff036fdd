// Fixed twin of ../camera-cpu-write-without-sync.ts: the same scenario with the fix applied — the camera ends CPU
// access with DMA_BUF_IOCTL_SYNC END (knob writeWithoutSync off); it still renders with the CPU. Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-cpu-write-without-sync-fixed',
  description:
    'camera renders with the CPU between SYNC START and SYNC END (fixed twin of misuse/camera-cpu-write-without-sync)',
  frames: 8,
  devices: {
    cam0: {
      model: 'camera',
      knobs: { width: 160, height: 120, fps: 30, buffers: 4, cpuRender: true },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
