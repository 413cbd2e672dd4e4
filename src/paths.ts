import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The package root: the nearest folder above this module whose package.json is evpoll's. The
 * module may be the bundle dist/evpoll.cjs, or a compiled test in .test-out/.
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'evpoll') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('evpoll: cannot find its package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const packageRoot = findRoot();

/** The first of `candidates` (relative to the package root) that exists. */
export function artefact(what: string, candidates: string[]): string {
  for (const c of candidates) {
    const p = join(packageRoot, c);
    if (existsSync(p)) return p;
  }
  throw new Error(`evpoll: ${what} is not built (looked for ${candidates.join(', ')} under ${packageRoot}); run \`npm run build\``);
}
