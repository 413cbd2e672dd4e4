// NODE_DEBUG=evpoll: each kind of line the README lists, read from the stderr of a child process
// (util.debuglog reads NODE_DEBUG once, at start-up), and nothing at all when it is unset.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { MECHANISM, MODE, addonPath, runChild } from './helpers.js';

kernelOnly('NODE_DEBUG lines of the native backends, read from real child processes');

const M = MECHANISM;
const helperThread = M !== 'epoll'; // integrated mode: poll and select wait on a helper thread

/** Runs `code` (runChild's scope, plus MODE) with NODE_DEBUG=evpoll or without it. */
function child(code: string, debugOn = true) {
  // FORCE_COLOR (set by the test runner) beside NO_COLOR makes Node warn on stderr.
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: undefined };
  if (debugOn) env.NODE_DEBUG = 'evpoll';
  else delete env.NODE_DEBUG;
  const r = runChild(`const MODE = ${JSON.stringify(MODE)};\n${code}`, 20_000, env);
  assert.is(r.status, 0, `the child failed (${r.status ?? r.signal}): ${r.stderr}`);
  const prefix = `EVPOLL ${r.pid}: `;
  const lines = r.stderr.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { lines, out, stderr: r.stderr };
}

const registrations = (lines: string[]) => lines.filter((l) => new RegExp(`^${M} (add|modify|remove) fd `).test(l));

test('the addon and the WebAssembly core loaded are named once, by full path', () => {
  const { lines } = child(`
    new EventLoop({ mechanism: MECHANISM }).close();
    new EventLoop({ mechanism: MECHANISM }).close();
    console.log('{}');
  `);
  const addon = realpathSync(addonPath());
  assert.equal(lines.filter((l) => l.startsWith('addon ')), [`addon ${addon}`]);
  assert.equal(lines.filter((l) => l.startsWith('WebAssembly core ')), [`WebAssembly core ${join(packageRoot, 'dist/core.wasm')}`]);
  assert.equal(lines.filter((l) => l.startsWith('loop created: ')).length, 2);
});

test('each registration change names the fd, the interest as flags, the backend call and its result', () => {
  const { lines, out } = child(`
    const loop = new EventLoop({ mechanism: MECHANISM });
    const [r] = net.pipe();
    const [s] = net.socketpair();
    const reader = loop.event(r, EV.READ | EV.PERSIST, () => {}).add();
    const writer = loop.event(r, EV.WRITE | EV.PERSIST, () => {}).add();
    writer.del();
    reader.del();
    loop.event(s, EV.READ | EV.EDGE, () => {}).add();
    loop.close();
    console.log(JSON.stringify({ r, s }));
  `);
  const { r, s } = out;
  assert.equal(registrations(lines), [
    `${M} add fd ${r} READ -> 0`,
    `${M} modify fd ${r} READ|WRITE -> 0`,
    `${M} modify fd ${r} READ -> 0`,
    `${M} remove fd ${r} -> 0`,
    `${M} add fd ${s} READ|EDGE -> 0`,
  ]);
});

test('a regular file: epoll refuses it (EPERM, thrown at add()), poll and select take it', () => {
  const { lines, out } = child(`
    import { openSync } from 'node:fs';
    const fd = openSync(process.execPath, 'r');
    const loop = new EventLoop({ mechanism: MECHANISM });
    let err = null;
    try {
      loop.event(fd, EV.READ, () => {}).add();
    } catch (e) {
      err = { code: e.code, message: e.message };
    }
    loop.close();
    console.log(JSON.stringify({ fd, err }));
  `);
  const throws = lines.filter((l) => l.startsWith('throws '));
  if (M === 'epoll') {
    assert.equal(out.err?.code, 'EPERM');
    assert.equal(registrations(lines), [`epoll add fd ${out.fd} READ -> EPERM`]);
    assert.equal(throws, [`throws EPERM from Event.add(): ${out.err.message}`]);
  } else {
    assert.is(out.err, null);
    assert.equal(registrations(lines), [`${M} add fd ${out.fd} READ -> 0`]);
    assert.equal(throws, []);
  }
});

