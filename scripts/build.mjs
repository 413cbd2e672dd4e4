// Builds evpoll's three artefacts: the native addon (node-gyp -> build/), the WebAssembly core
// (asc -> dist/core.wasm) and the TypeScript API (esbuild -> dist/index.js, dist/index.cjs;
// tsc -> dist/types). Usage: node scripts/build.mjs [native] [wasm] [js] [--if-missing]
//
// The wasm lives in dist/, not build/: `node-gyp rebuild` deletes build/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bin, root } from './bin.mjs';

const args = process.argv.slice(2);
const ifMissing = args.includes('--if-missing');
const wanted = args.filter((a) => !a.startsWith('--'));

function run(cmd, argv, env = process.env) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`evpoll build: ${[cmd, ...argv].join(' ')} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

/** The newest modification time of a file, or of any file below a folder. */
function newestMtime(path) {
  const st = statSync(join(root, path));
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(join(root, path))) t = Math.max(t, newestMtime(join(path, e)));
  return t;
}

/** True when `out` is missing or older than any source in `dirs`. */
function stale(out, dirs) {
  if (!existsSync(join(root, out))) return true;
  if (!ifMissing) return true;
  const built = statSync(join(root, out)).mtimeMs;
  return dirs.some((d) => existsSync(join(root, d)) && newestMtime(d) > built);
}

function buildNative() {
  if (!stale('build/Release/evpoll.node', ['native', 'binding.gyp'])) return;
  const gyp = bin('node-gyp', 'bin/node-gyp.js');
  const argv = [gyp, 'rebuild', '--jobs=max'];
  // This machine (and CI) cannot download Node's headers: use the ones installed beside node.
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) argv.push(`--nodedir=${prefix}`);
  if (process.env.EVPOLL_SANITIZE) argv.push('--debug');
  run(process.execPath, argv);
}

function buildWasm() {
  if (!stale('dist/core.wasm', ['assembly'])) return;
  mkdirSync(join(root, 'dist'), { recursive: true });
  const asc = bin('assemblyscript', 'bin/asc.js');
  run(process.execPath, [asc, 'assembly/index.ts', '--config', 'asconfig.json', '--target', 'release']);
}

// Public entry points: `evpoll` and `evpoll/net`.
const entries = ['index', 'net'];

async function buildJs() {
  if (!stale('dist/index.js', ['src'])) return;
  const esbuild = await import('esbuild');
  const common = { bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' };
  // ESM: shared chunks, so both entries use one copy of the loader state.
  await esbuild.build({
    ...common,
    entryPoints: entries.map((e) => join(root, `src/${e}.ts`)),
    outdir: join(root, 'dist'),
    format: 'esm',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
  });
  // CommonJS: one bundle per entry, import.meta.url derived from __filename.
  for (const e of entries) {
    await esbuild.build({
      ...common,
      entryPoints: [join(root, `src/${e}.ts`)],
      outfile: join(root, `dist/${e}.cjs`),
      format: 'cjs',
      define: { 'import.meta.url': '__evpollModuleUrl' },
      banner: { js: 'const __evpollModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
    });
  }
  run(process.execPath, [bin('typescript', 'bin/tsc'), '-p', 'tsconfig.build.json']);
}

const steps = wanted.length ? wanted : ['native', 'wasm', 'js'];
// A consumer's `npm install` runs only `native` and has no devDependencies: ship dist/ prebuilt.
for (const s of steps) {
  if (s === 'native') buildNative();
  else if (s === 'wasm') buildWasm();
  else if (s === 'js') await buildJs();
  else { console.error(`evpoll build: unknown step ${s}`); process.exit(2); }
}
