// Fixed twin of ../display-never-release.ts: the same scenario with the fix applied — the display signals each
// release fence at the next flip (knob neverRelease off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-never-release.js';

export default fixedTwin(
  buggy,
  'display releases each buffer at the next flip (fixed twin of misuse/display-never-release)',
);
