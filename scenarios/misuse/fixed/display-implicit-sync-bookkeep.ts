// Fixed twin of ../display-implicit-sync-bookkeep.ts: the display waits on the fence that comes with the
// frame (knob ignoreFrameFence off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-implicit-sync-bookkeep.js';

export default fixedTwin(
  buggy,
  'display waits on the explicit frame fence of a BOOKKEEP producer (fixed twin of misuse/display-implicit-sync-bookkeep)',
);
