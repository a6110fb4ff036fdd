// Misuse (cross-release, found without a hang): disp0 holds the resv lock of a buffer while it waits on a
// fence of gpu0, and gpu0 takes that same lock while it owes a published fence — so gpu0 may need the lock
// to signal the very fence disp0 waits for while holding it. In this run the two never overlap (links
// order them), yet the order is recorded and the cycle reported as soon as its second edge appears,
// lockdep-style. Fix: disp0 drops the lock before waiting (or waits before locking).
import { defineScenario } from '../../src/workers/scenario.js';

/** disp0's steps; `bug`: it takes the framebuffer's lock before the wait instead of after. */
const disp = (bug: boolean) => [
  { op: 'allocate', buf: 'fb' },
  { op: 'send', port: 'out', buf: 'fb' },
  { op: 'recv', port: 'in', buf: 'fb', fence: 'rendered' },
  ...(bug ? [{ op: 'lock', buf: 'fb' }] : []),
  { op: 'wait', fence: 'rendered' },
  ...(bug ? [] : [{ op: 'lock', buf: 'fb' }]),
  { op: 'unlock', buf: 'fb' },
  { op: 'read', buf: 'fb' },
];

export default defineScenario({
  name: 'script-lock-across-wait',
  description: 'disp0 holds a resv lock across a wait on gpu0, which takes that lock owing a fence; fix: wait unlocked',
  frames: 1,
  devices: {
    disp0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        outputs: ['out'],
        steps: disp(false),
        bugs: { steps: disp(true) },
      },
    },
    gpu0: {
      model: 'script',
      knobs: {
        inputs: ['in'],
        outputs: ['out'],
        steps: [
          { op: 'allocate', buf: 'scratch' },
          { op: 'recv', port: 'in', buf: 'fb' },
          { op: 'fence', fence: 'job' },
          { op: 'addFence', buf: 'scratch', fence: 'job', usage: 'write' },
          // Owes the published 'job' fence while it takes the framebuffer's lock: signal:gpu0 → resv:fb.
          { op: 'lock', buf: 'fb' },
          { op: 'unlock', buf: 'fb' },
          { op: 'write', buf: 'fb' },
          { op: 'signal', fence: 'job' },
          { op: 'fence', fence: 'done' },
          { op: 'signal', fence: 'done' },
          { op: 'send', port: 'out', buf: 'fb', fence: 'done' },
        ],
      },
    },
  },
  links: [
    { from: 'disp0.out', to: 'gpu0.in', capacity: 1 },
    { from: 'gpu0.out', to: 'disp0.in', capacity: 1 },
  ],
  expect: { findings: ['fence-lock-wait-cycle'] },
});
