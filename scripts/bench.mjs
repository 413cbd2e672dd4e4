// `npm run bench -- NAME [args]`: bundle bench/NAME.ts with esbuild (Node 20 cannot run .ts)
// and run it with the remaining arguments.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './bin.mjs';

const [name = 'chain', ...rest] = process.argv.slice(2);
const source = join(root, 'bench', `${name}.ts`);
if (!existsSync(source)) {
  console.error(`no benchmark bench/${name}.ts`);
  process.exit(2);
}
const built = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), 'native', 'wasm', '--if-missing'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(1);
const out = join(root, '.bench-out');
mkdirSync(out, { recursive: true });
const esbuild = await import('esbuild');
await esbuild.build({
  entryPoints: [source],
  outfile: join(out, `${name}.mjs`),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  logLevel: 'warning',
});
const r = spawnSync(process.execPath, [join(out, `${name}.mjs`), ...rest], { stdio: 'inherit' });
process.exit(r.status ?? 1);
