// Bad input throws at the call that received it and leaves the loop usable.
import { kernelOnly, onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { openSync, closeSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EV, Event, EvpollError, type EventLoop } from '../src/index.js';
import { addon } from '../src/native.js';
import { EBADF } from '../src/net.js';
import { VIRTUAL_FD_BASE } from '../src/virtual.js';
import { newLoop, iterate, iterateExpecting, pipe, writeByte, drain, close, throwsCode, openFds, noop, SIMULATION } from './helpers.js';

/** Where fd numbers start: on 'sim' a loop watches virtual fds, numbered from VIRTUAL_FD_BASE. */
const FD0 = SIMULATION ? VIRTUAL_FD_BASE : 0;


/** The loop still dispatches, and `survivor` (registered before the error) still fires. */
async function stillWorks(loop: EventLoop, survivor: { w: number; count: () => number }) {
  const before = survivor.count();
  writeByte(survivor.w);
  await iterate(loop, 0);
  assert.is(survivor.count(), before + 1, 'the earlier registration still fires');
  let fired = 0;
  loop.timer(0, () => fired++).add(0);
  await iterate(loop, 0);
  assert.is(fired, 1, 'a new timer still fires');
}

function withSurvivor(loop: EventLoop) {
  const [r, w] = pipe();
  let n = 0;
  loop.event(r, EV.READ, () => { n++; drain(r); }).add();
  return { w, count: () => n };
}

test('invalid arguments: ERR_EVPOLL_INVALID_ARG, nothing registered is lost', async () => {
  const loop = newLoop();
  const survivor = withSurvivor(loop);
  const [r] = pipe();
  const cases: [string, () => unknown][] = [
    ['negative fd', () => loop.event(-1, EV.READ, noop)],
    ['non-integer fd', () => loop.event(1.5, EV.READ, noop)],
    ['string fd', () => loop.event('3' as unknown as number, EV.READ, noop)],
    ['unknown flag bits', () => loop.event(r, EV.READ | 64, noop)],
    ['ERROR asked for', () => loop.event(r, EV.READ | EV.ERROR, noop)],
    ['TIMEOUT on an fd event', () => loop.event(r, EV.READ | EV.TIMEOUT, noop)],
    ['neither READ nor WRITE', () => loop.event(r, EV.PERSIST, noop)],
    ['negative flags', () => loop.event(r, -2, noop)],
    ['callback not a function', () => loop.event(r, EV.READ, 'f' as unknown as () => void)],
    ['timer with READ', () => loop.timer(EV.READ, noop)],
    ['timer callback missing', () => loop.timer(0, undefined as unknown as () => void)],
    ['negative timeout', () => loop.timer(0, noop).add(-1)],
    ['NaN timeout', () => loop.timer(0, noop).add(NaN)],
    ['infinite timeout', () => loop.timer(0, noop).add(Infinity)],
    ['string timeout', () => loop.timer(0, noop).add('5' as unknown as number)],
    ['fd event negative timeout', () => loop.event(r, EV.READ, noop).add(-5)],
    ['runOnce negative timeout', () => loop.runOnce(-1)],
    ['runOnce NaN timeout', () => loop.runOnce(NaN)],
  ];
  for (const [what, fn] of cases) {
    const err = throwsCode(fn, 'ERR_EVPOLL_INVALID_ARG');
    assert.instance(err, EvpollError, what);
  }
  await stillWorks(loop, survivor);
  loop.close();
});

test('new Event(...) is held to the checks of loop.event() and loop.timer()', async () => {
  const loop = newLoop();
  const survivor = withSurvivor(loop);
  const [r, w] = pipe();
  const cases: [string, () => unknown][] = [
    ['not a loop', () => new Event({} as unknown as EventLoop, r, EV.READ, noop, undefined)],
    ['no loop', () => new Event(undefined as unknown as EventLoop, -1, 0, noop, undefined)],
    ['fd event without READ or WRITE', () => new Event(loop, r, EV.PERSIST, noop, undefined)],
    ['fd below -1', () => new Event(loop, -2, EV.READ, noop, undefined)],
    ['timer with READ', () => new Event(loop, -1, EV.READ, noop, undefined)],
    ['callback not a function', () => new Event(loop, r, EV.READ, 42 as unknown as () => void, undefined)],
    ['loop.event(-1, ...): -1 means a timer only to the constructor', () => loop.event(-1, EV.READ, noop)],
  ];
  for (const [what, fn] of cases) assert.instance(throwsCode(fn, 'ERR_EVPOLL_INVALID_ARG'), EvpollError, what);
  // Well-formed, it is an event like any other.
  let reads = 0, fired = 0;
  new Event(loop, r, EV.READ, () => { reads++; drain(r); }, undefined).add();
  new Event(loop, -1, 0, () => fired++, undefined).add(0);
  writeByte(w);
  await iterate(loop, 0);
  assert.is(reads, 1);
  assert.is(fired, 1);
  await stillWorks(loop, survivor);
  loop.close();
  throwsCode(() => new Event(loop, -1, 0, noop, undefined), 'ERR_EVPOLL_CLOSED');
});

test('an fd that is not open: EBADF in Node\'s SystemError shape at add()', async () => {
  const loop = newLoop();
  const survivor = withSurvivor(loop);
  let bad = 100;
  if (SIMULATION) {
    // A virtual fd that was open and is not any more (real fd numbers are refused on 'sim').
    const [r, w] = pipe();
    close(r);
    close(w);
    bad = r;
  } else {
    const fds = openFds();
    while (fds.includes(bad)) bad++;
  }
  const ev = loop.event(bad, EV.READ, noop);
  const err = throwsCode(() => ev.add(), 'EBADF');
  assert.is(err.errno, EBADF);
  assert.is(err.syscall, ({ epoll: 'epoll_ctl', sim: 'sim_ctl' } as Record<string, string>)[loop.mechanism] ?? 'fcntl');
  assert.match(err.message, /^EBADF: bad file descriptor, /);
  assert.is(ev.pending, false);
  await stillWorks(loop, survivor);
  loop.close();
});

kernelOnly('a regular file (fs.openSync): the simulation has no files', () => {
  test('a regular file: EPERM on epoll; always ready elsewhere', async () => {
    const loop = newLoop();
    const survivor = withSurvivor(loop);
    const dir = mkdtempSync(join(tmpdir(), 'evpoll-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'f'), 'x');
    const fd = openSync(join(dir, 'f'), 'r');
    try {
      let n = 0;
      const ev = loop.event(fd, EV.READ, () => n++);
      if (loop.mechanism === 'epoll') {
        const err = throwsCode(() => ev.add(), 'EPERM');
        assert.is(err.syscall, 'epoll_ctl');
        assert.is(ev.pending, false);
      } else {
        ev.add();
        await iterate(loop, 0);
        assert.is(n, 1);
        ev.del();
      }
      await stillWorks(loop, survivor);
    } finally {
      closeSync(fd);
    }
    loop.close();
  });
});

test('a second event on an fd closed behind the loop\'s back is refused with EBADF, the first kept', async () => {
  const loop = newLoop();
  const survivor = withSurvivor(loop);
  const [r] = pipe();
  const first = loop.event(r, EV.READ, noop).add();
  close(r); // no del(): the number stays free, nothing else is opened before the add below
  throwsCode(() => loop.event(r, EV.WRITE, noop).add(), 'EBADF');
  assert.ok(first.pending, 'the refusal did not take the first registration with it');
  assert.is(first.del(), true);
  await stillWorks(loop, survivor);
  loop.close();
});

test('select refuses fd >= FD_SETSIZE naming it and another mechanism; every backend refuses fd >= maxFd', async () => {
  const loop = newLoop({ maxFd: 4096 });
  const survivor = withSurvivor(loop);
  if (loop.mechanism === 'select') {
    const err = throwsCode(() => loop.event(addon.FD_SETSIZE, EV.READ, noop).add(), 'ERR_EVPOLL_FD_LIMIT');
    assert.match(err.message, new RegExp(`FD_SETSIZE \\(${addon.FD_SETSIZE}\\)`));
    assert.match(err.message, /'epoll' or 'poll'/);
  } else {
    // Beyond FD_SETSIZE is fine here: the refusal is the OS's (the fd is not open).
    throwsCode(() => loop.event(FD0 + addon.FD_SETSIZE + 10, EV.READ, noop).add(), 'EBADF');
  }
  await stillWorks(loop, survivor);
  loop.close();

  const limited = newLoop({ maxFd: 512 });
  const survivor2 = withSurvivor(limited);
  const err = throwsCode(() => limited.event(FD0 + 600, EV.READ, noop).add(), 'ERR_EVPOLL_FD_LIMIT');
  assert.match(err.message, /maxFd \(512\)/);
  await stillWorks(limited, survivor2);
  limited.close();

  const small = newLoop({ maxFd: 8 });
  const [r] = pipe();
  throwsCode(() => small.event(Math.max(r, FD0 + 8), EV.READ, noop).add(), 'ERR_EVPOLL_FD_LIMIT');
  small.close();
});

test('the select backend itself never touches an fd_set beyond FD_SETSIZE', () => {
  const b = new addon.Backend('select', 64);
  assert.is(b.add(addon.FD_SETSIZE, EV.READ, 1), -34, 'ERANGE');
  assert.is(b.add(addon.FD_SETSIZE * 4, EV.READ, 1), -34);
  assert.is(b.modify(addon.FD_SETSIZE + 1, EV.WRITE, 1), -34);
  assert.is(b.remove(addon.FD_SETSIZE + 1), 0);
  b.close();
});

test('any use after close(): ERR_EVPOLL_CLOSED; close() twice is harmless', () => {
  const loop = newLoop();
  const [r] = pipe();
  const ev = loop.event(r, EV.READ, noop).add();
  const t = loop.timer(0, noop).add(10);
  loop.close();
  loop.close();
  assert.ok(loop.closed);
  assert.is(ev.pending, false);
  assert.is(t.pending, false);
  throwsCode(() => loop.event(r, EV.READ, noop), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => loop.timer(0, noop), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => ev.add(), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => ev.del(), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => t.add(5), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => loop.runOnce(0), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => loop.run(), 'ERR_EVPOLL_CLOSED');
  throwsCode(() => loop.stop(), 'ERR_EVPOLL_CLOSED');
});

test('a callback that throws: the error propagates, the rest of the batch runs next time', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const ran: string[] = [];
  let thrown = false;
  const cb = (_e: unknown, _w: number, name: string) => {
    ran.push(name);
    if (!thrown) {
      thrown = true;
      throw new Error(`boom from ${name}`);
    }
  };
  loop.event(r1, EV.READ, cb, 'one').add();
  loop.event(r2, EV.READ, cb, 'two').add();
  let timerRan = 0;
  loop.timer(0, () => timerRan++).add(0);
  writeByte(w1);
  writeByte(w2);
  try {
    await iterate(loop, 0);
    assert.unreachable('the callback threw');
  } catch (e) {
    assert.match((e as Error).message, /boom/);
  }
  assert.is(ran.length, 1);
  // The rest of the batch: the other fd and the due one-shot timer, neither lost.
  assert.is(await iterateExpecting(loop), 2);
  assert.is(ran.length, 2);
  assert.not.equal(ran[0], ran[1]);
  assert.is(timerRan, 1);
  // Level-triggered and unread: both fire again, the one that threw included.
  assert.is(await iterateExpecting(loop), 2);
  loop.close();
});

test('runOnce() or run() from inside a callback: ERR_EVPOLL_REENTRANT, the loop goes on', async () => {
  const loop = newLoop();
  const codes: string[] = [];
  loop.timer(0, () => {
    for (const fn of [() => loop.runOnce(0), () => loop.run()]) {
      try { fn(); } catch (e) { codes.push((e as { code: string }).code); }
    }
  }).add(0);
  await iterate(loop, 0);
  assert.equal(codes, ['ERR_EVPOLL_REENTRANT', 'ERR_EVPOLL_REENTRANT']);
  let fired = 0;
  loop.timer(0, () => fired++).add(0);
  await iterate(loop, 0);
  assert.is(fired, 1);
  loop.close();
});

test('close() with events pending leaves no fd of the loop\'s own open', async () => {
  const [r, w] = pipe();
  const before = openFds();
  const loop = newLoop();
  loop.event(r, EV.READ, noop).add();
  loop.event(w, EV.WRITE, noop).add();
  loop.timer(EV.PERSIST, noop).add(5);
  await iterate(loop, 0);
  if (loop.mechanism === 'epoll') assert.ok(openFds().length > before.length, 'epoll holds an fd of its own');
  loop.close();
  assert.equal(openFds(), before);
});

test('close() from inside a callback: the batch stops, the loop is closed', async () => {
  const loop = newLoop();
  const ran: string[] = [];
  loop.timer(0, () => { ran.push('a'); loop.close(); }).add(0);
  loop.timer(0, () => ran.push('b')).add(0);
  await new Promise((r) => setTimeout(r, 2));
  assert.is(await iterateExpecting(loop), 1);
  assert.equal(ran, ['a']);
  assert.ok(loop.closed);
});

test.run();
