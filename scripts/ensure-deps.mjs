// Runs before `npm start`, `npm test` and `npm run bench` so that the README's two commands work on a
// fresh clone: installs the locked dependencies when node_modules is missing or older than the lockfile.
// Plain Node, no dependencies (it runs before there are any).
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  process.stderr.write('dmafarm: installing locked dependencies (npm ci)…\n');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}
