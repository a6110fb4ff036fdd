// Fixed twin of ../script-ealready-ignored.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-ealready-ignored.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-ealready-ignored)');
