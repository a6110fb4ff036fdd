// Fixed twin of ../script-fence-wait-cycle.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-fence-wait-cycle.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-fence-wait-cycle)');
