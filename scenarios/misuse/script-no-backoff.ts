// Misuse: wrong backoff after -EDEADLK. gpu0 (the older ticket) holds a and wants b; disp0 (younger) holds
// b and wants a, gets -EDEADLK (Wait-Die: the younger dies) — and instead of dropping b before it sleeps
// on a, it calls dma_resv_lock_slow(a) with b still held (ww-mutex-slow-with-locks-held). Each now sleeps on
// a lock the other holds — the deadlock Wait-Die exists to prevent — named as the second one blocks
// (resv-lock-deadlock), then a hang no timeout can end. The links order the steps that matter, so every
// run takes this path.
// Fix: on -EDEADLK unlock everything the ticket holds, lock_slow the contended buffer, then lock the rest.
import { defineScenario } from '../../src/workers/scenario.js';

const older = [
  { op: 'allocate', buf: 'a' },
  { op: 'allocate', buf: 'b' },
  { op: 'send', port: 'out', buf: 'a' },
  { op: 'send', port: 'out', buf: 'b' },
  { op: 'recv', port: 'in', buf: 'imported' },
  { op: 'acquireInit', ctx: 't' },
  { op: 'lock', buf: 'a', ctx: 't' },
  { op: 'allocate', buf: 'go' },
  { op: 'send', port: 'out', buf: 'go' },
  { op: 'recv', port: 'in', buf: 'holds-b' },
  { op: 'lock', buf: 'b', ctx: 't' },
  { op: 'write', buf: 'a' },
  { op: 'write', buf: 'b' },
  { op: 'unlock', buf: 'b' },
  { op: 'unlock', buf: 'a' },
  { op: 'acquireFini', ctx: 't' },
];

const younger = (backOff: boolean) => [
  { op: 'recv', port: 'in', buf: 'a' },
  { op: 'recv', port: 'in', buf: 'b' },
  { op: 'allocate', buf: 'imported' },
  { op: 'send', port: 'out', buf: 'imported' },
  { op: 'recv', port: 'in', buf: 'go' },
  { op: 'acquireInit', ctx: 'u' },
  { op: 'lock', buf: 'b', ctx: 'u' },
  { op: 'allocate', buf: 'holds-b' },
  { op: 'send', port: 'out', buf: 'holds-b' },
  { op: 'lock', buf: 'a', ctx: 'u' }, // -EDEADLK: a is held by the older ticket
  ...(backOff ? [{ op: 'unlock', buf: 'b' }] : []),
  { op: 'lockSlow', buf: 'a', ctx: 'u' },
  ...(backOff ? [{ op: 'lock', buf: 'b', ctx: 'u' }] : []),
  { op: 'write', buf: 'a' },
  { op: 'write', buf: 'b' },
  { op: 'unlock', buf: 'b' },
  { op: 'unlock', buf: 'a' },
  { op: 'acquireFini', ctx: 'u' },
];

export default defineScenario({
  name: 'script-no-backoff',
  description: 'disp0 gets -EDEADLK and sleeps on the contended lock without dropping the one it holds; fix: back off',
  frames: 1,
  devices: {
    gpu0: { model: 'script', knobs: { inputs: ['in'], outputs: ['out'], steps: older } },
    disp0: {
      model: 'script',
      knobs: { inputs: ['in'], outputs: ['out'], steps: younger(true), bugs: { steps: younger(false) } },
    },
  },
  links: [
    { from: 'gpu0.out', to: 'disp0.in', capacity: 2 },
    { from: 'disp0.out', to: 'gpu0.in', capacity: 2 },
  ],
  expect: { findings: ['ww-mutex-slow-with-locks-held', 'resv-lock-deadlock', 'hang'] },
});
