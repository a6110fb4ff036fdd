// Fixed twin of ../script-timeout-misread.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-timeout-misread.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-timeout-misread)');
