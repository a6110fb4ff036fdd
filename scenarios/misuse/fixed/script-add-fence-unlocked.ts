// Fixed twin of ../script-add-fence-unlocked.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-add-fence-unlocked.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-add-fence-unlocked)');
