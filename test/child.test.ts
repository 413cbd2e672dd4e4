// loop.child(): a child's exit through a pidfd, in run() and start() modes.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { EV, type ChildExit, type EventLoop } from '../src/index.js';
import { MODE, newLoop, iterate, iterateUntil, throwsCode, openFds } from './helpers.js';

kernelOnly('child processes, through pidfds and SIGCHLD');

const LIMIT_MS = 10_000;

/** A child that ignores stdio, so it adds no fds of its own to openFds(). */
function start(script: string): ChildProcess {
  return spawn('sh', ['-c', script], { stdio: 'ignore' });
}

function kill(children: ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Resolves on `child`'s own 'exit' (code, signal); rejects after `limitMs`. */
function exitOf(child: ChildProcess, limitMs = LIMIT_MS): Promise<[number | null, string | null]> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve([child.exitCode, child.signalCode]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child_process's 'exit' not within ${limitMs} ms`)), limitMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve([code, signal]);
    });
  });
}

/**
 * Drives `loop` until `done()`. In run mode without a turn of Node's loop in between, as a
 * program blocked in run() would: child_process then cannot reap the child first.
 */
async function driveUntil(loop: EventLoop, done: () => boolean): Promise<void> {
  if (MODE !== 'run') {
    await iterateUntil(loop, done, LIMIT_MS);
    return;
  }
  const end = performance.now() + LIMIT_MS;
  while (!done()) {
    if (performance.now() > end) throw new Error(`condition not reached within ${LIMIT_MS} ms`);
    loop.runOnce(100); // the SIGCHLD may end a wait early (EINTR): wait again
  }
}

/**
 * The exit reported is `code`/`signal`. In start mode Node's loop runs, and child_process may
 * reap the child before evpoll looks (documented): then both are null, and child_process has
 * the status.
 */
function assertExit(got: ChildExit | undefined, child: ChildProcess, code: number | null, signal: string | null): void {
  assert.ok(got, 'the exit was reported');
  if (MODE === 'start' && got.code === null && got.signal === null) {
    assert.is(got.pid, child.pid);
    assert.equal([child.exitCode, child.signalCode], [code, signal], 'reaped by child_process first');
    return;
  }
  assert.equal(got, { pid: child.pid, code, signal });
}

test('a child that exits with code 3 is reported once, with its pid; then the pidfd is closed', async () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const before = openFds();
    const c = start('exit 3');
    children.push(c);
    const seen: [number, ChildExit][] = [];
    const ev = loop.child(c.pid!, (e, which, exit) => {
      assert.is(e, ev);
      seen.push([which, exit]);
    });
    assert.is(ev.pid, c.pid);
    assert.ok(ev.pending);
    assert.is(openFds().length, before.length + 1, 'one pidfd open');
    await driveUntil(loop, () => seen.length > 0);
    assert.is(seen[0][0], EV.READ);
    assertExit(seen[0][1], c, 3, null);
    assert.not.ok(ev.pending, 'one-shot');
    assert.is(ev.del(), false);
    assert.equal(openFds(), before, 'the pidfd is closed');
    await exitOf(c);
    assert.is(await iterate(loop, 20), 0);
    assert.is(seen.length, 1, 'once');
  } finally {
    kill(children);
    loop.close();
  }
});

test('a child killed by SIGKILL is reported with signal \'SIGKILL\' and code null', async () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = start('sleep 30');
    children.push(c);
    let got: ChildExit | undefined;
    loop.child(c.pid!, (_e, _w, exit) => (got = exit));
    assert.is(await iterate(loop, 20), 0, 'still running: nothing to report');
    c.kill('SIGKILL');
    await driveUntil(loop, () => got !== undefined);
    assertExit(got, c, null, 'SIGKILL');
  } finally {
    kill(children);
    loop.close();
  }
});

test('a loop blocked in run() learns of the exit (Node\'s loop, and child_process\'s \'exit\', cannot run)', () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = start('sleep 0.2; exit 3');
    children.push(c);
    let got: ChildExit | undefined;
    let timedOut = false;
    const guard = loop.timer(0, () => {
      timedOut = true;
      loop.stop();
    }).add(LIMIT_MS);
    loop.child(c.pid!, (_e, _w, exit) => {
      got = exit;
      loop.stop();
    });
    loop.run();
    assert.not.ok(timedOut, `no exit reported within ${LIMIT_MS} ms`);
    assert.equal(got, { pid: c.pid, code: 3, signal: null });
    guard.del();
  } finally {
    kill(children);
    loop.close();
  }
});

