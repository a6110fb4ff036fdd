// Misuse: fences of one timeline signalled out of order (job 2 completes, then job 1). "All fences on the
// same context are fully ordered": dma_fence_is_later, sync_file merges and chains take #1 for done once
// #2 is. Fix: complete jobs in submission order (or give out-of-order work its own timeline).
import { defineScenario } from '../../src/workers/scenario.js';

const jobs = (inOrder: boolean) => [
  { op: 'allocate', buf: 'a' },
  { op: 'fence', fence: 'job1' },
  { op: 'fence', fence: 'job2' },
  { op: 'write', buf: 'a' },
  ...(inOrder
    ? [
        { op: 'signal', fence: 'job1' },
        { op: 'signal', fence: 'job2' },
      ]
    : [
        { op: 'signal', fence: 'job2' },
        { op: 'signal', fence: 'job1' },
      ]),
];

export default defineScenario({
  name: 'script-seqno-order',
  description: 'dec0 signals seqno 2 before seqno 1 on its timeline; fix: signal in order',
  frames: 1,
  devices: { dec0: { model: 'script', knobs: { steps: jobs(true), bugs: { steps: jobs(false) } } } },
  links: [],
  expect: { findings: ['fence-seqno-order'] },
});
