// A seed sweep on the sim host: the replay command of every run that found something.
import { runScenario } from '../../src/workers/run-scenario.js';
import { loadScenario } from '../../src/workers/scenario-loader.js';

export const SWEEP_SEEDS = 100;

export async function sweep(name: string, frames: number): Promise<string[]> {
  const s = await loadScenario(name);
  const found: string[] = [];
  for (let seed = 1; seed <= SWEEP_SEEDS; seed++) {
    const r = await runScenario(s, { seed, host: 'sim', frames });
    if (!r.ok || r.findings.length > 0) {
      found.push(
        `${r.findings.map((f) => f.rule).join(', ') || 'not ok'} — dmafarm run ${name} --seed ${seed} --host sim --frames ${frames}`,
      );
    }
  }
  return found;
}
