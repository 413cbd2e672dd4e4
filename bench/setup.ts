// What the anchors need, installed when missing and said so: Debian packages (libevent-dev,
// wrk, nginx) through apt-get, the npm `epoll` package into a scratch folder outside the
// repository, and our C programs (bench/c/) compiled into .bench-out/.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { outDir, root } from './results.js';

let aptUpdated = false;

function quiet(cmd: string, args: string[], options: SpawnSyncOptions = {}): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function installed(pkg: string): boolean {
  return quiet('dpkg-query', ['-W', '-f=${Status}', pkg]).out.includes('install ok installed');
}

/**
 * Makes sure a Debian package is installed: if it is not, runs `apt-get update` (once per
 * process) and `apt-get install`, saying so. Returns whether it is there now.
 */
export function aptEnsure(pkg: string, why: string, alternatives: string[] = []): boolean {
  if (installed(pkg) || alternatives.some(installed)) return true;
  console.log(`bench: ${pkg} is missing (${why}): installing it with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    const u = quiet('apt-get', ['update', '-qq'], { env });
    aptUpdated = true;
    if (!u.ok) console.log(`bench: apt-get update failed:\n${u.out.trim()}`);
  }
  const r = quiet('apt-get', ['install', '-y', '-qq', pkg], { env });
  if (!r.ok) {
    console.log(`bench: apt-get install ${pkg} failed; the sides that need it are skipped:\n${r.out.trim().split('\n').slice(-3).join('\n')}`);
    return false;
  }
  return true;
}

/** Compiles bench/c/NAME.c into .bench-out/NAME (again when a source is newer); its path, or null. */
export function compileC(name: string, libs: string[] = []): string | null {
  const src = join(root, 'bench', 'c', `${name}.c`);
  const header = join(root, 'bench', 'c', 'chain-common.h');
  const exe = join(outDir, name);
  mkdirSync(outDir, { recursive: true });
  const newest = Math.max(statSync(src).mtimeMs, existsSync(header) ? statSync(header).mtimeMs : 0);
  if (existsSync(exe) && statSync(exe).mtimeMs >= newest) return exe;
  const r = quiet('cc', ['-O2', '-Wall', '-o', exe, src, ...libs]);
  if (!r.ok) {
    console.log(`bench: compiling bench/c/${name}.c failed; its side is skipped:\n${r.out.trim()}`);
    return null;
  }
  return exe;
}

/** The scratch folder for npm anchors: outside the repository, so nothing of theirs is committed. */
export const depsDir = process.env.EVPOLL_BENCH_DEPS ?? '/tmp/bench-deps';

/**
 * The npm `epoll` package (4.x), installed into depsDir when missing (its addon is built with
 * the Node headers installed beside node, as evpoll's own: nothing is downloaded but the
 * package). Returns the folder to require it from, or null.
 */
export function npmEpoll(): string | null {
  const addon = join(depsDir, 'node_modules', 'epoll', 'build', 'Release', 'epoll.node');
  if (existsSync(addon)) return depsDir;
  console.log(`bench: installing the npm epoll package (4.x) into ${depsDir} (outside the repository)`);
  mkdirSync(depsDir, { recursive: true });
  const manifest = join(depsDir, 'package.json');
  if (!existsSync(manifest)) writeFileSync(manifest, '{ "name": "evpoll-bench-deps", "private": true }\n');
  const prefix = dirname(dirname(process.execPath));
  const hasHeaders = existsSync(join(prefix, 'include', 'node', 'node_api.h'));
  const env = { ...process.env, ...(hasHeaders ? { npm_config_nodedir: prefix } : {}) };
  const npm = quiet('npm', ['install', '--no-audit', '--no-fund', '--no-save', 'epoll@4'], { cwd: depsDir, env });
  if (!existsSync(join(depsDir, 'node_modules', 'epoll'))) {
    console.log(`bench: npm install epoll@4 failed; its side is skipped:\n${npm.out.trim().split('\n').slice(-5).join('\n')}`);
    return null;
  }
  if (!existsSync(addon)) {
    // npm may hold back install scripts; build the addon the way evpoll's own is built.
    const gyp = createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
    const r = quiet(process.execPath, [gyp, 'rebuild', ...(hasHeaders ? [`--nodedir=${prefix}`] : [])], {
      cwd: join(depsDir, 'node_modules', 'epoll'),
    });
    if (!existsSync(addon)) {
      console.log(`bench: building the epoll addon failed; its side is skipped:\n${r.out.trim().split('\n').slice(-5).join('\n')}`);
      return null;
    }
  }
  return depsDir;
}

/** The libevent version the C anchor links against (from its pkg-config file), or undefined. */
export function libeventVersion(): string | undefined {
  const r = quiet('pkg-config', ['--modversion', 'libevent_core']);
  return r.ok ? r.out.trim() : undefined;
}

/**
 * Runs a child (a bench bundle in --child mode, or a C anchor) and returns its stdout; throws
 * with its stderr when it fails.
 */
export function runChild(cmd: string, args: string[], timeoutMs = 300_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim().slice(-2000)}`);
  }
  return r.stdout;
}
