// The package's `install` script. In an installed copy: when a prebuild from prebuilds/ loads
// here, there is nothing to do; otherwise the addon is compiled from native/ with node-gyp, and
// when that cannot work (no compiler, make or python3) the error says what to install and how to
// retry. In a clone of the repository (no prebuilds/): compiled, as `npm run build` does.
// Compiling is forced by `npm rebuild evpoll --build-from-source` (node-gyp-build's convention).
//
// Plain Node, no devDependencies: it runs in a consumer's node_modules/evpoll.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const { name } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const fromSource = ['true', name].includes(process.env.npm_config_build_from_source ?? '');

/** The prebuild that node-gyp-build picks for this system, if one loads here; else undefined. */
function usablePrebuild() {
  // Only prebuilds/: a build/ left from an earlier install is no proof that one fits.
  process.env.PREBUILDS_ONLY = '1';
  let path;
  try {
    path = require('node-gyp-build').resolve(root);
  } catch {
    return undefined;
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
  try {
    require(path); // a glibc build on musl, or a missing symbol, fails here rather than later
    return path;
  } catch (e) {
    console.warn(`evpoll: the prebuild ${path} does not load here (${e.message.split('\n')[0]}); compiling instead`);
    return undefined;
  }
}

/** The first `names` found on PATH, or undefined. */
function onPath(...names) {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  }
  return undefined;
}

/**
 * node-gyp: the one beside evpoll (a clone's devDependency, pinned to 12.x), else the one npm
 * bundles and names in npm_config_node_gyp for install scripts, else one on PATH.
 */
function nodeGyp() {
  try {
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    // not installed beside evpoll: a consumer's install
  }
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return [process.execPath, process.env.npm_config_node_gyp];
  }
  const onPathGyp = onPath('node-gyp');
  return onPathGyp ? [onPathGyp] : undefined;
}

function fail(lines) {
  console.error(['', ...lines.map((l) => `evpoll: ${l}`), ''].join('\n'));
  process.exit(1);
}

const retry = [
  'Install them (Debian/Ubuntu: `apt-get install g++ make python3`; Fedora/RHEL: `dnf install gcc-c++ make python3`;',
  'Alpine: `apk add g++ make python3`), then run `npm rebuild evpoll` in your project.',
];

const prebuild = fromSource ? undefined : usablePrebuild();
if (prebuild) {
  console.log(`evpoll: using the prebuilt addon ${prebuild}`);
  process.exit(0);
}

const why = fromSource ? 'building from source as asked (--build-from-source)' : `no prebuilt addon fits ${platform()}-${arch()}`;
const missing = [
  !(process.env.CXX || onPath('g++', 'c++', 'clang++')) && 'a C++ compiler (g++)',
  !(process.env.CC || onPath('gcc', 'cc', 'clang')) && 'a C compiler (gcc)',
  !onPath('make') && 'make',
  !(process.env.npm_config_python || process.env.PYTHON || onPath('python3')) && 'python3',
].filter(Boolean);
if (missing.length) {
  fail([
    `${why}, so the native addon must be compiled from native/ with node-gyp,`,
    `and this system has no ${missing.join(', no ')} on PATH.`,
    ...retry,
  ]);
}
const gyp = nodeGyp();
if (!gyp) {
  fail([`${why}, and node-gyp is not available to compile the addon.`, 'Install it (`npm install -g node-gyp@12`), then run `npm rebuild evpoll`.']);
}

const argv = [...gyp.slice(1), 'rebuild', '--jobs=max'];
// Headers installed beside node (a distribution's nodejs-dev package) spare node-gyp a download.
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) argv.push(`--nodedir=${prefix}`);
if (process.env.EVPOLL_SANITIZE) argv.push('--debug');
console.log(`evpoll: ${why}; compiling the addon (${gyp.at(-1)})`);
const r = spawnSync(gyp[0], argv, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  fail([
    `compiling the native addon failed (node-gyp ${r.status ?? r.signal}; its output is above).`,
    'It needs a C/C++ toolchain (g++), make and python3, and Node\'s headers (downloaded by node-gyp, or --nodedir).',
    ...retry,
  ]);
}
