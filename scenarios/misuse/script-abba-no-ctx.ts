// Misuse: two devices lock the same two buffers in opposite orders without an acquire context (AB-BA). In
// this run they never overlap (a link orders them), yet the two orders close a cycle in the lock graph
// the moment the second one is taken; with the wrong timing both would block forever. Fix: lock a job's
// buffers with one ww_acquire_ctx ticket (Wait-Die backs the younger off with -EDEADLK).
import { defineScenario } from '../../src/workers/scenario.js';

const job = (first: string, second: string, ticket: boolean) => [
  ...(ticket ? [{ op: 'acquireInit', ctx: 't' }] : []),
  { op: 'lock', buf: first, ...(ticket ? { ctx: 't' } : {}) },
  { op: 'lock', buf: second, ...(ticket ? { ctx: 't' } : {}) },
  ...(ticket ? [{ op: 'acquireDone', ctx: 't' }] : []),
  { op: 'write', buf: first },
  { op: 'unlock', buf: second },
  { op: 'unlock', buf: first },
  ...(ticket ? [{ op: 'acquireFini', ctx: 't' }] : []),
];

const gpu0 = (ticket: boolean) => [
  { op: 'allocate', buf: 'x' },
  { op: 'allocate', buf: 'y' },
  ...job('x', 'y', ticket),
  { op: 'send', port: 'out', buf: 'x' },
  { op: 'send', port: 'out', buf: 'y' },
];
const gpu1 = (ticket: boolean) => [
  { op: 'recv', port: 'in', buf: 'x' },
  { op: 'recv', port: 'in', buf: 'y' },
  ...job('y', 'x', ticket),
];

export default defineScenario({
  name: 'script-abba-no-ctx',
  description: 'gpu0 locks X then Y, gpu1 Y then X, both without a ticket; fix: one ww_acquire_ctx per job',
  frames: 2,
  devices: {
    gpu0: { model: 'script', knobs: { outputs: ['out'], steps: gpu0(true), bugs: { steps: gpu0(false) } } },
    gpu1: { model: 'script', knobs: { inputs: ['in'], steps: gpu1(true), bugs: { steps: gpu1(false) } } },
  },
  links: [{ from: 'gpu0.out', to: 'gpu1.in', capacity: 2 }],
  expect: { findings: ['ww-no-ctx-abba'] },
});
