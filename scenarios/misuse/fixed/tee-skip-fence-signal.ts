// Fixed twin of ../tee-skip-fence-signal.ts: the same scenario with the fix applied — the TEE signals every key fence
// (knob skipFenceSignal off). Expects no findings.
import { defineScenario } from '../../../src/workers/scenario.js';

export default defineScenario({
  name: 'tee-skip-fence-signal-fixed',
  description: 'TEE signals every key write fence (fixed twin of misuse/tee-skip-fence-signal)',
  devices: {
    tee0: { model: 'tee', knobs: { keys: 4, keyBytes: 4096 } },
  },
  expect: { findings: [] },
});