test('every error thrown at a caller: its code, the API call that threw, its message', () => {
  const { lines, out } = child(`
    const errors = [];
    const attempt = (fn) => {
      try {
        fn();
        errors.push(null);
      } catch (e) {
        errors.push({ code: e.code, message: e.message });
      }
    };
    attempt(() => new EventLoop({ mechanism: 'kqueue' }));
    const loop = new EventLoop({ mechanism: MECHANISM });
    attempt(() => loop.runOnce(-1));
    attempt(() => loop.event(1000, EV.READ, () => {}).add()); // not open
    loop.close();
    attempt(() => loop.runOnce(0));
    console.log(JSON.stringify(errors));
  `);
  const calls = ['new EventLoop', 'EventLoop.runOnce', 'Event.add', 'EventLoop.runOnce'];
  assert.equal(
    out.map((e: { code: string } | null) => e?.code),
    ['ERR_EVPOLL_MECHANISM_UNAVAILABLE', 'ERR_EVPOLL_INVALID_ARG', 'EBADF', 'ERR_EVPOLL_CLOSED'],
  );
  assert.equal(
    lines.filter((l) => l.startsWith('throws ')),
    out.map((e: { code: string; message: string }, i: number) => `throws ${e.code} from ${calls[i]}(): ${e.message}`),
  );
  assert.ok(lines.includes(`${M} add fd 1000 READ -> EBADF`), lines.join('\n'));
});

test('a signal during a blocking wait: run() tells of the EINTR; start() has no blocking wait on this thread', () => {
  // The sender goes on until the child has had three signals (or is gone): whichever arrive
  // while the child is between waits do not interrupt one, the others must.
  const { lines, out } = child(`
    import { spawn } from 'node:child_process';
    process.on('SIGUSR2', () => {}); // so that a signal sent after close() cannot kill the child
    const loop = new EventLoop({ mechanism: MECHANISM });
    let delivered = 0;
    loop.signal('SIGUSR2', () => delivered++);
    const sender = spawn('/bin/sh', ['-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.2; kill -USR2 ' + process.pid + ' || exit; done'], { stdio: 'ignore' });
    const finish = () => {
      sender.kill();
      loop.close();
      console.log(JSON.stringify({ delivered }));
    };
    if (MODE === 'run') {
      while (delivered < 3) loop.runOnce(5000);
      finish();
    } else {
      loop.start();
      const check = setInterval(() => {
        if (delivered < 3) return;
        clearInterval(check);
        loop.stop();
        finish();
      }, 10);
    }
  `);
  assert.ok(out.delivered >= 3);
  const eintr = lines.filter((l) => l.startsWith(`${M} wait -> EINTR`));
  if (MODE === 'run') {
    assert.ok(eintr.length >= 1, `no EINTR line:\n${lines.join('\n')}`);
    for (const l of eintr) assert.match(l, new RegExp(`^${M} wait -> EINTR \\(no records after \\d+\\.\\d of 5000 ms\\)$`));
  } else {
    assert.equal(eintr, []);
    // The self-pipe's readiness comes back from the helper thread (poll, select) or from libuv (epoll).
    assert.is(lines.some((l) => l === `${M}: batch back from the helper thread (1 record)`), helperThread, lines.join('\n'));
  }
});

test('a wait that fails names the mechanism and the errno, and its error is thrown at runOnce()', () => {
  // epoll: its fd closed behind its back. poll: more fds registered than RLIMIT_NOFILE (EINVAL).
  // select: it has no failure to provoke (EBADF is an fd's EV.ERROR, not the wait's), so the
  // check is that an fd closed behind its back gives no wait line.
  const { lines, out } = child(`
    import { readdirSync, readlinkSync } from 'node:fs';
    import { execFileSync } from 'node:child_process';
    const epollFds = () => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync('/proc/self/fd/' + fd) === 'anon_inode:[eventpoll]'; } catch { return false; } }).map(Number);
    const before = epollFds();
    const loop = new EventLoop({ mechanism: MECHANISM });
    let which = 0;
    const pipes = Array.from({ length: 20 }, () => net.pipe());
    for (const [r] of pipes) loop.event(r, EV.READ | EV.PERSIST, (_ev, w) => { which |= w; }).add();
    if (MECHANISM === 'epoll') net.close(epollFds().find((fd) => !before.includes(fd)));
    else if (MECHANISM === 'poll') execFileSync('prlimit', ['--pid', String(process.pid), '--nofile=16:16']);
    else net.close(pipes[0][0]);
    let err = null;
    try {
      loop.runOnce(0);
    } catch (e) {
      err = { code: e.code, message: e.message };
    }
    console.log(JSON.stringify({ err, which }));
  `);
  const waits = lines.filter((l) => l.startsWith(`${M} wait -> `));
  if (M === 'select') {
    assert.is(out.err, null);
    assert.ok(out.which & 32, 'EV.ERROR for the closed fd');
    assert.equal(waits, []);
    return;
  }
  const code = M === 'epoll' ? 'EBADF' : 'EINVAL';
  assert.is(out.err?.code, code);
  assert.equal(waits, [`${M} wait -> ${code}`]);
  assert.ok(lines.includes(`throws ${code} from EventLoop.runOnce(): ${out.err.message}`), lines.join('\n'));
});

