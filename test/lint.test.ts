// One formatter and linter for the whole tree, and the type checker, run as tests so a red lint is a
// red build.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
function run(cmd: string, args: string[]): { code: number; output: string } {
  try {
    const output = execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, output };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { code: err.status ?? 1, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

describe('source tree hygiene', () => {
  it('biome check finds no lint or format problems', () => {
    const r = run(join(root, 'node_modules/.bin/biome'), ['check', '.']);
    expect(r.output, r.output).not.toMatch(/Found \d+ errors?/);
    expect(r.code, r.output).toBe(0);
  });
  it('tsc --noEmit type-checks src and test', () => {
    const r = run(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.test.json', '--noEmit']);
    expect(r.code, r.output).toBe(0);
  });
});
