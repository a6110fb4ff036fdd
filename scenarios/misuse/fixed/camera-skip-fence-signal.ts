// Fixed twin of ../camera-skip-fence-signal.ts: the same scenario with the fix applied — the camera signals every
// fence (knob skipFenceSignal off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-skip-fence-signal.js';

export default fixedTwin(buggy, 'camera signals every frame fence (fixed twin of misuse/camera-skip-fence-signal)');
