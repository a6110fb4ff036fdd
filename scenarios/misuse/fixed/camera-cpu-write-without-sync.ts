// Fixed twin of ../camera-cpu-write-without-sync.ts: the same scenario with the fix applied — the camera ends CPU
// access with DMA_BUF_IOCTL_SYNC END (knob writeWithoutSync off); it still renders with the CPU. Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../camera-cpu-write-without-sync.js';

export default fixedTwin(
  buggy,
  'camera renders with the CPU between SYNC START and SYNC END (fixed twin of misuse/camera-cpu-write-without-sync)',
);
