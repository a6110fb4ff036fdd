// The full 1080p pipeline on its own file, so the test runner can run it beside the other sweep.
import { describe, expect, it } from 'vitest';
import { SWEEP_SEEDS, sweep } from '../support/sweep.js';

describe(`the 1080p pipeline stays clean over ${SWEEP_SEEDS} seeds`, () => {
  it('camera-decoder-gpu-display', async () => {
    expect(await sweep('camera-decoder-gpu-display', 4)).toEqual([]);
  }, 120_000);
});
