// No false positives: every clean canonical scenario, 100 seeds (100 schedules) each on the sim host, with
// the happens-before detector and every checker on, finds nothing. A finding prints its replay command.
import { describe, expect, it } from 'vitest';
import { SWEEP_SEEDS, sweep } from '../support/sweep.js';

describe(`clean canonical scenarios stay clean over ${SWEEP_SEEDS} seeds`, () => {
  for (const name of ['camera-preview', 'video-playback', 'gpu-composition', 'gpu-memory-pressure']) {
    it(name, async () => {
      expect(await sweep(name, 8)).toEqual([]);
    }, 60_000);
  }
});
