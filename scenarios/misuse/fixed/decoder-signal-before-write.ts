// Fixed twin of ../decoder-signal-before-write.ts: the same scenario with the fix applied — the decoder signals its
// fence after the picture is written (knob signalBeforeWrite off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'decoder-signal-before-write-fixed',
  description:
    'video decoder signals each fence after the picture is written (fixed twin of misuse/decoder-signal-before-write)',
  frames: 8,
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: {
        width: 160,
        height: 120,
        fps: 30,
        buffers: 4,
        decodeNs: 8_000_000,
        jitterNs: 1_000_000,
      },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: [] },
});
