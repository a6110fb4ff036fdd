// Fixed twin of ../script-abba-no-ctx.ts: the same devices with the fix applied (the correct steps).
import { fixedTwin } from '../../../src/workers/scenario.js';
import buggy from '../script-abba-no-ctx.js';

export default fixedTwin(buggy, 'the correct protocol (fixed twin of misuse/script-abba-no-ctx)');
