// Runs before `npm start`, `npm test` and `npm run bench` so that the README's two commands work on a
// fresh clone: installs the locked dependencies when node_modules is missing or older than the lockfile.
// Plain Node, no dependencies (it runs before there are any).
//
// `npm ci` is tried first. On registries that mirror only some platforms' optional packages (Biome ships
// one binary package per OS/CPU; a Linux-only mirror 404s the rest), npm leaves those out of the lockfile
// and `npm ci` then refuses it. `npm install` resolves the same locked versions there; we check that it
// left the lockfile byte-for-byte unchanged, so the install is still exactly the locked one.
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  const hash = () => createHash('sha256').update(readFileSync(lock)).digest('hex');
  const before = hash();
  const opts = {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, npm_config_loglevel: 'warn' },
  };
  process.stderr.write('dmafarm: installing locked dependencies…\n');
  try {
    execSync('npm ci --no-audit --no-fund', { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    process.stderr.write('dmafarm: npm ci refused the lockfile (partial platform mirror?); using npm install\n');
    execSync('npm install --no-audit --no-fund', opts);
  }
  if (hash() !== before) {
    process.stderr.write('dmafarm: warning: the install changed package-lock.json; commit it or report it\n');
  }
}
