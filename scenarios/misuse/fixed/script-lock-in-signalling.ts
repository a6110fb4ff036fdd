// Fixed twin of ../script-lock-in-signalling.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-lock-in-signalling.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-lock-in-signalling)');
