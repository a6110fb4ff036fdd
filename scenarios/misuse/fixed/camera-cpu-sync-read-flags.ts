// Fixed twin of ../camera-cpu-sync-read-flags.ts: the camera brackets its CPU writes with SYNC START/END and
// the WRITE flag (knob syncReadOnly off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-cpu-sync-read-flags.js';

export default fixedTwin(
  buggy,
  'camera renders with the CPU inside SYNC START/END(WRITE) (fixed twin of misuse/camera-cpu-sync-read-flags)',
);
