// Fixed twin of ../script-lock-across-wait.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-lock-across-wait.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-lock-across-wait)');
