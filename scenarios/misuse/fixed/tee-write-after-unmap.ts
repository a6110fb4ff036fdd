// Fixed twin of ../tee-write-after-unmap.ts: the same scenario with the fix applied — the TEE does not touch a
// mapping after unmapping it (knob writeAfterUnmap off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'tee-write-after-unmap-fixed',
  description: 'TEE unmaps each key buffer after its last write (fixed twin of misuse/tee-write-after-unmap)',
  devices: {
    tee0: { model: 'tee', knobs: { keys: 4, keyBytes: 4096 } },
  },
  expect: { findings: [] },
});
