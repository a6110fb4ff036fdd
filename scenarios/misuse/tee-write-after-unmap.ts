// Misuse: a TEE that writes a key through its DMA mapping after unmapping it — a use after free of the
// mapping. The runtime refuses the access (the write does not land) and reports dma-access-unmapped, one
// finding for the site with the number of times it fired.
// Fix: finish every access before dma_buf_unmap_attachment; map again to write again — fixed/ twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'tee-write-after-unmap',
  description: 'TEE writes through its mapping after unmapping it (dma-access-unmapped); fix: unmap last',
  devices: {
    tee0: { model: 'tee', knobs: { keys: 4, keyBytes: 4096, bugs: { writeAfterUnmap: true } } },
  },
  expect: { findings: ['dma-access-unmapped'] },
});
