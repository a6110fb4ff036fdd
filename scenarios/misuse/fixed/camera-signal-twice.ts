// Fixed twin of ../camera-signal-twice.ts: the same scenario with the fix applied — the camera signals each fence
// once (knob signalTwice off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-signal-twice.js';

export default fixedTwin(
  buggy,
  'camera signals each frame fence exactly once (fixed twin of misuse/camera-signal-twice)',
);
