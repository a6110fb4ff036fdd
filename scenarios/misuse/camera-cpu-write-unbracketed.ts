// Misuse: a camera that renders with the CPU through a vmap without DMA_BUF_IOCTL_SYNC(START|WRITE) first
// (it does end the access with SYNC END). The kernel keeps no bracket state and accepts it; on this
// pipeline no byte goes wrong either (arm64's START for writing does no cache maintenance, and the camera
// already waited for the buffer's readers), so only the bracket check sees it: every CPU write outside a
// START/END bracket is cpu-access-unbracketed. On another SoC, or with a reader still in flight, the same
// code shows stale or torn bytes.
// Fix: DMA_BUF_IOCTL_SYNC(START|WRITE) before the CPU writes — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-cpu-write-unbracketed',
  description:
    'camera renders with the CPU without SYNC START: CPU writes outside a bracket (cpu-access-unbracketed); ' +
    'fix: DMA_BUF_IOCTL_SYNC START before the CPU writes',
  frames: 8,
  devices: {
    cam0: {
      model: 'camera',
      knobs: { width: 160, height: 120, fps: 30, buffers: 4, cpuRender: true, bugs: { skipSyncStart: true } },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['cpu-access-unbracketed'] },
});
