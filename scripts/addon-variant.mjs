// Builds the native addon a second time, with other options, into its own folder
// (.sanitize/<name>/), so that the ordinary build in build/ is left alone (`node-gyp rebuild`
// deletes the build/ folder it works in). Used by scripts/asan.mjs and scripts/valgrind.mjs,
// which point EVPOLL_ADDON at the result.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bin, root } from './bin.mjs';

/**
 * A Debug (-g, unoptimised) build of the current native/ sources with `env` added to the
 * build's environment (EVPOLL_SANITIZE=1: -fsanitize=address,undefined, see binding.gyp).
 * Returns the path of the .node file.
 */
export function buildAddonVariant(name, env = {}) {
  const dir = join(root, '.sanitize', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'binding.gyp'), join(dir, 'binding.gyp'));
  cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
  const argv = [bin('node-gyp', 'bin/node-gyp.js'), 'rebuild', '--debug', '--jobs=max'];
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) argv.push(`--nodedir=${prefix}`);
  const r = spawnSync(process.execPath, argv, { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });
  const out = join(dir, 'build', 'Debug', 'evpoll.node');
  if (r.status !== 0 || !existsSync(out)) {
    console.error(`${r.stdout}${r.stderr}\nevpoll: building the ${name} addon failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
  return out;
}

/** Builds what `npm test` needs (addon, core, dist/) with no special options, if stale. */
export function buildDefault() {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), 'native', 'wasm', 'js', '--if-missing'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}
