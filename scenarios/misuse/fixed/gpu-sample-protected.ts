// Fixed twin of ../gpu-sample-protected.ts: the GPU checks BufferRef.restricted and composes the protected
// layer as black without importing it. Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../gpu-sample-protected.js';

export default fixedTwin(
  buggy,
  'the GPU composes protected layers as black without importing them (fixed twin of misuse/gpu-sample-protected)',
);