test('start() and stop() say how the wait is handed over; poll and select: one line per hand-off, not per event', () => {
  const { lines, out } = child(`
    const loop = new EventLoop({ mechanism: MECHANISM });
    const pipes = Array.from({ length: 20 }, () => net.pipe());
    const buf = new Uint8Array(16);
    let ran = 0;
    for (const [r] of pipes) loop.event(r, EV.READ | EV.PERSIST, () => { net.read(r, buf); ran++; }).add();
    loop.start();
    setTimeout(() => { for (const [, w] of pipes) net.write(w, buf.subarray(0, 1)); }, 20);
    const check = setInterval(() => {
      if (ran < 20) return;
      clearInterval(check);
      // A turn for the batch after the last to find nothing and hand the wait back.
      setTimeout(() => {
        loop.stop();
        loop.close();
        console.log(JSON.stringify({ ran }));
      }, 50);
    }, 5);
  `);
  assert.ok(out.ran >= 20);
  const from = lines.findIndex((l) => l.startsWith('started (integrated mode)'));
  const to = lines.indexOf('stopped (integrated mode)');
  assert.ok(from >= 0 && to > from, lines.join('\n'));
  const between = lines.slice(from + 1, to);
  if (!helperThread) {
    assert.is(lines[from], `started (integrated mode): libuv polls epoll's fd`);
    assert.equal(between, []);
    return;
  }
  assert.is(lines[from], `started (integrated mode): ${M}'s wait handed to a helper thread`);
  // Each batch the helper posts is followed by the wait going back to it before the next.
  const back = `${M}: wait handed back to the helper thread`;
  const batch = new RegExp(`^${M}: batch back from the helper thread \\((1 record|\\d+ records)\\)$`);
  assert.ok(between.length >= 2 && between.length <= 10, `${between.length} hand-off lines for 20 events:\n${between.join('\n')}`);
  between.forEach((l, i) => (i % 2 === 0 ? assert.match(l, batch) : assert.is(l, back)));
  assert.is(between.length % 2, 0, 'the last batch was followed by a hand-back');
});

test('with NODE_DEBUG unset, nothing is printed', () => {
  const { stderr, out } = child(
    `
    import { openSync } from 'node:fs';
    const loop = new EventLoop({ mechanism: MECHANISM });
    const [r, w] = net.pipe();
    let ran = 0;
    const ev = loop.event(r, EV.READ | EV.PERSIST, () => { net.read(r, new Uint8Array(8)); ran++; }).add();
    loop.event(w, EV.WRITE, () => {}).add().del();
    try { loop.event(openSync(process.execPath, 'r'), EV.READ, () => {}).add().del(); } catch {}
    try { loop.runOnce(-1); } catch {}
    net.write(w, new Uint8Array([1]));
    if (MODE === 'run') loop.runOnce(1000);
    else {
      loop.start();
      await new Promise((resolve) => { const t = setInterval(() => { if (ran > 0) { clearInterval(t); resolve(); } }, 5); });
      loop.stop();
    }
    ev.del();
    loop.close();
    console.log(JSON.stringify({ ran }));
  `,
    false,
  );
  assert.is(out.ran, 1);
  assert.not.match(stderr, /EVPOLL/);
});

test.run();
