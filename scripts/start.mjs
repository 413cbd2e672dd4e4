// `npm start`: build what is missing, bundle examples/server, and run it in this process (so
// this process is the master: signals sent to it reach the server). Arguments are forwarded:
// `npm start -- --port 9000 --workers 4`.
import { spawnSync } from 'node:child_process';
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root } from './bin.mjs';

// The example imports 'evpoll' and 'evpoll/net' as a user's program does: the built package
// (dist/), which the bundle below leaves external. So every artefact is built first.
const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), 'native', 'wasm', 'js', '--if-missing'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// Inside the package folder, so that Node resolves 'evpoll' to this package through its
// "exports" (self-reference). Bundled every time (it takes milliseconds), so it is never
// stale; written aside and renamed, so a worker starting meanwhile never reads half a file.
const out = join(root, 'dist/server.mjs');
const esbuild = await import('esbuild');
const result = await esbuild.build({
  entryPoints: [join(root, 'examples/server/main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  write: false,
  logLevel: 'warning',
});
await esbuild.stop(); // or esbuild's service process would live on beside the master
mkdirSync(join(root, 'dist'), { recursive: true });
const temp = `${out}.${process.pid}.tmp`;
writeFileSync(temp, result.outputFiles[0].contents);
renameSync(temp, out);

await import(pathToFileURL(out).href);
