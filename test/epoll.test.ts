// evpoll/epoll: the npm `epoll` package's API over an evpoll loop. Each Epoll drives its own loop
// in integrated mode whatever EVPOLL_MODE says, on the mechanism under test (EVPOLL_MECHANISM,
// which the Epoll follows by default). Waits are for callbacks, bounded (until()); "did not fire"
// is shown by a later callback of a sentinel fd on the same Epoll.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Epoll, type EpollCallback } from '../src/epoll.js';
import { EvpollError } from '../src/index.js';
import * as net from '../src/net.js';
import { packageRoot } from '../src/paths.js';
import { onCleanup } from './harness.js';
import { MECHANISM, pipe, socketpair, close, drain, writeByte, throwsCode, until, runChild, exposedGc, sleep } from './helpers.js';
import { tcpPair } from './tcp-helpers.js';

kernelOnly("evpoll/epoll drives its loop in integrated mode (start()), on Node's real event loop");

const { EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET, EPOLLONESHOT } = Epoll;

/** An Epoll on the mechanism under test, closed after the test if the test has not. */
function newEpoll(callback: EpollCallback): Epoll {
  const poller = new Epoll(callback, { mechanism: MECHANISM });
  onCleanup(() => {
    if (!poller.closed) poller.close();
  });
  return poller;
}

/** An Epoll whose callback records (fd, events) and checks the (err, fd, events) shape. */
function recorder(): { poller: Epoll; calls: [number, number][]; of: (fd: number) => number[] } {
  const calls: [number, number][] = [];
  const poller = newEpoll(function (this: unknown, ...args: unknown[]) {
    assert.is(this, undefined, 'called without a receiver');
    assert.is(args.length, 3, '(err, fd, events)');
    assert.is(args[0], null, 'err');
    calls.push([args[1] as number, args[2] as number]);
  } as EpollCallback);
  return { poller, calls, of: (fd) => calls.filter(([f]) => f === fd).map(([, events]) => events) };
}

test("the constants are Linux's, as static properties of Epoll", () => {
  assert.equal(
    { EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLONESHOT, EPOLLET },
    { EPOLLIN: 1, EPOLLPRI: 2, EPOLLOUT: 4, EPOLLERR: 8, EPOLLHUP: 16, EPOLLRDHUP: 0x2000, EPOLLONESHOT: 2 ** 30, EPOLLET: 2 ** 31 },
  );
});

test('add: (null, fd, EPOLLIN) while readable; remove: no more; the methods chain', async () => {
  const { poller, calls, of } = recorder();
  const [r, w] = pipe();
  const [r2, w2] = pipe();
  assert.is(poller.add(r, EPOLLIN), poller);
  writeByte(w);
  await until('EPOLLIN on the pipe', () => calls.length >= 2);
  assert.equal(calls.slice(0, 2), [[r, EPOLLIN], [r, EPOLLIN]], 'level-triggered: again while unread');
  assert.is(poller.remove(r).add(r2, EPOLLIN), poller);
  const before = of(r).length;
  writeByte(w2);
  await until('the sentinel', () => of(r2).length > 0);
  drain(r2);
  assert.is(of(r).length, before, 'removed: no more callbacks for it');
  assert.is(poller.closed, false);
  assert.is(poller.close(), null);
  assert.is(poller.closed, true);
});

test('modify: changes the events (EPOLLIN → EPOLLOUT → both)', async () => {
  const { poller, of } = recorder();
  const [a, b] = socketpair();
  poller.add(a, EPOLLIN);
  assert.is(poller.modify(a, EPOLLOUT), poller);
  await until('EPOLLOUT', () => of(a).length > 0);
  assert.is(of(a)[0], EPOLLOUT);
  writeByte(b);
  poller.modify(a, EPOLLIN | EPOLLOUT);
  await until('EPOLLIN|EPOLLOUT', () => of(a).includes(EPOLLIN | EPOLLOUT));
  poller.modify(a, EPOLLIN);
  const n = of(a).length;
  await until('EPOLLIN alone', () => of(a).length > n + 1);
  assert.equal(of(a).slice(n), of(a).slice(n).map(() => EPOLLIN), 'no EPOLLOUT after modify() took it away');
});

