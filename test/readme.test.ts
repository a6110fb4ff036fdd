// The README's library example must run as written: extract its first ```ts block, point the import at
// the source tree, and execute it in a child process. Its last line asserts an errno, so we also check
// the statement values it computes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

describe('README', () => {
  it('library example runs and behaves as the comments say', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README has a ts example').toBeDefined();
    const src = (block ?? '')
      .replace("from 'dmafarm'", `from ${JSON.stringify(join(root, 'src/index.ts'))}`)
      .replace(
        /k\.vgem\.dmaRead\(p, drm, prime\.handle, 0, 3\);/,
        'const seen = k.vgem.dmaRead(p, drm, prime.handle, 0, 3);',
      )
      .replace(/\n(p\.ioctl\(heap, DMA_HEAP_IOCTL_ALLOC, \{ len: 0[^\n]*)/, '\nconst bad = $1')
      .concat('\nconsole.log(JSON.stringify({ seen: Array.from(seen as Uint8Array), bad, fd: alloc.fd }));\n');
    const dir = mkdtempSync(join(tmpdir(), 'dmafarm-readme-'));
    const file = join(dir, 'example.ts');
    writeFileSync(file, src);
    const out = execFileSync(join(root, 'node_modules/.bin/tsx'), [file], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    expect(result).toEqual({ seen: [1, 2, 3], bad: true, fd: 4 });
  });
});
