// evpoll as a user gets it: `npm pack`, then `npm install <tarball>` into an empty project with a
// fresh HOME (no npmrc of this machine, no npm_config_* inherited) and no compiler on PATH; the
// README's quick start in ESM and CommonJS, in the main thread and a worker; one copy of each
// class across evpoll, evpoll/net, evpoll/shm and evpoll/epoll, import and require; the types under each
// TypeScript resolution and the oldest TypeScript supported; @arethetypeswrong/cli and publint on
// the tarball; and the compile fallback, with and without a toolchain. A file missing from the
// package fails here. It is about the package, not a backend, so it runs in one suite only.
//
// The tests share one tarball and one consumer project, made by the first and removed after the
// last (test.after runs whether they passed or not); each depends on the ones before it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import * as assert from 'uvu/assert';
import { packageRoot } from '../src/paths.js';
import { test } from './harness.js';
import { MECHANISM, MODE, killOnCleanup } from './helpers.js';

/** The oldest TypeScript whose checks of evpoll's declarations pass (5.3 lacks NoInfer). */
const OLDEST_TYPESCRIPT = '5.4.5';

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  output: string;
  seconds: number;
}

let lastSaid = performance.now();

/** A line in the suite's output (the test runner's stall watchdog reads it). */
function say(line: string): void {
  console.log(`package: ${line}`);
  lastSaid = performance.now();
}

/**
 * `cmd args` to completion, without blocking this process: when nothing was said for 15 s (a
 * compile or a type-check on a loaded machine), it says what is running, so that the stall
 * watchdog, which sees only this suite's output, knows the test is alive.
 */