test('EPOLLONESHOT: one callback, then disabled but still added, until modify() re-arms it', async () => {
  const { poller, of } = recorder();
  const [r, w] = pipe();
  const [s, sw] = pipe();
  writeByte(w); // left unread: level-triggered, it would fire on every wait
  poller.add(r, EPOLLIN | EPOLLONESHOT).add(s, EPOLLIN);
  writeByte(sw);
  await until('the first callback, and the sentinel twice after it', () => of(r).length >= 1 && of(s).length >= 3);
  assert.equal(of(r), [EPOLLIN], 'disabled after one');
  throwsCode(() => poller.add(r, EPOLLIN), 'EEXIST');
  poller.modify(r, EPOLLIN | EPOLLONESHOT);
  await until('re-armed', () => of(r).length >= 2);
  const seen = of(s).length;
  await until('the sentinel twice more', () => of(s).length >= seen + 2);
  assert.equal(of(r), [EPOLLIN, EPOLLIN]);
  poller.remove(r); // still added: no ENOENT
  throwsCode(() => poller.remove(r), 'ENOENT');
});

test('EPOLLONESHOT re-armed from inside its own callback, as onoff does after each interrupt', async () => {
  const [r, w] = pipe();
  let n = 0;
  const poller = newEpoll((_err, fd) => {
    if (++n < 3) poller.modify(fd, EPOLLIN | EPOLLONESHOT);
  });
  writeByte(w);
  poller.add(r, EPOLLIN | EPOLLONESHOT);
  await until('three callbacks', () => n >= 3);
  const [s, sw] = pipe();
  let sentinel = 0;
  const other = newEpoll(() => sentinel++).add(s, EPOLLIN);
  writeByte(sw);
  await until('another Epoll fired twice', () => sentinel >= 2);
  other.close();
  assert.is(n, 3, 'not re-armed the third time: stays disabled');
});

test('EPOLLPRI: TCP urgent data gives (null, fd, EPOLLPRI); readUrgent clears it', async () => {
  const { poller, of } = recorder();
  const { accepted: rx, client: tx } = await tcpPair();
  poller.add(rx, EPOLLPRI | EPOLLONESHOT);
  assert.is(net.sendUrgent(tx, 0x5a), 1);
  await until('EPOLLPRI', () => of(rx).length > 0);
  assert.equal(of(rx), [EPOLLPRI]);
  assert.is(net.readUrgent(rx), 0x5a);
  poller.modify(rx, EPOLLPRI | EPOLLIN);
  net.write(tx, new Uint8Array([1]));
  net.sendUrgent(tx, 0x5b);
  await until('EPOLLIN|EPOLLPRI', () => of(rx).includes(EPOLLIN | EPOLLPRI));
  for (const events of of(rx)) assert.is(events & ~(EPOLLIN | EPOLLPRI), 0);
});

test(`EPOLLET ${MECHANISM === 'epoll' ? 'is edge-triggered' : 'is level-triggered here (no edge support)'} on ${MECHANISM}`, async () => {
  const { poller, of } = recorder();
  const [r, w] = pipe();
  const [s, sw] = pipe();
  poller.add(r, EPOLLIN | EPOLLET).add(s, EPOLLIN);
  writeByte(w);
  await until('the first callback', () => of(r).length >= 1);
  writeByte(sw);
  const seen = of(s).length;
  await until('the sentinel twice', () => of(s).length >= seen + 2);
  if (MECHANISM === 'epoll') assert.equal(of(r), [EPOLLIN], 'one edge, one callback');
  else assert.ok(of(r).length >= 2, 'level-triggered');
  // EPOLLET as the original gave it on 32-bit ARM (negative) is the same bit.
  poller.modify(r, EPOLLIN | (1 << 31));
});

test('remove() or modify() of another fd from a callback: its pending callback does not run', async () => {
  const [a, aw] = pipe();
  const [b, bw] = pipe();
  const seen: number[] = [];
  const poller = newEpoll((_err, fd) => {
    if (seen.length === 0) poller.remove(fd === a ? b : a);
    seen.push(fd);
  });
  poller.add(a, EPOLLIN).add(b, EPOLLIN);
  writeByte(aw);
  writeByte(bw);
  await until('a callback', () => seen.length > 0);
  const first = seen[0];
  const [s, sw] = pipe();
  poller.modify(first, EPOLLIN | EPOLLONESHOT).add(s, EPOLLIN);
  writeByte(sw);
  await until('the sentinel, after the first fd fired again', () => seen.includes(s) && seen.filter((fd) => fd === first).length >= 2);
  assert.not.ok(seen.includes(first === a ? b : a), 'the removed fd never ran');
});

