// Leaks: churn that a long-running server goes through — events registered and deleted, fds
// opened and closed, connections accepted and closed, whole loops created and closed — must
// leave the open fd count where it started, stop growing the WebAssembly core's memory after
// a warm-up, and keep RSS bounded.
//
// The core's memory is what loop.stats() reports as coreBytes.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EV, type EventLoop } from '../src/index.js';
import { Acceptor } from '../src/acceptor.js';
import * as net from '../src/net.js';
import { MODE, SIMULATION, newLoop, iterate, iterateUntil, openFds as openRealFds, writeByte, drain, killOnCleanup } from './helpers.js';

/** The fds the churn opens and closes: the process's, or on 'sim' the simulation's virtual ones. */
const openFds = (): number[] => (SIMULATION ? SIMULATION.openFds() : openRealFds());

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MiB = 2 ** 20;

/**
 * Under AddressSanitizer (scripts/asan.mjs) freed memory sits in its quarantine and RSS says
 * nothing about leaks: the RSS bounds are then only reported.
 */
const RSS_BOUNDED = !/libasan/.test(process.env.LD_PRELOAD ?? '');

function assertRssBound(grown: number, bound: number, what: string): void {
  if (RSS_BOUNDED) assert.ok(grown < bound, `RSS grew by ${fmt(grown)} ${what}`);
}

function rss(): number {
  gc();
  return process.memoryUsage().rss;
}

const threads = () => readdirSync('/proc/self/task').length;

/**
 * Asserts no fd is open now that was not open at `before` (an fd of an earlier test's child
 * process may have closed meanwhile: fewer is fine).
 */
function noNewFds(before: number[], what: string): void {
  const now = openFds();
  assert.equal(now.filter((fd) => !before.includes(fd)), [], what);
  assert.ok(now.length <= before.length, `${what}: ${now.length} fds open, ${before.length} before`);
}

/** One iteration with something to do (a timer due now), so that start mode need not wait. */
async function turn(loop: EventLoop): Promise<void> {
  if (loop.started) loop.stop();
  let fired = false;
  loop.timer(0, () => { fired = true; }).add(0);
  await iterateUntil(loop, () => fired);
}

/** The core's memory after one more iteration. */
async function coreMemory(loop: EventLoop): Promise<number> {
  await turn(loop);
  return loop.stats().coreBytes;
}

/** In start mode the churn happens while the loop is started (helper threads woken and all). */
function started(loop: EventLoop): () => void {
  if (MODE !== 'start') return () => {};
  loop.start();
  return () => loop.stop();
}

/** One line of figures in the test's output (not console.log: under uvu it warns about NO_COLOR). */
const report = (line: string) => process.stdout.write(`  ${line}\n`);

const fmt = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

test('100,000 register/delete/close cycles, each on a fresh pipe: fds back, core memory flat after warm-up, RSS bounded', async () => {
  const loop = newLoop();
  const fdsBefore = openFds();
  let reads = 0;
  const cycle = (k: number) => {
    const [r, w] = net.pipe();
    const reader = loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
    const writer = loop.event(w, EV.WRITE, () => {}).add();
    if (k % 1000 === 0) writeByte(w); // now and then one is ready when deleted
    writer.del();
    reader.del();
    net.close(r);
    net.close(w);
  };
  const block = async (from: number, n: number) => {
    for (let k = from; k < from + n; k++) {
      if (MODE === 'start' && !loop.started) loop.start();
      cycle(k);
      // The loop turns between blocks of 1,000, as a server's would between batches.
      if (k % 1000 === 999) await turn(loop);
    }
  };
  await block(0, 10_000);
  const warm = { core: await coreMemory(loop), rss: rss() };
  await block(10_000, 90_000);
  const end = { core: await coreMemory(loop), rss: rss() };
  report(`pipes: core ${fmt(warm.core)} -> ${fmt(end.core)}, rss ${fmt(warm.rss)} -> ${fmt(end.rss)}`);
  noNewFds(fdsBefore, 'every fd closed');
  assert.is(end.core, warm.core, 'the core\'s memory stopped growing after 10,000 cycles');
  assertRssBound(end.rss - warm.rss, 24 * MiB, 'over 90,000 cycles');
  loop.close();
});

test('100,000 register/delete cycles with no iteration in between: the core reuses the slots', async () => {
  const loop = newLoop();
  const [r, w] = net.pipe();
  const keep = loop.event(r, EV.READ, () => drain(r)).add(); // the others MODIFY its registration
  const cycles = async (n: number) => {
    const stop = started(loop);
    for (let k = 0; k < n; k++) {
      const ev = loop.event(k % 2 ? r : w, k % 2 ? EV.READ | EV.WRITE : EV.WRITE, () => {}).add();
      ev.del();
    }
    stop();
  };
  await cycles(10_000);
  const warm = await coreMemory(loop);
  await cycles(90_000);
  const end = await coreMemory(loop);
  report(`fd events: core ${fmt(warm)} -> ${fmt(end)}`);
  assert.is(end, warm, 'the core\'s memory stopped growing after 10,000 cycles');
  assert.ok(keep.del());
  loop.close();
  net.close(r);
  net.close(w);
});

