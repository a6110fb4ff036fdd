// Misuse: a camera that renders with the CPU but brackets the writes with DMA_BUF_IOCTL_SYNC START/END
// and the READ flag. The kernel accepts any flags (it keeps no bracket state), but the flags say what
// the CPU does: START(READ) waits only for the buffer's writers, not its readers, and tells the exporter
// there will be no dirty lines. Here the camera had already waited for the display's release fences and
// arm64 cleans at END whatever the direction, so the frames are right: cpu-access-flags names the bug
// before a driver that trusts the flags (or a reader still in flight) turns it into wrong bytes.
// Fix: START/END with WRITE (or RW) around CPU writes — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-cpu-sync-read-flags',
  description:
    'camera writes with the CPU inside a SYNC START(READ) bracket (cpu-access-flags); ' +
    'fix: bracket CPU writes with DMA_BUF_SYNC_WRITE',
  frames: 8,
  devices: {
    cam0: {
      model: 'camera',
      knobs: { width: 160, height: 120, fps: 30, buffers: 4, cpuRender: true, bugs: { syncReadOnly: true } },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['cpu-access-flags'] },
});
