// Builds evpoll's artefacts: the native addon (node-gyp -> build/), the WebAssembly core
// (asc -> dist/core.wasm, and dist/core-debug.wasm for tests and benchmarks), the TypeScript API
// (esbuild -> dist/evpoll.cjs and its entry points; tsc -> dist/types) and, for the tarball, the
// prebuilt addon (prebuildify -> prebuilds/).
// Usage: node scripts/build.mjs [native] [wasm] [js] [prebuild] [--if-missing]
//
// The wasm lives in dist/, not build/: `node-gyp rebuild` deletes build/.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { arch, platform } from 'node:os';
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

// This machine (and CI) cannot download Node's headers: use the ones installed beside node.
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;

function buildNative() {
  if (!stale('build/Release/evpoll.node', ['native', 'binding.gyp'])) return;
  const gyp = bin('node-gyp', 'bin/node-gyp.js');
  const argv = [gyp, 'rebuild', '--jobs=max'];
  if (nodedir) argv.push(`--nodedir=${nodedir}`);
  if (process.env.EVPOLL_SANITIZE) argv.push('--debug');
  run(process.execPath, argv);
}

// prebuildify names an N-API build after the package, tagged with the libc it was linked
// against, so that node-gyp-build never offers a glibc build to musl (Alpine), or back.
const libc = existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const prebuilt = `prebuilds/${platform()}-${arch()}/evpoll.${libc}.node`;

/**
 * The N-API addon for the tarball (prebuilds/<platform>-<arch>/), stripped. Built in a staging
 * folder of its own: prebuildify runs `node-gyp rebuild`, which would delete build/.
 */
function buildPrebuild() {
  if (!stale(prebuilt, ['native', 'binding.gyp'])) return;
  const stage = join(root, '.prebuild');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage);
  cpSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
  cpSync(join(root, 'native'), join(stage, 'native'), { recursive: true });
  writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'evpoll', private: true }));
  // prebuildify has no --nodedir: node-gyp takes it from the environment as npm passes config.
  const env = { ...process.env, npm_config_nodedir: nodedir ?? '' };
  if (!nodedir) delete env.npm_config_nodedir;
  delete env.EVPOLL_SANITIZE; // a release build, whatever the shell it is run from
  run(process.execPath, [
    bin('prebuildify', 'bin.js'), '--napi', '--strip', '--tag-libc', `--cwd=${stage}`,
    `--node-gyp=${bin('node-gyp', 'bin/node-gyp.js')}`,
  ], env);
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  cpSync(join(stage, 'prebuilds'), join(root, 'prebuilds'), { recursive: true });
  rmSync(stage, { recursive: true, force: true });
  if (!existsSync(join(root, prebuilt))) {
    console.error(`evpoll build: prebuildify did not make ${prebuilt}`);
    process.exit(1);
  }
}

/**
 * The core twice, from the same sources with the same optimisation: the release build
 * (assembly/index.ts -> dist/core.wasm, the one shipped: exactly what src/ calls) and the debug
 * build (assembly/debug.ts -> dist/core-debug.wasm: those exports plus the calls only tests and
 * benchmarks make). asconfig.json's targets name the files.
 */
function buildWasm() {
  const builds = [['assembly/index.ts', 'release', 'dist/core.wasm'], ['assembly/debug.ts', 'debug', 'dist/core-debug.wasm']];
  for (const [entry, target, out] of builds) {
    if (!stale(out, ['assembly', 'asconfig.json'])) continue;
    mkdirSync(join(root, 'dist'), { recursive: true });
    run(process.execPath, [bin('assemblyscript', 'bin/asc.js'), entry, '--config', 'asconfig.json', '--target', target]);
  }
}

// Public entry points: `evpoll`, `evpoll/net`, `evpoll/shm`, `evpoll/epoll` and `evpoll/sim`.
const entries = ['index', 'net', 'shm', 'epoll', 'sim'];

/**
 * One CommonJS bundle, dist/evpoll.cjs, holds the whole library; each entry point, required or
 * imported, is a few lines that hand out that bundle's exports. So `evpoll` and `evpoll/net`, in
 * CommonJS and in ESM, share one copy of every class (instanceof EvpollError holds across all four)
 * and one loader state. CommonJS is the bundle's format because Node 20 can import CommonJS from
 * ESM but not (before 20.19) require ESM.
 */
