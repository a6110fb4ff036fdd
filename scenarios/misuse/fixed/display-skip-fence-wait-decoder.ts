// Fixed twin of ../display-skip-fence-wait-decoder.ts: the same scenario with the fix applied — the display waits on
// the frame fence before scan-out (knob skipFenceWait off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-skip-fence-wait-decoder.js';

export default fixedTwin(
  buggy,
  'video decoder → display that waits on each frame fence before scan-out (fixed twin of misuse/display-skip-fence-wait-decoder)',
);
