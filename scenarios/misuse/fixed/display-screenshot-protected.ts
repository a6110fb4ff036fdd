// Fixed twin of ../display-screenshot-protected.ts: the capture path checks BufferRef.restricted and records
// protected frames as black instead of CPU-mapping them. Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../display-screenshot-protected.js';

export default fixedTwin(
  buggy,
  'screenshots of protected frames are black, never CPU-mapped (fixed twin of misuse/display-screenshot-protected)',
);
