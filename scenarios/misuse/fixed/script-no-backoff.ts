// Fixed twin of ../script-no-backoff.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-no-backoff.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-no-backoff)');
