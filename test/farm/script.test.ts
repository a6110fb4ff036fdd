/**
 * The script model's own checks at load: what a step may name. (Its behaviour is exercised by every
 * `script-*` example and its fixed twin in misuse.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { defineScenario, type ScenarioInput } from '../../src/workers/scenario.js';

/** p0 sends to c0 and c0 hands back to p0; p0's steps are `steps`. */
function handBack(steps: unknown[]): ScenarioInput {
  return {
    name: 'hand-back',
    devices: {
      p0: { model: 'script', knobs: { inputs: ['in'], outputs: ['out'], steps } },
      c0: {
        model: 'script',
        knobs: {
          inputs: ['in'],
          outputs: ['out'],
          steps: [
            { op: 'recv', port: 'in', buf: 'x' },
            { op: 'send', port: 'out', buf: 'x' },
          ],
        },
      },
    },
    links: [
      { from: 'p0.out', to: 'c0.in', capacity: 1 },
      { from: 'c0.out', to: 'p0.in', capacity: 1 },
    ],
  };
}

describe("script recv with atEnd: 'continue'", () => {
  const sendA = [
    { op: 'allocate', buf: 'a' },
    { op: 'send', port: 'out', buf: 'a' },
  ];

  it('is accepted on a buffer the script already has', () => {
    expect(() =>
      defineScenario(handBack([...sendA, { op: 'recv', port: 'in', buf: 'a', atEnd: 'continue' }])),
    ).not.toThrow();
  });

  it('on a new name is a scenario error naming the step: at the end there would be no buffer', () => {
    expect(() => defineScenario(handBack([...sendA, { op: 'recv', port: 'in', buf: 'b', atEnd: 'continue' }]))).toThrow(
      /devices\.p0\.knobs\.steps\.2\.buf: no buffer 'b' before this step/,
    );
  });

  it('naming a fence is a scenario error: at the end there is none', () => {
    expect(() =>
      defineScenario(handBack([...sendA, { op: 'recv', port: 'in', buf: 'a', fence: 'f', atEnd: 'continue' }])),
    ).toThrow(/devices\.p0\.knobs\.steps\.2\.fence: a recv with atEnd: 'continue' names no fence/);
  });
});