test('errors: EEXIST, ENOENT, EBADF as SystemErrors; bad arguments and use after close() as EvpollErrors; nothing changes', async () => {
  const { poller, of } = recorder();
  const [r, w] = pipe();
  poller.add(r, EPOLLIN);
  const exists = throwsCode(() => poller.add(r, EPOLLOUT), 'EEXIST');
  assert.is(exists.syscall, 'epoll_ctl');
  assert.is(exists.errno, -17);
  throwsCode(() => poller.modify(w, EPOLLOUT), 'ENOENT');
  throwsCode(() => poller.remove(w), 'ENOENT');
  const [gone] = pipe();
  close(gone);
  throwsCode(() => poller.add(gone, EPOLLIN), 'EBADF');
  throwsCode(() => poller.add(gone, EPOLLERR), 'EBADF'); // nothing to watch, but still checked
  throwsCode(() => poller.remove(gone), 'ENOENT');
  // A modify() the backend refuses (the fd was closed) leaves the fd as it was: still added.
  const [shut] = pipe();
  poller.add(shut, EPOLLIN);
  close(shut);
  throwsCode(() => poller.modify(shut, EPOLLIN | EPOLLOUT), 'EBADF');
  poller.remove(shut);
  // A regular file: epoll cannot poll it (EPERM); poll and select take it, always ready.
  const file = openSync(join(packageRoot, 'package.json'), 'r');
  onCleanup(() => closeSync(file));
  if (MECHANISM === 'epoll') throwsCode(() => poller.add(file, EPOLLIN), 'EPERM');
  else poller.add(file, EPOLLIN).remove(file);
  const bad: [string, () => unknown][] = [
    ["fd '3'", () => poller.add('3' as unknown as number, EPOLLIN)],
    ['fd -1', () => poller.add(-1, EPOLLIN)],
    ['fd 1.5', () => poller.modify(1.5, EPOLLIN)],
    ['fd missing', () => (poller.remove as () => Epoll)()],
    ["events 'x'", () => poller.add(w, 'x' as unknown as number)],
    ['events 1.5', () => poller.add(w, 1.5)],
    ['events 2^32', () => poller.add(w, 2 ** 32)],
    ['events an unknown bit (0x100)', () => poller.add(w, EPOLLIN | 0x100)],
    ['events missing', () => (poller.modify as (fd: number) => Epoll)(r)],
    ['callback missing', () => new Epoll(undefined as unknown as EpollCallback)],
    ['options null', () => new Epoll(() => {}, null as unknown as object)],
  ];
  for (const [what, call] of bad) assert.instance(throwsCode(call, 'ERR_EVPOLL_INVALID_ARG'), EvpollError, what);
  throwsCode(() => new Epoll(() => {}, { mechanism: 'nope' }), 'ERR_EVPOLL_UNKNOWN_MECHANISM');
  // None of that changed anything: r is still watched, w still not added.
  writeByte(w);
  await until('r still fires', () => of(r).length > 0);
  throwsCode(() => poller.remove(w), 'ENOENT');
  poller.close();
  const messages = ([['add', () => poller.add(w, EPOLLIN)], ['modify', () => poller.modify(r, EPOLLIN)], ['remove', () => poller.remove(r)]] as const)
    .map(([what, call]) => [what, throwsCode(call, 'ERR_EVPOLL_CLOSED').message]);
  assert.equal(messages, [
    ['add', "add can't be called after calling close"],
    ['modify', "modify can't be called after calling close"],
    ['remove', "remove can't be called after calling close"],
  ]);
  assert.is(throwsCode(() => poller.close(), 'ERR_EVPOLL_CLOSED').message, "close can't be called more than once");
});

test('events that watch nothing evpoll reports (EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET alone) are accepted, as the original did', () => {
  const { poller } = recorder();
  const [r] = pipe();
  for (const events of [EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET, EPOLLONESHOT, 0]) poller.add(r, events).remove(r);
  poller.add(r, EPOLLERR).modify(r, EPOLLIN).modify(r, EPOLLHUP).remove(r);
});

