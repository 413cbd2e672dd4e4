// `npm run bench [-- NAME] [args]`: bundle bench/*.ts with esbuild (Node 20 cannot run .ts),
// run one workload (NAME: chain, timers, http, scale, core, accept, pm, sim) with the remaining arguments, or
// all of them in turn, then regenerate bench/results/report.md and the charts from
// bench/results/latest.json. `--quick` (alone or after NAME) takes fewer runs.
//
// `--nice` (root only) runs the benchmarks at nice -10: on a machine shared with other work
// (builds, test suites), the benchmark then gets most of a contended CPU instead of half of it.
//
// The chain and scale workloads need ~20,000 fds; Node cannot raise its own soft RLIMIT_NOFILE,
// so when the soft limit is below the hard one this script runs itself again under
// `prlimit --nofile=HARD:HARD`.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setPriority } from 'node:os';
import { root } from './bin.mjs';

const WORKLOADS = ['chain', 'timers', 'http', 'scale', 'core', 'accept', 'pm', 'sim'];
/** Bundled beside the workloads: the report writer and the http, accept and pm workloads' servers. */
const HELPERS = {
  report: 'bench/report.ts',
  // The evpoll server is examples/server itself, bundled here so that it runs on the same
  // artefact snapshot as the rest (it is the program `node scripts/start.mjs` bundles and runs;
  // its 'evpoll' and 'evpoll/net' stay external and resolve to the snapshot's dist/).
  'server-evpoll': 'examples/server/main.ts',
  'server-net': 'bench/servers/net-hello.ts',
  'server-http': 'bench/servers/http-hello.ts',
};

function nofileLimits() {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? { soft: m[1], hard: m[2] } : null;
}

const limits = nofileLimits();
if (limits && limits.soft !== limits.hard && !process.env.EVPOLL_BENCH_PRLIMIT) {
  const r = spawnSync('prlimit', [`--nofile=${limits.hard}:${limits.hard}`, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, EVPOLL_BENCH_PRLIMIT: '1' },
  });
  if (r.error) {
    console.error(`bench: prlimit failed (${r.error.message}); running with the soft open-file limit ${limits.soft}`);
  } else {
    process.exit(r.status ?? 1);
  }
}

const argv = process.argv.slice(2).filter((a) => a !== '--nice');
if (process.argv.includes('--nice')) {
  try {
    // Children inherit it: every workload, side and server started from here.
    setPriority(-10);
    console.log('bench: running at nice -10');
  } catch (err) {
    console.error(`bench: --nice: ${err.message} (needs root); running at the normal priority`);
  }
}
const named = argv.length > 0 && !argv[0].startsWith('-');
const names = named ? [argv[0]] : WORKLOADS;
const rest = named ? argv.slice(1) : argv;
for (const name of names) {
  if (!WORKLOADS.includes(name) || !existsSync(join(root, 'bench', `${name}.ts`))) {
    console.error(`bench: no workload '${name}' (have: ${WORKLOADS.join(', ')})`);
    process.exit(2);
  }
}
if (!named && rest.some((a) => a !== '--quick')) {
  console.error('bench: with no workload named, only --quick and --nice are accepted (options go after a name: npm run bench -- chain --mechanism poll)');
  process.exit(2);
}

const built = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), 'native', 'wasm', 'js', '--if-missing'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(1);
const out = join(root, '.bench-out');
snapshotArtefacts(out);
const esbuild = await import('esbuild');
const entryPoints = Object.fromEntries([
  ...WORKLOADS.map((w) => [w, join(root, 'bench', `${w}.ts`)]),
  ...Object.entries(HELPERS).map(([k, v]) => [k, join(root, v)]),
]);
await esbuild.build({
  entryPoints,
  outdir: out,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  logLevel: 'warning',
});
await esbuild.stop();

/**
 * The bundles find evpoll's artefacts from the nearest package.json named evpoll above them:
 * give .bench-out/ one, with copies of the addon, the core and the built package taken now,
 * and the package's "exports", so that the server's 'evpoll' and 'evpoll/net' resolve to that
 * copy (self-reference) as they do to dist/ under `npm start`. A rebuild in the work tree while
 * the benchmarks run (node-gyp rebuild deletes build/) then neither breaks them nor mixes two
 * builds in one report.
 */
function snapshotArtefacts(dir) {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  // dist/core-debug.wasm: bench/core.ts measures the release core plus nextTimeout(), readyPtr().
  const copies = ['build/Release/evpoll.node', 'dist/core.wasm', 'dist/core-debug.wasm', 'dist/evpoll.cjs', 'dist/index.js', 'dist/net.js', 'dist/shm.js', 'dist/sim.js'];
  for (const file of copies) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(root, file), join(dir, file));
  }
  const exports = Object.fromEntries(Object.entries(manifest.exports).map(([entry, to]) => [entry, to.import?.default ?? to]));
  const snapshot = {
    name: 'evpoll',
    private: true,
    description: 'bench bundles and a snapshot of the artefacts they run',
    type: 'module',
    exports,
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(snapshot, null, 2)}\n`);
}

const started = Date.now();
let failed = 0;
for (const name of names) {
  console.log(`\n=== ${name} ===`);
  const r = spawnSync(process.execPath, [join(out, `${name}.mjs`), ...rest], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench: ${name} failed (${r.status ?? r.signal})`);
  }
}
const report = spawnSync(process.execPath, [join(out, 'report.mjs')], { stdio: 'inherit' });
console.log(`\nbench: ${names.join(', ')} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(failed || report.status !== 0 ? 1 : 0);
