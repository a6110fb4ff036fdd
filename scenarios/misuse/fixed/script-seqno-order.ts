// Fixed twin of ../script-seqno-order.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-seqno-order.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-seqno-order)');
