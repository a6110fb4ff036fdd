// Fixed twin of ../camera-cpu-write-unbracketed.ts: the camera opens CPU access with DMA_BUF_IOCTL_SYNC START
// (knob skipSyncStart off) before it renders. Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-cpu-write-unbracketed.js';

export default fixedTwin(
  buggy,
  'camera renders with the CPU between SYNC START and SYNC END (fixed twin of misuse/camera-cpu-write-unbracketed)',
);
