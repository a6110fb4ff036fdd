// Misuse: a fence dependency cycle. gpu0's job waits on disp0's fence before it signals its own, and
// disp0's waits on gpu0's — each published its fence to the other first, so neither can ever signal. The
// wait-for walk finds the cycle when the second device blocks (before anything times out), then the run
// hangs with the cycle in its report.
// Fix: signal your fence for work that does not depend on the other before waiting on it (fences form a DAG).
import { defineScenario } from '../../src/workers/scenario.js';

const side = (me: string, other: string, signalFirst: boolean) => [
  { op: 'allocate', buf: me },
  { op: 'fence', fence: 'mine' },
  { op: 'send', port: 'out', buf: me, fence: 'mine' },
  ...(signalFirst ? [{ op: 'signal', fence: 'mine' }] : []),
  { op: 'recv', port: 'in', buf: other, fence: 'theirs' },
  { op: 'wait', fence: 'theirs' },
  ...(signalFirst ? [] : [{ op: 'signal', fence: 'mine' }]),
];

export default defineScenario({
  name: 'script-fence-wait-cycle',
  description: 'gpu0 and disp0 each wait on the other fence before signalling their own; fix: a DAG',
  frames: 1,
  devices: {
    gpu0: {
      model: 'script',
      knobs: { inputs: ['in'], outputs: ['out'], steps: side('a', 'b', true), bugs: { steps: side('a', 'b', false) } },
    },
    disp0: { model: 'script', knobs: { inputs: ['in'], outputs: ['out'], steps: side('b', 'a', false) } },
  },
  links: [
    { from: 'gpu0.out', to: 'disp0.in', capacity: 1 },
    { from: 'disp0.out', to: 'gpu0.in', capacity: 1 },
  ],
  expect: { findings: ['fence-wait-cycle', 'hang'] },
});
