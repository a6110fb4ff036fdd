// Fixed twin of ../tee-write-after-unmap.ts: the same scenario with the fix applied — the TEE does not touch a
// mapping after unmapping it (knob writeAfterUnmap off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../tee-write-after-unmap.js';

export default fixedTwin(
  buggy,
  'TEE unmaps each key buffer after its last write (fixed twin of misuse/tee-write-after-unmap)',
);
