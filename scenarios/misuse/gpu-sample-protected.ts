// Misuse: a GPU compositor in the secure video path. The decoder writes its pictures into the TEE's
// protected,secure-video heap, whose firewall admits the decoder, the display and the TEE — not the GPU.
// The kernel lets the GPU attach and map (tee_heap.c does no device check; the hardware firewall is the
// guard), so dmafarm reports the attach, and every read the GPU makes sees zeros: it composes garbage, and
// what it read differs from what the decoder wrote (content-mismatch).
// Fix: a compositor checks BufferRef.restricted and never imports a protected layer — it composes it as
// black (or leaves it to a display overlay plane); or, where the GPU has a protected mode, the scenario
// admits it in kernel.protected['secure-video'].firewall — fixed/ has the first.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'gpu-sample-protected',
  description:
    'secure video decoder → GPU that samples the protected pictures (restricted-attach, it reads zeros: ' +
    'content-mismatch) → display; fix: compose protected layers as black without importing them',
  frames: 6,
  kernel: { protected: { 'secure-video': { bytes: 1 << 20 } } },
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: { secure: true, width: 160, height: 120, buffers: 4, decodeNs: 2_000_000, jitterNs: 500_000 },
    },
    gpu0: {
      model: 'gpu',
      knobs: { inputs: 1, width: 160, height: 120, buffers: 4, jobNs: 1_000_000, bugs: { sampleProtected: true } },
    },
    disp0: { model: 'display', knobs: {} },
  },
  links: [
    { from: 'dec0.out', to: 'gpu0.in0', capacity: 2 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
  ],
  expect: { findings: ['content-mismatch', 'restricted-attach'] },
});