async function buildJs() {
  if (!stale('dist/evpoll.cjs', ['src'])) return;
  const esbuild = await import('esbuild');
  for (const old of ['chunks', 'types', 'evpoll.cjs', ...entries.flatMap((e) => [`${e}.js`, `${e}.cjs`])]) {
    rmSync(join(root, 'dist', old), { recursive: true, force: true });
  }
  const common = { bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' };
  await esbuild.build({
    ...common,
    stdin: {
      contents: entries.map((e) => `export * as ${e} from './src/${e}.ts';`).join('\n'),
      resolveDir: root,
      sourcefile: 'evpoll-bundle.ts',
      loader: 'ts',
    },
    outfile: join(root, 'dist/evpoll.cjs'),
    format: 'cjs',
    // A dependency, resolved from the installed package as any require() would be.
    external: ['node-gyp-build'],
    define: { 'import.meta.url': '__evpollModuleUrl' },
    banner: { js: 'const __evpollModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  for (const e of entries) {
    // The entry's export names, from esbuild's analysis of the TypeScript source.
    const { metafile } = await esbuild.build({
      ...common,
      entryPoints: [join(root, `src/${e}.ts`)],
      format: 'esm',
      packages: 'external',
      write: false,
      metafile: true,
      outdir: join(root, 'dist'),
    });
    const names = Object.values(metafile.outputs).flatMap((o) => o.exports ?? []).sort();
    const head = `// evpoll${e === 'index' ? '' : `/${e}`}: the exports of the one bundle, dist/evpoll.cjs (scripts/build.mjs says why).\n`;
    writeFileSync(join(root, `dist/${e}.cjs`), `${head}'use strict';\nmodule.exports = require('./evpoll.cjs').${e};\n`);
    writeFileSync(join(root, `dist/${e}.js`), `${head}import bundle from './evpoll.cjs';\n\nexport const {\n${names.map((n) => `  ${n},\n`).join('')}} = bundle.${e};\n`);
  }
  run(process.execPath, [bin('typescript', 'bin/tsc'), '-p', 'tsconfig.build.json']);
  // The declarations describe what runs: the CommonJS bundle. tsc's .d.ts become .d.cts files
  // whose relative imports name .cjs (so TypeScript reads them as CommonJS, as Node loads
  // dist/*.cjs), and each entry's .d.ts for import re-exports its .d.cts, as dist/<entry>.js
  // re-exports the bundle: one declaration of each class for every consumer, so that a program
  // mixing import and require (bundler resolution does) sees one EventLoop type, not two.
  const types = join(root, 'dist/types');
  for (const f of readdirSync(types).filter((f) => f.endsWith('.d.ts'))) {
    const text = readFileSync(join(types, f), 'utf8').replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]*)\.js\2/g, '$1$2$3.cjs$2');
    writeFileSync(join(types, f.replace(/\.d\.ts$/, '.d.cts')), text);
    rmSync(join(types, f));
  }
  for (const e of entries) writeFileSync(join(types, `${e}.d.ts`), `export * from './${e}.cjs';\n`);
  // Only what the entry points' declarations reach is shipped (not the addon's or core's internals).
  const reached = new Set(entries.flatMap((e) => [`${e}.d.ts`, `${e}.d.cts`]));
  for (const f of reached) {
    for (const [, spec] of readFileSync(join(types, f), 'utf8').matchAll(/(?:from\s+|import\()['"]\.\/([^'"]+)\.cjs['"]/g)) reached.add(`${spec}.d.cts`);
  }
  for (const f of readdirSync(types)) if (!reached.has(f)) rmSync(join(types, f));
}

const steps = wanted.length ? wanted : ['native', 'wasm', 'js'];
// A consumer's install has no devDependencies and never runs this file: dist/ and prebuilds/
// are in the tarball (`prepack`), and scripts/install.mjs compiles the addon when no prebuild fits.
for (const s of steps) {
  if (s === 'native') buildNative();
  else if (s === 'wasm') buildWasm();
  else if (s === 'js') await buildJs();
  else if (s === 'prebuild') buildPrebuild();
  else { console.error(`evpoll build: unknown step ${s}`); process.exit(2); }
}
