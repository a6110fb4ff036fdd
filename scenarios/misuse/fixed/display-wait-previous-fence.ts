// Fixed twin of ../display-wait-previous-fence.ts: the display waits on this frame's fence (knob
// waitPreviousFence off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-wait-previous-fence.js';

export default fixedTwin(
  buggy,
  'display waits on the fence of the frame it shows (fixed twin of misuse/display-wait-previous-fence)',
);
