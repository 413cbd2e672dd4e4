// Shared by every suite: the mechanism and mode under test (set by scripts/test.mjs), fds that
// are cleaned up, and one way to drive the loop in either mode.
import { openSync, readdirSync } from 'node:fs';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { artefact, packageRoot } from '../src/paths.js';
import { EventLoop, type EventLoopOptions } from '../src/index.js';
import * as net from '../src/net.js';
import { Simulation } from '../src/sim.js';
import { onCleanup } from './harness.js';

export const MECHANISM = process.env.EVPOLL_MECHANISM ?? 'epoll';
export const MODE = process.env.EVPOLL_MODE ?? 'run';

/**
 * On the 'sim' mechanism each test file runs in a Simulation (evpoll/sim) of its own (every
 * file bundles its own copy of src/): evpoll/net makes virtual fds, loops run on virtual time.
 * A well-behaved network (no faults): the conformance tests check the loop, not the network.
 * EVPOLL_SIM_SEED picks the seed (default 1).
 */
export const SIMULATION = MECHANISM === 'sim' ? Simulation.install({ seed: Number(process.env.EVPOLL_SIM_SEED ?? 1) }) : undefined;

/**
 * The clock loops on the mechanism under test run on, in ms: performance.now(), or on 'sim' the
 * simulation's virtual one, which moves only as loops wait (real time passes, it does not).
 * For a test that measures how long a loop waited, or when a timer fired.
 */
export const loopNow = (): number => (SIMULATION ? SIMULATION.now() : performance.now());

/**
 * A loop on the mechanism under test, closed after the test if the test has not closed it: a
 * failed assertion must not leave it started (keeping the process alive) or watching signals.
 */
export function newLoop(options: EventLoopOptions = {}): EventLoop {
  const loop = new EventLoop({ mechanism: MECHANISM, ...options });
  const ref = new WeakRef(loop); // leaks.test makes loops by the thousand: do not hold them
  onCleanup(() => ref.deref()?.close());
  return loop;
}

/** `child`, killed (SIGKILL) after the test if it is still running, and never keeping the process alive. */
export function killOnCleanup<T extends ChildProcess>(child: T): T {
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Its exit may never be reported (a SIGCHLD lost in libuv's full signal pipe): let it go.
    child.unref();
    for (const stream of child.stdio) stream?.destroy();
  });
  return child;
}

/** process.on(event, listener) for the current test only: removed after it, passed or failed. */
export function onProcess(event: string, listener: (...args: any[]) => void): void {
  process.on(event, listener);
  onCleanup(() => process.off(event, listener));
}

/** In integrated mode, how long "poll now" (timeout 0) gives the backend to report. */
const START_MODE_GRACE_MS = 25;

/**
 * One iteration of `loop`, as the mode under test drives it; resolves to the callbacks run.
 * run mode: runOnce(timeoutMs). start mode: start() the loop on Node's event loop, wait for
 * the first batch that runs a callback (a prepare hook, which runs after each batch, reads
 * loop.stats()), or until timeoutMs (at least a short grace for the backend to report), then
 * stop() it again; a callback's exception rejects.
 */
export async function iterate(loop: EventLoop, timeoutMs?: number, graceMs = START_MODE_GRACE_MS): Promise<number> {
  if (MODE !== 'start') return loop.runOnce(timeoutMs);
  return new Promise<number>((resolve, reject) => {
    const before = loop.stats().callbacks;
    const ran = () => loop.stats().callbacks - before;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      hook.del();
      loop.off('error', onError);
      if (timer) clearTimeout(timer);
      if (loop.started) loop.stop();
      settle();
    };
    const onError = (err: unknown) => finish(() => reject(err));
    loop.on('error', onError);
    const hook = loop.prepare(() => {
      if (ran() === 0) return;
      // Stopped now, so no other batch runs; settled after this batch's 'error', if any.
      loop.stop();
      queueMicrotask(() => finish(() => resolve(ran())));
    });
    if (timeoutMs !== undefined) {
      // At least that long on performance.now()'s clock, as runOnce(timeoutMs) waits: a Node
      // timer counts from libuv's cached loop time, which lags by however long this turn has
      // run, so it can fire that much early.
      const deadline = performance.now() + Math.max(timeoutMs, graceMs);
      const expire = () => {
        const left = deadline - performance.now();
        if (left > 0) timer = setTimeout(expire, Math.ceil(left));
        else finish(() => resolve(ran()));
      };
      expire();
    }
    loop.start();
  });
}

