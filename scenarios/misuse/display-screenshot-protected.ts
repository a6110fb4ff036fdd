// Misuse: a screen-capture path that CPU-maps every other frame the display shows, behind a video decoder in
// secure mode (the secure video path: decoded pictures live in the TEE's protected,secure-video heap).
// Protected memory has no CPU path: the kernel refuses the mapping (-EINVAL: the heap's buffers have no
// mmap or vmap op), and dmafarm reports the attempt — on real hardware a driver that forces a CPU view of
// the carveout takes a firewall fault. The display's own scan-out is by DMA, which the firewall admits.
// Fix: check BufferRef.restricted and capture protected frames as black (what Android does for a secure
// layer) — fixed/ has the twin, with the same capture rate.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-screenshot-protected',
  description:
    'secure video decoder → display whose screenshots CPU-map protected frames (restricted-cpu-map); ' +
    'fix: capture protected frames as black',
  frames: 6,
  kernel: { protected: { 'secure-video': { bytes: 1 << 20 } } },
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: { secure: true, width: 160, height: 120, buffers: 4, decodeNs: 2_000_000, jitterNs: 500_000 },
    },
    disp0: { model: 'display', knobs: { screenshotEvery: 2, bugs: { screenshotProtected: true } } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['restricted-cpu-map'] },
});
