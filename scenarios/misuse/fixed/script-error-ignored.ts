// Fixed twin of ../script-error-ignored.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-error-ignored.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-error-ignored)');