/**
 * An iteration that is expected to dispatch (an fd already ready, a timer already due): as
 * iterate(loop, 0), but in start mode it waits up to 5 s for the backend's batch instead of
 * the short grace, since a loaded machine can keep poll/select's helper thread off the CPU
 * for longer than that. Resolves as soon as a batch runs a callback.
 */
export function iterateExpecting(loop: EventLoop): Promise<number> {
  return iterate(loop, 0, 5000);
}

const opened = new Set<number>();
let closingAfterTest = false;

function track(fds: [number, number]): [number, number] {
  fds.forEach((fd) => opened.add(fd));
  if (!closingAfterTest) {
    closingAfterTest = true;
    onCleanup(closeAll);
  }
  return fds;
}

/** net.pipe(), both ends closed after the test. */
export function pipe(): [number, number] {
  return track(net.pipe());
}

/** net.socketpair(), both ends closed after the test. */
export function socketpair(): [number, number] {
  return track(net.socketpair());
}

export function close(fd: number): void {
  opened.delete(fd);
  net.close(fd);
}

/** Closes every fd a test opened through these helpers (after each test, and when a test asks). */
export function closeAll(): void {
  for (const fd of opened) net.close(fd);
  opened.clear();
  closingAfterTest = false;
}

const one = new Uint8Array([0x2a]);
const scratch = new Uint8Array(65536);

export function writeByte(fd: number): void {
  const n = net.write(fd, one);
  if (n !== 1) throw new Error(`write(${fd}) returned ${n}`);
}

/** Reads everything available; returns the byte count. */
export function drain(fd: number): number {
  let total = 0;
  for (;;) {
    const n = net.read(fd, scratch);
    if (n <= 0) return total;
    total += n;
  }
}

/** Fills a nonblocking fd's buffer until the kernel refuses more (it stops being writable). */
export function fill(fd: number): number {
  let total = 0;
  for (;;) {
    const n = net.write(fd, scratch);
    if (n <= 0) return total;
    total += n;
  }
}