function run(cmd: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  const started = performance.now();
  const child = killOnCleanup(spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '', stderr = '', output = '';
  child.stdout!.on('data', (d) => { stdout += d; output += d; });
  child.stderr!.on('data', (d) => { stderr += d; output += d; });
  const what = [cmd.split('/').at(-1), ...args.slice(0, 2).map((a) => a.split('/').at(-1))].join(' ');
  const alive = setInterval(() => {
    if (performance.now() - lastSaid > 15_000) say(`${what} running for ${Math.round((performance.now() - started) / 1000)} s`);
  }, 1000);
  const timeout = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
  return new Promise((resolve) => {
    child.on('close', (status, signal) => {
      clearInterval(alive);
      clearTimeout(timeout);
      resolve({ status, signal, stdout, stderr, output, seconds: (performance.now() - started) / 1000 });
    });
  });
}

function ok(r: Ran, what: string): Ran {
  assert.ok(r.status === 0, `${what} failed (${r.status ?? r.signal}):\n${r.output}`);
  return r;
}

/** The parent's environment without what would make a consumer's run not a user's. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    // npm's own config and lifecycle variables (npm test sets them), evpoll's test settings, and
    // the sanitizer run's preload: consumers load the prebuilt, unsanitized addon.
    if (/^npm_/i.test(key) || key.startsWith('EVPOLL_') || key === 'INIT_CWD') delete env[key];
  }
  for (const key of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'NODE_OPTIONS']) delete env[key];
  return { ...env, ...extra };
}

/** An executable named `name` on the parent's PATH. */
function onPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not on PATH`);
}

const NPM = existsSync(join(dirname(process.execPath), 'npm')) ? join(dirname(process.execPath), 'npm') : onPath('npm');
// Downloaded packages are content-addressed: sharing this machine's cache shares no config,
// and lets the installs below work offline once it holds them.
const CACHE = process.env.npm_config_cache || join(homedir(), '.npm');
const INSTALL_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--no-update-notifier', '--foreground-scripts'];

interface Work {
  dir: string;
  tarball: string;
  home: string;
  /** A PATH with node, npm and sh only: no make, cc, gcc, g++ or python3. */
  bareBin: string;
  app: string;
}
let work: Work | undefined;

function ready(): Work {
  assert.ok(work, 'the tarball was packed and installed by the tests before this one');
  return work;
}

/** A consumer's environment: a fresh HOME with an empty npmrc, and `path` as PATH. */
function consumerEnv(w: Work, path: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    HOME: w.home,
    PATH: path,
    npm_config_userconfig: join(w.home, '.npmrc'),
    npm_config_cache: CACHE,
    npm_config_logs_dir: join(w.home, 'npm-logs'),
    ...extra,
  });
}

function newProject(w: Work, name: string): string {
  const dir = join(w.dir, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  return dir;
}

/** The README's quick start, as written (ESM), and the same program with require() for CommonJS. */
function quickStart(): { esm: string; cjs: string } {
  const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8');
  const esm = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(esm, 'the README has a quick start code block');
  const cjs = esm.replace(/^import (\{[^}]*\}) from ('[^']+');$/gm, 'const $1 = require($2);');
  assert.not.match(cjs, /^import /m, 'every import of the quick start became a require');
  return { esm, cjs };
}

const QUICK_START_OUTPUT = [1, 2, 3].flatMap((i) => [`heartbeat ${i} on epoll`, `read 6 bytes: beat ${i}`]);

/** Runs `file` in `dir` with node; its stdout lines. */
async function node(w: Work, dir: string, file: string): Promise<string[]> {
  const r = ok(await run(process.execPath, [file], { cwd: dir, env: consumerEnv(w, w.bareBin), timeoutMs: 30_000 }), `node ${file}`);
  return r.stdout.trim().split('\n');
}

// Prints whether `evpoll`, `evpoll/net`, `evpoll/shm` and `evpoll/epoll`, imported and required, share their
// classes, what each gives for EAGAIN, whether a shared region and its mutex work, and which
// addon file the process loaded.
const CLASSES_CHECK = `
const net = [esmNet, cjsNet].map((n) => { try { n.read(-1, new Uint8Array(1)); } catch (e) { return e; } });
const loops = [esm, cjs].map((m) => { try { new m.EventLoop({ mechanism: 'nope' }); } catch (e) { return e; } });
const regions = [esmShm, cjsShm].map((s) => { try { s.SharedRegion.create(0); } catch (e) { return e; } });
const region = esmShm.SharedRegion.create(100);
const mutex = new cjsShm.AcceptMutex(region);
const shm = [region.byteLength, mutex.tryLock(), mutex.holder === process.pid, mutex.unlock()];
region.close();
const epolls = [esmEpoll, cjsEpoll].map((m) => { try { new m.Epoll('not a callback'); } catch (e) { return e; } });
const sims = [esmSim, cjsSim].map((m) => { try { m.Simulation.install({ seed: -1 }); } catch (e) { return e; } });
// A simulation installed through one entry point is the one the others see.
const simulated = esmSim.Simulation.run({ seed: 1 }, () => [cjsNet.pipe()[0] >= 2 ** 30, new cjs.EventLoop().mechanism]);
const addon = require('node:fs').readFileSync('/proc/self/maps', 'utf8').match(/\\/node_modules\\/evpoll\\/\\S+\\.node/)?.[0];
console.log(JSON.stringify({
  sameEvpollError: esm.EvpollError === cjs.EvpollError,
  sameEventLoop: esm.EventLoop === cjs.EventLoop,
  sameFixedBuffer: esmNet.FixedBuffer === cjsNet.FixedBuffer,
  sameSharedRegion: esmShm.SharedRegion === cjsShm.SharedRegion,
  sameEpoll: esmEpoll.Epoll === cjsEpoll.Epoll,
  sameSimulation: esmSim.Simulation === cjsSim.Simulation,
  simulated,
  EAGAIN: [esmNet.EAGAIN, cjsNet.EAGAIN],
  netErrors: [...net, ...loops, ...regions, ...epolls, ...sims].map((e) => e instanceof esm.EvpollError && e instanceof cjs.EvpollError && e.code),
  shm,
  addon,
}));
`;
const CLASSES_MJS = `import * as esm from 'evpoll';
import * as esmNet from 'evpoll/net';
import * as esmShm from 'evpoll/shm';
import * as esmEpoll from 'evpoll/epoll';
import * as esmSim from 'evpoll/sim';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const cjs = require('evpoll');
const cjsNet = require('evpoll/net');
const cjsShm = require('evpoll/shm');
const cjsEpoll = require('evpoll/epoll');
const cjsSim = require('evpoll/sim');
${CLASSES_CHECK}`;
const CLASSES_CJS = `(async () => {
const cjs = require('evpoll');
const cjsNet = require('evpoll/net');
const cjsShm = require('evpoll/shm');
const cjsEpoll = require('evpoll/epoll');
const cjsSim = require('evpoll/sim');
const esm = await import('evpoll');
const esmNet = await import('evpoll/net');
const esmShm = await import('evpoll/shm');
const esmEpoll = await import('evpoll/epoll');
const esmSim = await import('evpoll/sim');
${CLASSES_CHECK}
})();`;
const CLASSES_EXPECTED = {
  sameEvpollError: true,
  sameEventLoop: true,
  sameFixedBuffer: true,
  sameSharedRegion: true,
  sameEpoll: true,
  sameSimulation: true,
  simulated: [true, 'sim'],
  EAGAIN: [-11, -11],
  netErrors: ['ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_UNKNOWN_MECHANISM', 'ERR_EVPOLL_UNKNOWN_MECHANISM', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG', 'ERR_EVPOLL_INVALID_ARG'],
  shm: [4096, true, true, true],
};

async function classes(w: Work, dir: string): Promise<{ mjs: Record<string, unknown>; cjs: Record<string, unknown> }> {
  writeFileSync(join(dir, 'classes.mjs'), CLASSES_MJS);
  writeFileSync(join(dir, 'classes.cjs'), CLASSES_CJS);
  return {
    mjs: JSON.parse((await node(w, dir, 'classes.mjs')).join('')),
    cjs: JSON.parse((await node(w, dir, 'classes.cjs')).join('')),
  };
}

// Consumers of the types: ESM (.mts) and CommonJS (.cts) files, and a .ts for node10 and bundler.
// Each assigns evpoll's values to declared types, and one to a wrong type under an expected-error
// directive, which fails if the types are missing (an `any` would let it through).
const TYPES_MTS = `import { EventLoop, EV, EvpollError, signalNames, type EventLoopOptions } from 'evpoll';
import { pipe, read, FixedBuffer, EAGAIN } from 'evpoll/net';
import { SharedRegion, AcceptMutex } from 'evpoll/shm';
const options: EventLoopOptions = { mechanism: 'epoll' };
const region: SharedRegion = SharedRegion.create(4096, { name: 'types' });
export const locked: boolean = new AcceptMutex(region, 0).tryLock() && region.int32(8, 1).length === 1;
// @ts-expect-error: a holder is a pid
export const badHolder: string = new AcceptMutex(region).holder;
import { Epoll, type EpollCallback } from 'evpoll/epoll';
const onEvents: EpollCallback = (err, fd, events) => { const e: Error | null = err; const n: number = fd + events; };
export const poller: Epoll = new Epoll(onEvents).add(0, Epoll.EPOLLPRI | Epoll.EPOLLONESHOT);
const loop: EventLoop = new EventLoop(options);
loop.timer(EV.PERSIST, (_ev, _which, arg) => { const n: number = arg.n; }, { n: 1 });
const [r]: [number, number] = pipe();
const n: number = read(r, new FixedBuffer(8).bytes);
export const again: boolean = n === EAGAIN;
import { Simulation, type Faults } from 'evpoll/sim';
const faults: Faults = { latency: [1, 5], reset: 0.01 };
export const digest: string = Simulation.run({ seed: 1, faults }, (sim) => sim.digest());
// @ts-expect-error: a probability is a number
export const badFaults: Faults = { reset: 'often' };
const names: readonly string[] = signalNames();
export const check = (e: unknown) => e instanceof EvpollError && e.code.startsWith('ERR_EVPOLL_') && n + names.length;
// @ts-expect-error: flags are numbers
export const bad: string = EV.READ;
`;
const TYPES_CTS = `import evpoll = require('evpoll');
import net = require('evpoll/net');
import shm = require('evpoll/shm');
import { EventLoop, type Event } from 'evpoll';
export const holder: number = new shm.AcceptMutex(shm.SharedRegion.open(3)).holder;
// @ts-expect-error: tryLock answers a boolean
export const badLock: number = new shm.AcceptMutex(shm.SharedRegion.open(3)).tryLock();
import epoll = require('evpoll/epoll');
export const poller: epoll.Epoll = new epoll.Epoll((_err, fd, events) => { const n: number = fd + events; }).modify(0, epoll.Epoll.EPOLLIN);
const loop: EventLoop = new evpoll.EventLoop({ mechanism: 'epoll' });
const ev: Event<{ n: number }> = loop.timer(evpoll.EV.PERSIST, (_ev, _which, arg) => { const n: number = arg.n; }, { n: 1 });
const [r]: [number, number] = net.pipe();
const n: number = net.read(r, new net.FixedBuffer(8).bytes);
export const again: boolean = n === net.EAGAIN;
export const check = (e: unknown) => e instanceof evpoll.EvpollError && e.code.startsWith('ERR_EVPOLL_') && n && ev.pending;
// @ts-expect-error: flags are numbers
export const bad: string = evpoll.EV.READ;
`;
const TYPES_TS = `import { EventLoop, EV } from 'evpoll';
import { pipe, read, EAGAIN } from 'evpoll/net';
import { SharedRegion } from 'evpoll/shm';
const loop: EventLoop = new EventLoop();
export const bytes: number = SharedRegion.create(1).byteLength;
// @ts-expect-error: byteLength is a number
export const badBytes: string = SharedRegion.create(1).byteLength;
import { Epoll } from 'evpoll/epoll';
export const closed: boolean = new Epoll(() => {}).closed;
const [r]: [number, number] = pipe();
export const n: number = read(r, new Uint8Array(8)) + EV.READ + (loop.closed ? 1 : 0);
// @ts-expect-error: flags are numbers
export const bad: string = EV.READ;
// @ts-expect-error: errno names are numbers
export const badErrno: string = EAGAIN;
`;
/** resolution → [module, files]; node10 is gone from TypeScript 7. */
const TYPE_CHECKS: Record<string, [string, string[]]> = {
  node16: ['node16', ['esm.mts', 'cjs.cts']],
  nodenext: ['nodenext', ['esm.mts', 'cjs.cts']],
  bundler: ['preserve', ['esm.mts', 'cjs.cts', 'main.ts']],
  node10: ['commonjs', ['main.ts']],
};

if (MECHANISM === 'epoll' && MODE === 'run') {
  test.after(() => {
    if (work) rmSync(work.dir, { recursive: true, force: true });
    work = undefined;
  });

  test('npm pack: the tarball holds the built package, the prebuilt addon and the sources to compile it, nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'evpoll-package-'));
    const w: Work = { dir, tarball: '', home: join(dir, 'home'), bareBin: join(dir, 'bare-bin'), app: '' };
    work = w;
    // The developer's own npm config packs (this is the publisher's side); the sanitizer run's
    // preload must not reach the compiler of the prebuild.
    const r = ok(await run(NPM, ['pack', '--json', '--no-foreground-scripts', '--pack-destination', dir], { cwd: packageRoot, env: cleanEnv(), timeoutMs: 300_000 }), 'npm pack');
    const [pack] = JSON.parse(r.stdout) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
    w.tarball = join(dir, pack.filename);
    const files = pack.files.map((f) => f.path).sort();
    say(`${pack.filename}, ${files.length} files, ${(pack.size / 1024).toFixed(1)} KiB packed, ${(pack.unpackedSize / 1024).toFixed(1)} KiB unpacked (npm pack ${r.seconds.toFixed(1)} s)`);
    const shipped = /^(LICENSE|README\.md|package\.json|binding\.gyp|(net|shm|epoll|sim)\.d\.ts|scripts\/install\.mjs|native\/[^/]+\.(c|cc|h)|dist\/(core\.wasm|evpoll\.cjs|(index|net|shm|epoll|sim)\.(js|cjs))|dist\/types\/[a-z]+\.d\.c?ts|prebuilds\/linux-x64\/evpoll\.glibc\.node)$/;
    assert.equal(files.filter((f) => !shipped.test(f)), [], 'files that should not be shipped');
    assert.not.ok(files.includes('dist/core-debug.wasm'), 'the debug core (tests and benchmarks) is not shipped');
    for (const f of ['LICENSE', 'dist/evpoll.cjs', 'dist/core.wasm', 'dist/types/index.d.cts', 'dist/shm.js', 'dist/shm.cjs', 'dist/types/shm.d.cts', 'shm.d.ts', 'dist/epoll.js', 'dist/epoll.cjs', 'dist/types/epoll.d.cts', 'epoll.d.ts', 'dist/sim.js', 'dist/sim.cjs', 'dist/types/sim.d.cts', 'sim.d.ts', 'prebuilds/linux-x64/evpoll.glibc.node', 'native/addon.cc', 'binding.gyp', 'scripts/install.mjs']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
  });

  test('npm install <tarball> into an empty project, fresh HOME, no make, cc, gcc, g++ or python3: the prebuild is used, nothing compiles', async () => {
    const w = ready();
    mkdirSync(w.home);
    writeFileSync(join(w.home, '.npmrc'), '');
    mkdirSync(w.bareBin);
    // sh: npm runs install scripts with `sh -c`, as any system has it.
    for (const [name, target] of [['node', process.execPath], ['npm', NPM], ['sh', '/bin/sh']]) symlinkSync(target, join(w.bareBin, name));
    w.app = newProject(w, 'app');
    const r = ok(await run(NPM, ['install', w.tarball, ...INSTALL_FLAGS], { cwd: w.app, env: consumerEnv(w, w.bareBin) }), 'npm install');
    say(`npm install without a toolchain: ${r.seconds.toFixed(1)} s`);
    assert.match(r.output, 'evpoll: using the prebuilt addon');
    assert.not.ok(existsSync(join(w.app, 'node_modules/evpoll/build')), 'nothing was compiled');
    assert.equal(readdirSync(w.bareBin).sort(), ['node', 'npm', 'sh']);
  });

  test("the README's quick start runs as written: ESM and CommonJS, main thread and worker_thread", async () => {
    const w = ready();
    const { esm, cjs } = quickStart();
    writeFileSync(join(w.app, 'quickstart.mjs'), esm);
    writeFileSync(join(w.app, 'quickstart.cjs'), cjs);
    writeFileSync(join(w.app, 'worker.mjs'), "import { Worker } from 'node:worker_threads';\nnew Worker(new URL('./quickstart.mjs', import.meta.url));\n");
    writeFileSync(join(w.app, 'worker.cjs'), "const { Worker } = require('node:worker_threads');\nnew Worker(require('node:path').join(__dirname, 'quickstart.cjs'));\n");
    for (const file of ['quickstart.mjs', 'quickstart.cjs', 'worker.mjs', 'worker.cjs']) {
      assert.equal(await node(w, w.app, file), QUICK_START_OUTPUT, file);
    }
  });

  test("the README's evpoll/sim example runs from the installed tarball, the same twice", async () => {
    const w = ready();
    const section = /### evpoll\/sim[\s\S]*?```js\n([\s\S]*?)```[\s\S]*?```text\n([\s\S]*?)```/.exec(readFileSync(join(packageRoot, 'README.md'), 'utf8'));
    assert.ok(section, 'the evpoll/sim section has a code block and the output it prints');
    writeFileSync(join(w.app, 'sim-example.mjs'), section[1]);
    const first = await node(w, w.app, 'sim-example.mjs');
    assert.equal(first, section[2].trim().split('\n'), 'what the README says it prints');
    first.forEach((line, i) => assert.match(line, new RegExp(`^seed ${i + 1}: 65536 bytes by \\d+\\.\\d ms, closed idle at 600\\.\\d s$`)));
    assert.equal(await node(w, w.app, 'sim-example.mjs'), first, 'the same seeds, the same schedules');
  });

  test('one copy of each class: instanceof EvpollError holds across evpoll, evpoll/net, evpoll/shm, evpoll/epoll and evpoll/sim, import and require', async () => {
    const w = ready();
    const { mjs, cjs } = await classes(w, w.app);
    const addon = '/node_modules/evpoll/prebuilds/linux-x64/evpoll.glibc.node';
    assert.equal(mjs, { ...CLASSES_EXPECTED, addon }, 'from ESM');
    assert.equal(cjs, { ...CLASSES_EXPECTED, addon }, 'from CommonJS');
  });

  test('npm install --ignore-scripts (a package manager that blocks dependency builds): the prebuild still loads', async () => {
    const w = ready();
    const dir = newProject(w, 'no-scripts');
    ok(await run(NPM, ['install', w.tarball, '--ignore-scripts', ...INSTALL_FLAGS], { cwd: dir, env: consumerEnv(w, w.bareBin) }), 'npm install --ignore-scripts');
    writeFileSync(join(dir, 'quickstart.mjs'), quickStart().esm);
    assert.equal(await node(w, dir, 'quickstart.mjs'), QUICK_START_OUTPUT);
  });

  test(`types: .mts and .cts consumers under node16, nodenext and bundler (this repository's TypeScript), node16 and node10 (TypeScript ${OLDEST_TYPESCRIPT})`, async () => {
    const w = ready();
    const dir = newProject(w, 'types');
    const r = await run(NPM, ['install', w.tarball, `typescript@${OLDEST_TYPESCRIPT}`, '@types/node@20', ...INSTALL_FLAGS], { cwd: dir, env: consumerEnv(w, w.bareBin) });
    ok(r, 'npm install typescript');
    writeFileSync(join(dir, 'esm.mts'), TYPES_MTS);
    writeFileSync(join(dir, 'cjs.cts'), TYPES_CTS);
    writeFileSync(join(dir, 'main.ts'), TYPES_TS);
    const compilers = [
      // The oldest (two runs: it is the slow compiler): the declarations' syntax, and node10,
      // which TypeScript 7 no longer has.
      { name: `TypeScript ${OLDEST_TYPESCRIPT}`, tsc: join(dir, 'node_modules/typescript/bin/tsc'), resolutions: ['node16', 'node10'] },
      { name: "the repository's TypeScript", tsc: join(packageRoot, 'node_modules/typescript/bin/tsc'), resolutions: ['node16', 'nodenext', 'bundler'] },
    ];
    const failures: string[] = [];
    for (const { name, tsc, resolutions } of compilers) {
      for (const resolution of resolutions) {
        const [module, files] = TYPE_CHECKS[resolution];
        const config = `tsconfig.${resolution}.json`;
        writeFileSync(join(dir, config), JSON.stringify({
          // skipLibCheck off: evpoll's declarations themselves are checked (NoInfer needs TS 5.4).
          compilerOptions: { module, moduleResolution: resolution, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
          files,
        }));
        const t = await run(process.execPath, [tsc, '-p', config], { cwd: dir, env: consumerEnv(w, w.bareBin), timeoutMs: 120_000 });
        if (t.status !== 0) failures.push(`${name}, ${resolution}:\n${t.output}`);
      }
    }
    assert.equal(failures, [], failures.join('\n'));
  });

  test('@arethetypeswrong/cli and publint find no problem in the tarball', async () => {
    const w = ready();
    const env = cleanEnv({ NO_COLOR: '1' });
    delete env.FORCE_COLOR;
    const attw = ok(await run(process.execPath, [join(packageRoot, 'node_modules/@arethetypeswrong/cli/dist/index.js'), w.tarball, '--format', 'ascii'], { cwd: w.dir, env }), 'attw');
    assert.match(attw.stdout, 'No problems found');
    const publint = ok(await run(process.execPath, [join(packageRoot, 'node_modules/publint/src/cli.js'), 'run', w.tarball, '--strict'], { cwd: w.dir, env }), 'publint');
    assert.match(publint.stdout, 'All good!');
  });

  test('compiling without a toolchain fails with what to install and how to retry; the prebuild keeps working', async () => {
    const w = ready();
    const r = await run(NPM, ['rebuild', 'evpoll', '--foreground-scripts'], { cwd: w.app, env: consumerEnv(w, w.bareBin, { npm_config_build_from_source: 'true' }) });
    assert.is.not(r.status, 0, `npm rebuild without a toolchain failed:\n${r.output}`);
    for (const words of ['a C++ compiler (g++)', 'make', 'python3', 'npm rebuild evpoll']) assert.match(r.output, words);
    assert.equal(await node(w, w.app, 'quickstart.cjs'), QUICK_START_OUTPUT);
  });

  test('compiling with a toolchain (npm rebuild evpoll --build-from-source, npm\'s own node-gyp): build/Release is loaded', async () => {
    const w = ready();
    const r = ok(await run(NPM, ['rebuild', 'evpoll', '--foreground-scripts'], { cwd: w.app, env: consumerEnv(w, process.env.PATH ?? '', { npm_config_build_from_source: 'true' }), timeoutMs: 300_000 }), 'npm rebuild');
    say(`npm rebuild evpoll --build-from-source: ${r.seconds.toFixed(1)} s`);
    assert.ok(existsSync(join(w.app, 'node_modules/evpoll/build/Release/evpoll.node')), 'compiled');
    const { mjs } = await classes(w, w.app);
    assert.equal(mjs, { ...CLASSES_EXPECTED, addon: '/node_modules/evpoll/build/Release/evpoll.node' });
    assert.equal(await node(w, w.app, 'worker.mjs'), QUICK_START_OUTPUT);
  });

  test.run();
}
