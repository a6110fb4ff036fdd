// Misuse: the same buffer appears twice in a job's buffer list. The second dma_resv_lock with the job's
// ticket returns -EALREADY (it is already held in this context); ignoring that, the job later unlocks the
// buffer twice. Fix: treat -EALREADY as "already locked, skip it", and unlock each buffer once.
import { defineScenario } from '../../src/workers/scenario.js';

const job = (duplicate: boolean) => [
  { op: 'allocate', buf: 'src' },
  { op: 'allocate', buf: 'dst' },
  { op: 'fence', fence: 'job' },
  { op: 'acquireInit', ctx: 't' },
  { op: 'lock', buf: 'src', ctx: 't' },
  { op: 'lock', buf: 'dst', ctx: 't' },
  ...(duplicate ? [{ op: 'lock', buf: 'src', ctx: 't' }] : []),
  { op: 'acquireDone', ctx: 't' },
  { op: 'reserve', buf: 'dst', n: 1 },
  { op: 'addFenceLocked', buf: 'dst', fence: 'job', usage: 'write' },
  { op: 'unlock', buf: 'src' },
  { op: 'unlock', buf: 'dst' },
  ...(duplicate ? [{ op: 'unlock', buf: 'src' }] : []),
  { op: 'acquireFini', ctx: 't' },
  { op: 'write', buf: 'dst' },
  { op: 'signal', fence: 'job' },
];

export default defineScenario({
  name: 'script-ealready-ignored',
  description: 'gpu0 locks a buffer twice in one job, ignores -EALREADY and unlocks it twice; fix: skip duplicates',
  frames: 1,
  devices: { gpu0: { model: 'script', knobs: { steps: job(false), bugs: { steps: job(true) } } } },
  links: [],
  expect: { findings: ['ww-ealready-ignored'] },
});