test('100,000 timer add/del cycles and 10,000 timers firing: the core\'s memory flat after warm-up', async () => {
  const loop = newLoop();
  let fired = 0;
  const round = async (n: number) => {
    const stop = started(loop);
    for (let k = 0; k < n; k++) {
      const t = loop.timer(k % 3 ? 0 : EV.PERSIST, () => {}).add(1000 + (k % 500));
      if (k % 7 === 0) t.add(2000); // rescheduled while pending
      t.del();
    }
    stop();
    for (let k = 0; k < n / 10; k++) loop.timer(0, () => fired++).add(0);
    const want = fired + n / 10;
    await iterateUntil(loop, () => fired === want);
  };
  await round(10_000);
  const warm = await coreMemory(loop);
  for (let i = 0; i < 9; i++) await round(10_000);
  const end = await coreMemory(loop);
  report(`timers: core ${fmt(warm)} -> ${fmt(end)}`);
  assert.is(fired, 10_000);
  assert.is(end, warm, 'the core\'s memory stopped growing after 10,000 cycles');
  loop.close();
});

/**
 * A client in another process (so that run() mode, which blocks this thread, can serve it):
 * `total` connections, `concurrency` at a time, each sends one byte and waits for the answer
 * and the server's close. Prints { ok, errors } as JSON.
 */
const CLIENT = `
const net = require('node:net');
const [port, total, concurrency] = process.argv.slice(1).map(Number);
let started = 0, ok = 0, errors = 0, running = 0;
function next() {
  if (started === total) { if (running === 0) { console.log(JSON.stringify({ ok, errors })); } return; }
  started++; running++;
  let got = '';
  const s = net.connect(port, '127.0.0.1', () => s.end('x'));
  s.setEncoding('latin1').on('data', (d) => { got += d; });
  s.on('error', () => {});
  s.on('close', () => { running--; if (got === 'ok') ok++; else errors++; next(); });
}
for (let i = 0; i < concurrency; i++) next();
`;

kernelOnly('real TCP clients in a child process', () => {
  test('10,000 connections accepted, answered and closed: fds back where they started', async () => {
    const TOTAL = 10_000;
    const loop = newLoop();
    const fdsBefore = openFds();
    const listener = net.listen('127.0.0.1', 0, { backlog: 1024 });
    const answer = new TextEncoder().encode('ok');
    const buf = new Uint8Array(64);
    let closed = 0;
    const acceptor = new Acceptor(loop, listener, (fd) => {
      const ev = loop.event(fd, EV.READ, () => {
        const n = net.read(fd, buf);
        if (n === net.EAGAIN) return;
        if (n > 0) net.write(fd, answer);
        ev.del();
        net.close(fd);
        closed++;
      }).add();
    });
    const client = killOnCleanup(spawn(process.execPath, ['-e', CLIENT, String(net.localPort(listener)), String(TOTAL), '32'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, FORCE_COLOR: undefined },
    }));
    let out = '';
    client.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    const exited = new Promise<number | null>((resolve) => client.on('exit', resolve));
    let done = false;
    exited.then(() => { done = true; });
    const start = performance.now();
    let warm: { core: number; rss: number } | undefined;
    await iterateUntil(loop, () => {
      if (!warm && closed >= 1000) warm = { core: loop.stats().coreBytes, rss: process.memoryUsage().rss };
      return done && closed === TOTAL;
    }, 60_000);
    const ms = performance.now() - start;
    assert.is(await exited, 0);
    assert.equal(JSON.parse(out), { ok: TOTAL, errors: 0 });
    const end = { core: await coreMemory(loop), rss: rss() };
    report(`${TOTAL} connections in ${Math.round(ms)} ms: core ${fmt(warm!.core)} -> ${fmt(end.core)}, rss ${fmt(warm!.rss)} -> ${fmt(end.rss)}`);
    acceptor.close();
    net.close(listener);
    noNewFds(fdsBefore, 'every accepted fd closed, and nothing else left open');
    assert.ok(end.core <= warm!.core, 'the core\'s memory stopped growing after 1,000 connections');
    assertRssBound(end.rss - warm!.rss, 24 * MiB, 'over 9,000 connections');
    loop.close();
  });
});

kernelOnly("the loops' own fds and helper threads, and their signal watchers", () => {
  test('1,000 loops created, used and closed: fds and threads back, RSS bounded', async () => {
    const [r, w] = net.pipe();
    const once = async () => {
      const loop = newLoop();
      let fired = 0;
      loop.event(r, EV.READ, () => fired++).add();
      loop.timer(EV.PERSIST, () => {}).add(1000);
      loop.signal('SIGUSR2', () => {});
      writeByte(w);
      await iterateUntil(loop, () => fired === 1); // start mode: start(), a batch, stop() (poll, select: a helper thread)
      if (MODE === 'start') loop.start();
      loop.close();
      drain(r);
    };
    // The first signal watched opens, once per process, the private libuv loop that keeps
    // libuv's handlers installed (signals.cc): part of the warm-up.
    for (let i = 0; i < 100; i++) await once();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fdsBefore = openFds();
    const threadsBefore = threads();
    const warm = rss();
    const start = performance.now();
    for (let i = 0; i < 900; i++) await once();
    const ms = performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 20)); // uv_close callbacks of started loops
    const end = rss();
    report(`900 loops in ${Math.round(ms)} ms: rss ${fmt(warm)} -> ${fmt(end)}`);
    net.close(r);
    net.close(w);
    noNewFds(fdsBefore, 'no loop left an fd open');
    assert.is(threads(), threadsBefore, 'no helper thread left running');
    assertRssBound(end - warm, 32 * MiB, 'over 900 loops');
  });
});

test.run();
