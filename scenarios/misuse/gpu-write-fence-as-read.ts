// Misuse: a GPU that publishes its render job's fence on the buffer it renders into as
// DMA_RESV_USAGE_READ instead of WRITE. A consumer using implicit sync waits only for WRITE fences, so it
// would scan out a frame still being rendered; this display happens to wait on the explicit frame fence,
// so nothing races here, and the check at the GPU's own writes names it: resv-usage-downgrade (the job
// writes a buffer its pending fence sits on only as READ).
// Fix: add the fence of a job that writes the buffer as DMA_RESV_USAGE_WRITE — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-write-fence-as-read',
  description:
    'camera → GPU that adds its render fence to the output as READ → display (resv-usage-downgrade); ' +
    "fix: add a writing job's fence as WRITE",
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    gpu0: {
      model: 'gpu',
      knobs: { inputs: 1, width: 160, height: 120, queueDepth: 2, bugs: { writeFenceAsRead: true } },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: ['resv-usage-downgrade'] },
});