/** The process's open fd numbers. */
export function openFds(): number[] {
  return readdirSync('/proc/self/fd').map(Number).filter((fd) => Number.isInteger(fd)).sort((a, b) => a - b);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `done` on Node's timers until it holds or `limitMs` has passed; says whether it holds.
 * For what must happen soon: a fixed sleep before an assertion fails whenever a shared CPU
 * stalls this process (CI runs under ASan on two cores); a limit of seconds only fails if it
 * never happens. For a condition the caller then asserts with its own message.
 */
export async function eventually(done: () => boolean, limitMs = 5000): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

/** As eventually(), but throws if `done` does not hold within `limitMs`. */
export async function until(what: string, done: () => boolean, limitMs = 5000): Promise<void> {
  if (!(await eventually(done, limitMs))) throw new Error(`not within ${limitMs} ms: ${what}`);
}

/** Runs iterations until `done()` or `limitMs` passes; returns the iterations made. */
export async function iterateUntil(loop: EventLoop, done: () => boolean, limitMs = 2000): Promise<number> {
  const end = performance.now() + limitMs;
  let n = 0;
  while (!done()) {
    if (performance.now() > end) throw new Error(`condition not reached within ${limitMs} ms`);
    await iterate(loop, Math.max(0, Math.min(50, end - performance.now())));
    n++;
    // A turn of Node's own loop too (child_process exits, Node timers), which run() mode blocks.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return n;
}

/**
 * Drives `loop` as the mode under test does, continuously (run mode: runOnce() with no timeout,
 * each iteration one the loop makes on its own; start mode: started throughout), until `done()`
 * holds or `limitMs` passes; returns done().
 */
export async function drive(loop: EventLoop, limitMs: number, done: () => boolean = () => false): Promise<boolean> {
  let expired = false;
  const limit = loop.timer(0, () => { expired = true; }).add(limitMs);
  if (MODE === 'start') {
    loop.start();
    try {
      await until('the loop driven until done or its limit timer', () => done() || expired, limitMs + 5000);
    } finally {
      loop.stop();
    }
  } else {
    while (!done() && !expired) loop.runOnce();
  }
  limit.del();
  return done();
}

/** Asserts `fn` throws an error with `code` (and returns it). */
export function throwsCode(fn: () => unknown, code: string): Error & { code: string; errno?: number; syscall?: string } {
  try {
    fn();
  } catch (e) {
    const err = e as Error & { code: string };
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  throw new Error(`expected an error with code ${code}, nothing was thrown`);
}

/**
 * Runs `code`, an ES module body with CHILD_PRELUDE's names in scope, in a child node process
 * (with `env`, default this process's, and node's own `nodeArgs` before it); returns its status,
 * output and duration.
 */
export function runChild(code: string, timeout = 15_000, env: NodeJS.ProcessEnv = process.env, nodeArgs: string[] = []) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', CHILD_PRELUDE + code], { encoding: 'utf8', timeout, env });
  return { ...r, ms: performance.now() - started };
}

/** Opens /dev/null until the process is out of fds (EMFILE); the fds opened, to close later. */
export function fillFdTable(): number[] {
  const fillers: number[] = [];
  for (;;) {
    try {
      fillers.push(openSync('/dev/null', 'r'));
    } catch {
      return fillers; // EMFILE: the table is full
    }
  }
}

/** A file of the built package, as a quoted file URL to paste into the code of a child. */
const builtFile = (f: string) => JSON.stringify(pathToFileURL(join(packageRoot, f)).href);

/**
 * The head of an ES module run in a child process or a worker_thread (runChild, workers.test)
 * on the built package, as a user loads it: EventLoop and EV (evpoll), net (evpoll/net) and
 * MECHANISM in scope.
 */
export const CHILD_PRELUDE = `import { EventLoop, EV } from ${builtFile('dist/index.js')};
import * as net from ${builtFile('dist/net.js')};
const MECHANISM = ${JSON.stringify(MECHANISM)};
`;

/**
 * Runs the test file `moduleUrl` (its import.meta.url) again, in a child node process whose fd
 * limit is 64 (prlimit) and with `flag` set in its environment, so that the file runs its child
 * part instead of its tests; resolves to what the child printed as JSON on its last line.
 */
export function runUnderFdLimit<T>(moduleUrl: string, flag: string, timeoutMs: number): Promise<T> {
  const env = { ...process.env, FORCE_COLOR: undefined, [flag]: '1' };
  return new Promise<T>((resolve, reject) => {
    execFile('prlimit', ['--nofile=64:64', process.execPath, fileURLToPath(moduleUrl)], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as T);
    });
  });
}

/** The native addon's file, as the library loads it in these tests: EVPOLL_ADDON, else build/. */
export function addonPath(): string {
  const chosen = process.env.EVPOLL_ADDON;
  return chosen ? resolve(chosen) : artefact('the native addon', ['build/Release/evpoll.node', 'build/Debug/evpoll.node']);
}

/** V8's gc(), exposed at run time: for the tests that measure what collection frees. */
export function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export const MiB = 2 ** 20;

/** Under AddressSanitizer freed memory sits in quarantine: RSS bounds are only reported there. */
export const RSS_BOUNDED = !/libasan/.test(process.env.LD_PRELOAD ?? '');

/** A line of measurements in the test output, under the test's name. */
export const report = (line: string) => process.stdout.write(`  ${line}\n`);

export const noop = () => {};
