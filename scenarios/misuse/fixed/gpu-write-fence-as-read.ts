// Fixed twin of ../gpu-write-fence-as-read.ts: the GPU adds its render fence to the output buffer as WRITE
// (knob writeFenceAsRead off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../gpu-write-fence-as-read.js';

export default fixedTwin(
  buggy,
  'GPU adds its render fence to the output as WRITE (fixed twin of misuse/gpu-write-fence-as-read)',
);
