import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// Both dist/index.js and the compiled tests (.test-out/*.js) sit one level below the package root.
export const packageRoot = fileURLToPath(new URL('..', import.meta.url));

/** The first of `candidates` (relative to the package root) that exists. */
export function artefact(what: string, candidates: string[]): string {
  for (const c of candidates) {
    const p = join(packageRoot, c);
    if (existsSync(p)) return p;
  }
  throw new Error(`evpoll: ${what} is not built (looked for ${candidates.join(', ')} under ${packageRoot}); run \`npm run build\``);
}