test('runOnce() with a timeout returns with the exit reported (a SIGCHLD\'s EINTR only ends a wait early)', () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = start('sleep 0.2; exit 3');
    children.push(c);
    let got: ChildExit | undefined;
    loop.child(c.pid!, (_e, _w, exit) => (got = exit));
    const end = performance.now() + LIMIT_MS;
    while (got === undefined && performance.now() < end) loop.runOnce(LIMIT_MS);
    assert.equal(got, { pid: c.pid, code: 3, signal: null });
  } finally {
    kill(children);
    loop.close();
  }
});

test('the child is not reaped: child_process\'s own \'exit\' still arrives, with the same status', async () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = start('sleep 0.1; exit 7');
    children.push(c);
    const exited = exitOf(c);
    let got: ChildExit | undefined;
    loop.child(c.pid!, (_e, _w, exit) => (got = exit));
    await driveUntil(loop, () => got !== undefined);
    assertExit(got, c, 7, null);
    // Reaped by evpoll, libuv would never say 'exit' and the handle would stay alive.
    assert.equal(await exited, [7, null]);
  } finally {
    kill(children);
    loop.close();
  }
});

test('del() before the exit: no callback, the pidfd is closed; add() watches again', async () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = start('sleep 30');
    children.push(c);
    const exited = exitOf(c);
    const before = openFds();
    let calls = 0;
    const ev = loop.child(c.pid!, () => calls++);
    assert.is(openFds().length, before.length + 1);
    assert.is(ev.del(), true);
    assert.not.ok(ev.pending);
    assert.is(ev.del(), false);
    assert.equal(openFds(), before, 'no fd left');
    ev.add();
    assert.ok(ev.pending);
    assert.is(ev.del(), true);
    c.kill('SIGKILL');
    let done = false;
    void exited.then(() => (done = true));
    await iterateUntil(loop, () => done, LIMIT_MS);
    assert.is(calls, 0);
    assert.equal(openFds(), before);
  } finally {
    kill(children);
    loop.close();
  }
});

test('close() closes every child watcher\'s pidfd', () => {
  const children: ChildProcess[] = [];
  let loop: EventLoop | undefined;
  try {
    children.push(start('sleep 30'), start('sleep 30'));
    const before = openFds(); // before the loop: close() closes its backend's fds too
    const watching = (loop = newLoop());
    const withLoop = openFds().length;
    const evs = children.map((c) => watching.child(c.pid!, () => {}));
    assert.is(openFds().length, withLoop + 2, 'a pidfd each');
    watching.close();
    assert.equal(openFds(), before, 'no fd left');
    assert.ok(evs.every((ev) => !ev.pending));
  } finally {
    kill(children);
    loop?.close();
  }
});

test('errors: a pid that is not a positive integer, a callback that is not a function, a closed loop', () => {
  const loop = newLoop();
  try {
    for (const pid of [0, -1, 1.5, 'x', NaN, 2 ** 31, undefined]) {
      throwsCode(() => loop.child(pid as number, () => {}), 'ERR_EVPOLL_INVALID_ARG');
    }
    throwsCode(() => loop.child(process.pid, 'cb' as never), 'ERR_EVPOLL_INVALID_ARG');
    loop.close();
    throwsCode(() => loop.child(process.pid, () => {}), 'ERR_EVPOLL_CLOSED');
  } finally {
    loop.close();
  }
});

test('a process that no longer exists (already reaped) is ESRCH from pidfd_open', async () => {
  const loop = newLoop();
  const children: ChildProcess[] = [];
  try {
    const c = spawn('true', { stdio: 'ignore' });
    children.push(c);
    assert.equal(await exitOf(c), [0, null]);
    const before = openFds();
    const err = throwsCode(() => loop.child(c.pid!, () => {}), 'ESRCH');
    assert.is(err.syscall, 'pidfd_open');
    assert.is(err.errno, -3);
    assert.equal(openFds(), before);
  } finally {
    kill(children);
    loop.close();
  }
});

test('a process that is not our child (pid 1) is ECHILD from waitid, and no fd is left', () => {
  const loop = newLoop();
  try {
    const before = openFds();
    const err = throwsCode(() => loop.child(1, () => {}), 'ECHILD');
    assert.is(err.syscall, 'waitid');
    assert.equal(openFds(), before);
  } finally {
    loop.close();
  }
});

test.run();
