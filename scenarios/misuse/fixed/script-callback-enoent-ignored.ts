// Fixed twin of ../script-callback-enoent-ignored.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-callback-enoent-ignored.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-callback-enoent-ignored)');
