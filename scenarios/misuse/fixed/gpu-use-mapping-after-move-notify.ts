// Fixed twin of ../gpu-use-mapping-after-move-notify.ts: the same scenario with the fix applied — the GPU drops the
// moved mapping and maps again on move_notify (knob useMappingAfterMoveNotify off); the evictions and moves still
// happen. Expects no findings.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../gpu-use-mapping-after-move-notify.js';

export default fixedTwin(
  buggy,
  'GPU re-maps its vram render target after each move_notify, evicting every 2nd job (fixed twin of misuse/gpu-use-mapping-after-move-notify)',
);
