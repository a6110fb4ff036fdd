// Misuse: a camera that signals every frame's fence twice (say an IRQ handler and a timeout path that both
// complete the job). The kernel refuses the second signal with -EINVAL, as dma_fence_signal does, and the
// runtime reports it: one finding for the site, with the number of times it fired. Nothing else goes
// wrong on this run — the first signal came after the write — which is why it must be reported.
// Fix: exactly one path signals a fence (the other checks the fence's status first) — fixed/ twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'camera-signal-twice',
  description: 'camera signals each frame fence twice (fence-double-signal); fix: signal exactly once',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, bugs: { signalTwice: true } } },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['fence-double-signal'] },
});
