// Misuse: a camera that synchronises explicitly adds its write fence to the buffer's dma_resv as
// DMA_RESV_USAGE_BOOKKEEP (as explicit-sync drivers do: the resv keeps it for memory management only) and
// hands the fence over with the frame; the display ignores that fence and relies on implicit sync,
// waiting for the buffer's WRITE fences. No implicit wait includes BOOKKEEP (include/linux/dma-resv.h:
// "no implicit sync"), so the display's read is not ordered after the camera's write:
// resv-bookkeep-nosync on every run, although every frame happens to be complete.
// Fix: the consumer of an explicitly synchronised buffer waits on the fence it was given — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-implicit-sync-bookkeep',
  description:
    'explicit-sync camera (fence in the resv as BOOKKEEP) → display that relies on implicit sync ' +
    '(resv-bookkeep-nosync); fix: wait on the frame fence',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, resvUsage: 'bookkeep' } },
    disp0: { model: 'display', knobs: { refreshHz: 60, bugs: { ignoreFrameFence: true } } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['resv-bookkeep-nosync'] },
});
