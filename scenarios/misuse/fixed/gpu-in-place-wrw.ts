// Fixed twin of ../gpu-in-place-wrw.ts: the in-place GPU waits on the camera's frame fence before it reads
// and writes the buffer (knob skipFenceWait off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../gpu-in-place-wrw.js';

export default fixedTwin(
  buggy,
  'in-place GPU waits on the explicit camera fence (fixed twin of misuse/gpu-in-place-wrw)',
);
