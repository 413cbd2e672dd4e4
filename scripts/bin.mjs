// Where a dependency's command-line script is, wherever npm put (or hoisted) the package;
// read from disk because some packages' "exports" hide their bin files from require.resolve.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

export function bin(pkg, file) {
  for (const dir of require.resolve.paths(pkg) ?? []) {
    const p = join(dir, pkg, file);
    if (existsSync(p)) return p;
  }
  throw new Error(`evpoll: ${pkg} is not installed (needed for ${file}); run \`npm install\``);
}
