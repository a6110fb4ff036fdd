// Misuse: a camera that never signals frame 3's fence (a dropped completion). The display waits on it
// forever; the camera fills the link and blocks sending. Nothing can run: a hang, reported with what each
// device was blocked in (the display in the fence wait, the camera in send). The watchdog then times the
// fence out (-ETIME, as a GPU reset would): the display does not show that frame, and the run goes on.
// Because the fence was signalled by the timeout, it is reported as the hang, not as fence-never-signalled.
// Fix: every fence a device creates is signalled, with an error (dma_fence_set_error) if the job failed.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-skip-fence-signal',
  description: 'camera never signals frame 3 fence; the display waits forever (hang); fix: signal every fence',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, bugs: { skipFenceSignal: 3 } } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['hang'] },
});
