// Fixed twin of ../camera-skip-release-wait.ts: the same scenario with the fix applied — the camera waits on a
// buffer's READ fences before reusing it (knob skipReleaseWait off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-skip-release-wait.js';

export default fixedTwin(
  buggy,
  'camera waits for the display release fences before reusing a buffer (fixed twin of misuse/camera-skip-release-wait)',
);