test('close() from a callback: every fd is removed and the callback is not called again', async () => {
  const [r, w] = pipe();
  let n = 0;
  const poller = newEpoll(() => {
    n++;
    poller.close();
  });
  poller.add(r, EPOLLIN);
  writeByte(w);
  await until('the callback', () => n > 0);
  const [s, sw] = pipe();
  let sentinel = 0;
  newEpoll(() => sentinel++).add(s, EPOLLIN);
  writeByte(sw);
  await until('another Epoll fired twice', () => sentinel >= 2);
  assert.is(n, 1);
  assert.ok(poller.closed);
});

test('the same fd in two Epolls: each watches it (the original shared one epoll fd and said EEXIST)', async () => {
  const a = recorder();
  const b = recorder();
  const [r, w] = pipe();
  a.poller.add(r, EPOLLIN);
  b.poller.add(r, EPOLLIN);
  writeByte(w);
  await until('both', () => a.of(r).length > 0 && b.of(r).length > 0);
});

test(`the mechanism: EVPOLL_MECHANISM by default, else epoll; { mechanism } picks one (here ${MECHANISM})`, () => {
  const poller = new Epoll(() => {});
  onCleanup(() => poller.close());
  assert.is(poller.mechanism, process.env.EVPOLL_MECHANISM ?? 'epoll');
  assert.is(newEpoll(() => {}).mechanism, MECHANISM);
});

test('an Epoll nothing refers to keeps working while an fd is added (the original pinned itself against GC)', async () => {
  const gc = exposedGc();
  const [r, w] = pipe();
  let fired = 0;
  let ref: WeakRef<Epoll> | undefined;
  (() => {
    ref = new WeakRef(new Epoll(() => {
      fired++;
      drain(r);
    }, { mechanism: MECHANISM }).add(r, EPOLLIN));
  })();
  onCleanup(() => ref?.deref()?.close());
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
  writeByte(w);
  await until('the callback after collections', () => fired > 0);
});

if (MECHANISM !== 'epoll') {
  test(`an fd closed behind its back (${MECHANISM} sees it): EPOLLIN|EPOLLERR, and it leaves the set`, async () => {
    const { poller, of } = recorder();
    const [r] = pipe();
    poller.add(r, EPOLLIN);
    close(r);
    await until('EPOLLERR', () => of(r).length > 0);
    assert.equal(of(r), [EPOLLIN | EPOLLERR]);
    throwsCode(() => poller.remove(r), 'ENOENT');
  });
}

// The process's life, as the original's uv_ref/uv_unref: kept alive while any fd is added,
// armed or disabled by EPOLLONESHOT; not by an Epoll alone, nor after remove() or close().
const EPOLL_MODULE = JSON.stringify(pathToFileURL(join(packageRoot, 'dist/epoll.js')).href);
const LIFE_CASES: [string, string, boolean][] = [
  ['an fd added', 'p.add(r, Epoll.EPOLLIN);', true],
  ['an EPOLLONESHOT fd that fired (disabled, still added)', "let fired = false; const q = new Epoll(() => { fired = true; }); const [r2, w2] = net.pipe(); net.write(w2, new Uint8Array([1])); q.add(r2, Epoll.EPOLLIN | Epoll.EPOLLONESHOT); await new Promise((ok) => { const t = setInterval(() => { if (fired) { clearInterval(t); ok(); } }, 5); }); console.log('fired');", true],
  ['an fd added, then removed', 'p.add(r, Epoll.EPOLLIN).remove(r);', false],
  ['an fd added, then close()', 'p.add(r, Epoll.EPOLLIN); p.close();', false],
  ['an Epoll with no fd', '', false],
];

test('the process stays alive while an fd is added (armed or disabled), and only then', () => {
  const env = { ...process.env, EVPOLL_MECHANISM: MECHANISM };
  for (const [what, body, alive] of LIFE_CASES) {
    const code = `import { Epoll } from ${EPOLL_MODULE};
const p = new Epoll(() => {});
const [r] = net.pipe();
${body}
setTimeout(() => { console.log('still alive'); process.exit(0); }, 500).unref();
`;
    const child = runChild(code, 15_000, env);
    assert.is(child.status, 0, `${what}: ${child.stderr}`);
    assert.is(child.stdout.includes('still alive'), alive, `${what}: ${alive ? 'kept' : 'not kept'} alive (${child.stdout.trim()})`);
  }
});

test.run();
