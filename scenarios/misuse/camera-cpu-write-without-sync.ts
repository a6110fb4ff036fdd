// Misuse: a camera that renders with the CPU through a cached mapping and skips DMA_BUF_SYNC_END after
// writing. The last lines it wrote are still dirty in the (non-coherent) CPU cache when the display reads
// memory by DMA, so the display shows stale bytes. Every access is correctly ordered by fences, so no race
// is reported. Two rules see it: the camera sends each frame with its CPU writes still inside an open
// SYNC START bracket (cpu-sync-end-missing, on every frame), and the content check — the display's
// checksums against what the camera meant to write — shows the damage: its first use of each buffer maps
// it, and mapping cleans the cache, so wrong bytes start once buffers are reused (frame 4 on).
// Fix: bracket CPU access with DMA_BUF_IOCTL_SYNC START and END (cpuSync) — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-cpu-write-without-sync',
  description:
    'camera renders with the CPU and skips SYNC END: frames are sent with the bracket open ' +
    '(cpu-sync-end-missing) and the display reads stale memory (content-mismatch); ' +
    'fix: DMA_BUF_IOCTL_SYNC END after the CPU writes',
  frames: 8,
  devices: {
    cam0: {
      model: 'camera',
      knobs: { width: 160, height: 120, fps: 30, buffers: 4, cpuRender: true, bugs: { writeWithoutSync: true } },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['content-mismatch', 'cpu-sync-end-missing'] },
});
