// Misuse: a GPU whose job 3 never completes (a lost interrupt). Its fence is both the frame's fence for
// the display and a READ fence on the camera's input buffer, so the hang spreads both ways: the display
// waits on the job, the camera waits to reuse the buffer the job read, the GPU blocks sending on a full
// link. Reported as one hang naming all three and what each was blocked in; the watchdog then times the
// job out (-ETIME), the display skips that frame and the run goes on.
// Fix: a job always completes its fence — on a timeout, with an error (drm_sched's TDR does exactly that).
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-never-signal',
  description:
    'camera → GPU → display, GPU job 3 fence never signalled; camera and display wait on it (hang); ' +
    'fix: complete every job fence, with an error on timeout',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4 } },
    gpu0: { model: 'gpu', knobs: { inputs: 1, width: 160, height: 120, queueDepth: 2, bugs: { neverSignal: 3 } } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [
    { from: 'cam0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: ['hang'] },
});
