// Fixed twin of ../tee-skip-fence-signal.ts: the same scenario with the fix applied — the TEE signals every key fence
// (knob skipFenceSignal off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../tee-skip-fence-signal.js';

export default fixedTwin(buggy, 'TEE signals every key write fence (fixed twin of misuse/tee-skip-fence-signal)');
