// Fixed twin of ../script-wait-in-signalling.ts: gpu0 waits for its input before the signalling section.
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-wait-in-signalling.js';

export default fixedTwin(buggy, 'gpu0 waits before begin_signalling (fixed twin of misuse/script-wait-in-signalling)');
