// Fixed twin of ../display-cpu-sync-not-fence.ts: the display waits on the frame's fence, then brackets its
// CPU read with SYNC START/END(READ) (knob ignoreFrameFence off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-cpu-sync-not-fence.js';

export default fixedTwin(
  buggy,
  'CPU scan-out waits on the frame fence before SYNC START (fixed twin of misuse/display-cpu-sync-not-fence)',
);
