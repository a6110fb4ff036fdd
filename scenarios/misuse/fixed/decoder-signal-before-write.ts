// Fixed twin of ../decoder-signal-before-write.ts: the same scenario with the fix applied — the decoder signals its
// fence after the picture is written (knob signalBeforeWrite off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../decoder-signal-before-write.js';

export default fixedTwin(
  buggy,
  'video decoder signals each fence after the picture is written (fixed twin of misuse/decoder-signal-before-write)',
);
