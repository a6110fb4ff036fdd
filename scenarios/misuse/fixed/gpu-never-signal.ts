// Fixed twin of ../gpu-never-signal.ts: the same scenario with the fix applied — every GPU job signals its fence
// (knob neverSignal off). Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../gpu-never-signal.js';

export default fixedTwin(
  buggy,
  'camera → GPU → display, every job fence signalled (fixed twin of misuse/gpu-never-signal)',
);
