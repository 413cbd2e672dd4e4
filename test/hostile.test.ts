// Hostile input: every error case of the API in one table. Each row makes one bad call and
// names the code it must throw (null: it must not throw; what happens instead is asserted in
// `then`). Rows run one after another against one shared loop that holds, from before the
// first row, an fd event, a PERSIST timer and a signal watcher; after every row all three must
// still fire, so no refusal, throw, stop or close of another loop may take a registration
// with it. Rows marked `noFds` run in a child process whose fd table is full (prlimit).
//
// Decisions recorded here (and in the README):
// - A directory, like a regular file or /dev/null, cannot be polled: epoll refuses it at
//   add() with EPERM; poll and select report it always ready (READ, and WRITE when asked),
//   which is what those syscalls say of such files.
// - An fd closed behind the loop's back: poll and select deliver EV.ERROR once and drop the
//   event; epoll cannot see it (the kernel forgets the file silently), so the event stays
//   pending until del(), which still works.
// - Acceptor.close() after loop.close() does nothing (closing twice is harmless, as for the
//   loop itself); pause() and resume() then throw ERR_EVPOLL_CLOSED like any Event use.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EV, EventLoop, EvpollError, type EventLoopOptions, type SignalEvent } from '../src/index.js';
import { Acceptor } from '../src/acceptor.js';
import { AcceptMutex, SharedRegion } from '../src/shm.js';
import * as net from '../src/net.js';
import { addon, type NativeBackend } from '../src/native.js';
import { Worker } from 'node:worker_threads';
import { VIRTUAL_FD_BASE } from '../src/virtual.js';
import { MECHANISM, MODE, SIMULATION, newLoop, iterate, iterateUntil, openFds, sleep, drain, writeByte, fillFdTable, runUnderFdLimit, addonPath, exposedGc, noop } from './helpers.js';

const NO_FDS_CHILD = 'EVPOLL_HOSTILE_NO_FDS_CHILD';

/** Where fd numbers start: on 'sim' a loop watches virtual fds, numbered from VIRTUAL_FD_BASE. */
const FD0 = SIMULATION ? VIRTUAL_FD_BASE : 0;
// Why rows are kernel-only (Row.kernel).
const SIGNALS = 'signals';
const FILES = 'regular files, directories and /dev/null (fs.openSync): the simulation has no files';
const INTEGRATED = "integrated mode: start() rides on Node's real event loop";
const ADDRESSES = "the host's own addresses: the simulated host has no interfaces to say which are its";
const FD_LIMIT = "the process's own fd limit (prlimit RLIMIT_NOFILE, in a child process)";

type Code = string | null;

interface Row {
  name: string;
  /** The bad call. May return a promise; its value goes to `then`. */
  call: (t: Ctx) => unknown;
  /** The code it throws (null: nothing thrown), or one per mechanism. */
  expect: Code | ((mechanism: string) => Code);
  /** More about the outcome: what happened instead of a throw, that no state changed. */
  then?: (t: Ctx, value: any) => void | Promise<void>;
  /** Only in these driving modes (the others do not have the situation). */
  modes?: string[];
  /** Run in a child process with no free fd. */
  noFds?: true;
  /**
   * What only a kernel has that the row needs (signals, files, integrated mode...): on the 'sim'
   * mechanism (evpoll/sim) the row is skipped, and the skip printed with this reason. noFds rows
   * need the process's own fd limit.
   */
  kernel?: string;
  /**
   * Keeps dozens of loops alive at once. Not under valgrind (scripts/valgrind.mjs sets
   * EVPOLL_VALGRIND): V8 reserves 10 GB of address space per WebAssembly memory, and
   * valgrind's address space holds about a dozen.
   */
  manyLoops?: true;
}

/** What a row may use; everything it opens or creates is released after it. */
class Ctx {
  /** Anything a row wants to hand from `call` to `then`. */
  state: any = {};
  #fds = new Set<number>();
  #loops: EventLoop[] = [];
  #deferred: (() => void)[] = [];
  constructor(readonly loop: EventLoop) {}
  /** A loop of the row's own (closed after the row). */
  fresh(options: EventLoopOptions = {}): EventLoop {
    const l = newLoop(options);
    this.#loops.push(l);
    return l;
  }
  pipe(): [number, number] {
    return this.track(net.pipe());
  }
  track<T extends number[]>(fds: T): T {
    for (const fd of fds) this.#fds.add(fd);
    return fds;
  }
  /** Closes an fd now (and not again at the end). */
  close(fd: number): void {
    this.#fds.delete(fd);
    net.close(fd);
  }
  defer(fn: () => void): void {
    this.#deferred.push(fn);
  }
  cleanup(): void {
    if (this.loop.started) this.loop.stop();
    for (const fn of this.#deferred.splice(0).reverse()) fn();
    for (const l of this.#loops.splice(0)) l.close();
    for (const fd of this.#fds) net.close(fd);
    this.#fds.clear();
  }
}

function boom(): Error {
  return Object.assign(new Error('boom'), { code: 'BOOM' });
}

/** An fd number that is not open (nothing is opened between this and its use). */
function notOpen(): number {
  if (SIMULATION) {
    // A virtual fd that was open and is not any more (real fd numbers are refused on 'sim').
    const [r, w] = net.pipe();
    net.close(r);
    net.close(w);
    return r;
  }
  const open = new Set(openFds());
  let fd = 100;
  while (open.has(fd)) fd++;
  return fd;
}

/** A pipe whose fds are at least `min` (opens fillers below it, then closes them). */
function highPipe(t: Ctx, min: number): [number, number] {
  const fillers: number[] = [];
  try {
    for (;;) {
      const p = net.pipe();
      if (p[0] >= min) return t.track(p);
      fillers.push(...p);
    }
  } finally {
    for (const fd of fillers) net.close(fd);
  }
}

/** A file of each unpollable kind, closed after the row. */
function unpollable(t: Ctx, kind: 'file' | 'directory' | '/dev/null'): number {
  if (kind === '/dev/null') return t.track([openSync('/dev/null', 'r')])[0];
  const dir = mkdtempSync(join(tmpdir(), 'evpoll-hostile-'));
  t.defer(() => rmSync(dir, { recursive: true, force: true }));
  if (kind === 'directory') return t.track([openSync(dir, 'r')])[0];
  writeFileSync(join(dir, 'f'), 'x');
  return t.track([openSync(join(dir, 'f'), 'r')])[0];
}

/**
 * Runs `fn` inside a callback of the shared loop (a one-shot timer) and hands back what it
 * returned or threw, as if called directly.
 */
async function inCallback(t: Ctx, fn: () => unknown): Promise<unknown> {
  let out: { value?: unknown; error?: unknown; threw: boolean } | undefined;
  const ev = t.loop.timer(0, () => {
    try {
      out = { value: fn(), threw: false };
    } catch (error) {
      out = { error, threw: true };
    }
  }).add(0);
  t.defer(() => ev.del());
  await iterateUntil(t.loop, () => out !== undefined);
  if (out!.threw) throw out!.error;
  return out!.value;
}

/** Drives `loop` until `done()`, letting callbacks' exceptions out (iterateUntil does). */
const until = (loop: EventLoop, done: () => boolean, ms = 2000) => iterateUntil(loop, done, ms);

/** A loop closed with an fd event, a timer and a signal watcher on it. */
function closedLoop(t: Ctx) {
  const loop = t.fresh();
  const [r] = t.pipe();
  const ev = loop.event(r, EV.READ, noop).add();
  const timer = loop.timer(0, noop).add(1000);
  const sig = SIMULATION ? undefined : loop.signal('SIGUSR2', noop); // loop.signal() needs a kernel
  loop.close();
  return { loop, ev, timer, sig, r };
}

/** An Acceptor closed after the row (if the row did not expect to make one, it is not left watching). */
function acceptor(t: Ctx, ...args: ConstructorParameters<typeof Acceptor>): Acceptor {
  const a = new Acceptor(...args);
  t.defer(() => a.close());
  return a;
}

/** A free AcceptMutex on a region closed after the row. */
function mutex(t: Ctx): AcceptMutex {
  const region = SharedRegion.create(4096);
  t.defer(() => region.close());
  return new AcceptMutex(region);
}

/** An AcceptMutex whose region is closed already. */
function closedMutex(): AcceptMutex {
  const region = SharedRegion.create(4096);
  const m = new AcceptMutex(region);
  region.close();
  return m;
}

/** A listening socket, closed after the row. */
function listener(t: Ctx): number {
  return t.track([net.listen('127.0.0.1', 0)])[0];
}

/** A row's own 4-byte FixedBuffer. */
function fixed(t: Ctx): net.FixedBuffer {
  return (t.state.io = new net.FixedBuffer(4));
}

/** The row's FixedBuffer still moves bytes after what the row did to it. */
function usable(t: Ctx): void {
  const io: net.FixedBuffer = t.state.io;
  const [r, w] = t.pipe();
  io.bytes[3] = 0x5a;
  assert.is(io.write(w, 3, 1), 1);
  assert.is(io.read(r, 0, 4), 1);
  assert.is(io.bytes[0], 0x5a);
}

const isEpoll = (m: string) => m === 'epoll';
/** A closed fd leaves the set silently: epoll's rule, which evpoll/sim keeps. */
const isEpollLike = (m: string) => m === 'epoll' || m === 'sim';

// ---------------------------------------------------------------------------------------------
// The table.

const ROWS: Row[] = [
  // new EventLoop(options)
  { name: 'EventLoop: options null', call: () => new EventLoop(null as unknown as EventLoopOptions), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: options a number', call: () => new EventLoop(5 as unknown as EventLoopOptions), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd 0', call: (t) => t.fresh({ maxFd: 0 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd -1', call: (t) => t.fresh({ maxFd: -1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd 1.5', call: (t) => t.fresh({ maxFd: 1.5 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd NaN', call: (t) => t.fresh({ maxFd: NaN }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd Infinity', call: (t) => t.fresh({ maxFd: Infinity }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "EventLoop: maxFd '64'", call: (t) => t.fresh({ maxFd: '64' as unknown as number }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  // fds are C ints, and the core indexes its fd table in 32 bits: fd 2**32 would become fd 0,
  // fd 2**28 an offset below the table.
  { name: 'EventLoop: maxFd 2**32 + 1', call: (t) => t.fresh({ maxFd: 2 ** 32 + 1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'EventLoop: maxFd 2**26 + 1 (beyond what the core indexes)', call: (t) => t.fresh({ maxFd: 2 ** 26 + 1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  {
    name: 'add: an fd far above any in use and not open (maxFd 2**26): EBADF, without growing the fd table',
    call: (t) => {
      const rss = process.memoryUsage().rss;
      t.state.rss = rss;
      const loop = t.fresh({ maxFd: 2 ** 26 });
      t.state.ev = loop.event(FD0 + 2 ** 26 - 1, EV.READ, noop);
      t.state.ev.add();
    },
    expect: (m) => (m === 'select' ? 'ERR_EVPOLL_FD_LIMIT' : 'EBADF'),
    then: (t) => {
      assert.not.ok(t.state.ev.pending);
      const grown = process.memoryUsage().rss - t.state.rss;
      assert.ok(grown < 64 * 2 ** 20, `RSS grew by ${grown} bytes (a GiB table would show)`);
    },
  },
  { name: 'EventLoop: clock not a function', call: (t) => t.fresh({ clock: 5 as unknown as () => number }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "EventLoop: mechanism 'nope'", call: () => new EventLoop({ mechanism: 'nope' }), expect: 'ERR_EVPOLL_UNKNOWN_MECHANISM' },
  { name: "EventLoop: mechanism ''", call: () => new EventLoop({ mechanism: '' }), expect: 'ERR_EVPOLL_UNKNOWN_MECHANISM' },
  { name: 'EventLoop: mechanism 42', call: () => new EventLoop({ mechanism: 42 as unknown as string }), expect: 'ERR_EVPOLL_UNKNOWN_MECHANISM' },
  { name: "EventLoop: mechanism 'kqueue' (FPM's, not on Linux)", call: () => new EventLoop({ mechanism: 'kqueue' }), expect: 'ERR_EVPOLL_MECHANISM_UNAVAILABLE' },
  { name: "EventLoop: mechanism '/dev/poll'", call: () => new EventLoop({ mechanism: '/dev/poll' }), expect: 'ERR_EVPOLL_MECHANISM_UNAVAILABLE' },
  {
    name: 'EventLoop: no free fd',
    call: () => new EventLoop({ mechanism: MECHANISM }),
    // epoll needs its epoll fd; poll and select the eventfd that wakes start()'s helper thread.
    expect: 'EMFILE',
    then: (_t, err) => assert.is(err.syscall, MECHANISM === 'epoll' ? 'epoll_create1' : 'eventfd'),
    noFds: true,
  },

  // loop.event(fd, flags, callback)
  { name: 'event: fd -1', call: (t) => t.loop.event(-1, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: fd 1.5', call: (t) => t.loop.event(1.5, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "event: fd '3'", call: (t) => t.loop.event('3' as unknown as number, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: fd NaN', call: (t) => t.loop.event(NaN, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: fd Infinity', call: (t) => t.loop.event(Infinity, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: fd undefined', call: (t) => t.loop.event(undefined as unknown as number, EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: unknown flag bit 64', call: (t) => t.loop.event(t.pipe()[0], EV.READ | 64, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: EV.ERROR asked for', call: (t) => t.loop.event(t.pipe()[0], EV.READ | EV.ERROR, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: EV.TIMEOUT on an fd event', call: (t) => t.loop.event(t.pipe()[0], EV.READ | EV.TIMEOUT, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: none of READ, WRITE, PRI (PERSIST only)', call: (t) => t.loop.event(t.pipe()[0], EV.PERSIST, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: flags 0', call: (t) => t.loop.event(t.pipe()[0], 0, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: flags -2', call: (t) => t.loop.event(t.pipe()[0], -2, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: flags 2.5', call: (t) => t.loop.event(t.pipe()[0], 2.5, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "event: flags '2'", call: (t) => t.loop.event(t.pipe()[0], '2' as unknown as number, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: callback a string', call: (t) => t.loop.event(t.pipe()[0], EV.READ, 'f' as unknown as () => void), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: callback missing', call: (t) => t.loop.event(t.pipe()[0], EV.READ, undefined as unknown as () => void), expect: 'ERR_EVPOLL_INVALID_ARG' },

  // loop.timer(flags, callback)
  { name: 'timer: EV.READ', call: (t) => t.loop.timer(EV.READ, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'timer: EV.EDGE', call: (t) => t.loop.timer(EV.EDGE, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'timer: EV.PRI', call: (t) => t.loop.timer(EV.PRI, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'event: unknown flag bit 512', call: (t) => t.loop.event(t.pipe()[0], EV.PRI | 512, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'timer: flags -1', call: (t) => t.loop.timer(-1, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'timer: flags 0.5', call: (t) => t.loop.timer(0.5, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "timer: flags '4'", call: (t) => t.loop.timer('4' as unknown as number, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'timer: callback missing', call: (t) => t.loop.timer(0, undefined as unknown as () => void), expect: 'ERR_EVPOLL_INVALID_ARG' },

  // ev.add(timeoutMs)
  { name: 'add: timer timeout -1', call: (t) => t.loop.timer(0, noop).add(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'add: timer timeout NaN', call: (t) => t.loop.timer(0, noop).add(NaN), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'add: timer timeout Infinity', call: (t) => t.loop.timer(0, noop).add(Infinity), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "add: timer timeout '5'", call: (t) => t.loop.timer(0, noop).add('5' as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'add: timer timeout null', call: (t) => t.loop.timer(0, noop).add(null as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG' },
  {
    name: 'add: rescheduling a pending timer with a bad timeout leaves it scheduled',
    call: (t) => {
      let fired = 0;
      const ev = t.loop.timer(0, () => fired++).add(0);
      t.state = { ev, fired: () => fired };
      t.defer(() => ev.del());
      ev.add(-1);
    },
    expect: 'ERR_EVPOLL_INVALID_ARG',
    then: async (t) => {
      assert.ok(t.state.ev.pending);
      await until(t.loop, () => t.state.fired() === 1);
    },
  },
  {
    name: 'add: a timer 2**53 ms away is accepted and does not disturb the nearer ones',
    call: (t) => {
      const ev = t.loop.timer(EV.PERSIST, noop).add(2 ** 53);
      t.defer(() => assert.ok(ev.del()));
      const alone = t.fresh().timer(0, noop).add(2 ** 53);
      if (MODE === 'start') alone.loop.start(); // one Node timer, at most 2**31 - 1 ms away
      else assert.is(alone.loop.runOnce(0), 0);
    },
    expect: null,
  },
  { name: 'add: fd event timeout -5', call: (t) => t.loop.event(t.pipe()[0], EV.READ, noop).add(-5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  {
    name: 'add: fd not open (EBADF, nothing registered)',
    call: (t) => {
      t.state.ev = t.loop.event(notOpen(), EV.READ, noop);
      t.state.ev.add();
    },
    expect: 'EBADF',
    then: (t) => assert.not.ok(t.state.ev.pending),
  },
  {
    name: 'add: fd closed after the Event was made',
    call: (t) => {
      const [r] = t.pipe();
      const ev = t.loop.event(r, EV.READ, noop);
      t.close(r);
      ev.add();
    },
    expect: 'EBADF',
  },
  {
    name: 'add: fd >= the default maxFd (2**20)',
    call: (t) => t.loop.event(FD0 + 2 ** 20, EV.READ, noop).add(),
    expect: 'ERR_EVPOLL_FD_LIMIT',
  },
  {
    name: 'add: fd 2**32 (would wrap to 0 as a C int)',
    call: (t) => t.loop.event(FD0 + 2 ** 32, EV.READ, noop).add(),
    expect: 'ERR_EVPOLL_FD_LIMIT',
  },
  {
    name: 'add: an open fd >= maxFd',
    call: (t) => {
      const small = t.fresh({ maxFd: 8 });
      const [r] = highPipe(t, FD0 + 8);
      small.event(r, EV.READ, noop).add();
    },
    expect: 'ERR_EVPOLL_FD_LIMIT',
    then: (_t, err) => assert.match(err.message, /maxFd \(8\)/),
  },
  {
    name: 'add: an open fd >= FD_SETSIZE (select refuses it; the others watch it)',
    call: async (t) => {
      const [r, w] = highPipe(t, FD0 + addon.FD_SETSIZE + 2);
      let fired = 0;
      const ev = t.loop.event(r, EV.READ, () => { fired++; drain(r); });
      t.defer(() => ev.del());
      ev.add();
      writeByte(w);
      await until(t.loop, () => fired > 0);
    },
    expect: (m) => (m === 'select' ? 'ERR_EVPOLL_FD_LIMIT' : null),
    then: (_t, err) => {
      if (MECHANISM === 'select') assert.match(err.message, /FD_SETSIZE \(1024\).*'epoll' or 'poll'/);
    },
  },
  ...(['file', 'directory', '/dev/null'] as const).map((kind): Row => ({
    name: `add: ${kind === 'file' ? 'a regular file' : kind === 'directory' ? 'a directory' : '/dev/null'} (epoll: EPERM; poll, select: always ready)`,
    call: async (t) => {
      const fd = unpollable(t, kind);
      const seen: number[] = [];
      const ev = t.loop.event(fd, EV.READ | EV.WRITE, (_e, which) => seen.push(which));
      t.state.ev = ev;
      t.defer(() => ev.del());
      ev.add();
      await until(t.loop, () => seen.length > 0);
      assert.is(seen[0], EV.READ | EV.WRITE);
    },
    expect: (m) => (isEpoll(m) ? 'EPERM' : null),
    kernel: FILES,
    then: (t, err) => {
      if (isEpoll(MECHANISM)) {
        assert.is(err.syscall, 'epoll_ctl');
        assert.not.ok(t.state.ev.pending);
      }
    },
  })),

  // An fd closed behind the loop's back.
  {
    name: 'close without del(): poll/select deliver EV.ERROR once and drop it; epoll keeps it silently',
    call: async (t) => {
      // Numbers below it free: whatever Node opens meanwhile does not take this one, which
      // would then be another file, not a closed fd.
      const [r] = highPipe(t, openFds().length + 64);
      const seen: number[] = [];
      const ev = t.loop.event(r, EV.READ, (_e, which) => seen.push(which)).add();
      t.close(r);
      if (isEpollLike(MECHANISM)) {
        await iterate(t.loop, 20);
      } else {
        await until(t.loop, () => seen.length > 0);
        await iterate(t.loop, 20);
      }
      return { ev, seen };
    },
    expect: null,
    then: (_t, { ev, seen }) => {
      if (isEpollLike(MECHANISM)) {
        assert.equal(seen, []);
        assert.ok(ev.pending);
        assert.is(ev.del(), true, 'del() still works');
      } else {
        assert.equal(seen, [EV.READ | EV.ERROR], `callbacks got ${JSON.stringify(seen)}`);
        assert.not.ok(ev.pending);
        assert.is(ev.del(), false);
      }
    },
  },
  {
    name: 'a second Event on an fd closed behind the loop\'s back: EBADF, the first kept',
    call: (t) => {
      const [r] = t.pipe();
      t.state.first = t.loop.event(r, EV.READ, noop).add();
      t.close(r);
      t.loop.event(r, EV.WRITE, noop).add();
    },
    expect: 'EBADF',
    then: (t) => {
      assert.ok(t.state.first.pending);
      assert.ok(t.state.first.del());
    },
  },

  // ev.del()
  { name: 'del: an Event never added returns false', call: (t) => t.loop.timer(0, noop).del(), expect: null, then: (_t, v) => assert.is(v, false) },
  {
    name: 'del: twice returns true, then false',
    call: (t) => {
      const ev = t.loop.event(t.pipe()[0], EV.READ, noop).add();
      return [ev.del(), ev.del()];
    },
    expect: null,
    then: (_t, v) => assert.equal(v, [true, false]),
  },

  // loop.runOnce(timeoutMs), run(), start()
  { name: 'runOnce: timeout -1', call: (t) => t.loop.runOnce(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'runOnce: timeout NaN', call: (t) => t.loop.runOnce(NaN), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'runOnce: timeout Infinity', call: (t) => t.loop.runOnce(Infinity), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "runOnce: timeout '5'", call: (t) => t.loop.runOnce('5' as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'runOnce: timeout null', call: (t) => t.loop.runOnce(null as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG' },
  {
    name: 'runOnce while started',
    call: (t) => {
      t.loop.start();
      t.loop.runOnce(0);
    },
    expect: 'ERR_EVPOLL_BUSY',
    kernel: INTEGRATED,
  },
  {
    name: 'run while started',
    call: (t) => {
      t.loop.start();
      t.loop.run();
    },
    expect: 'ERR_EVPOLL_BUSY',
    kernel: INTEGRATED,
  },
  { name: 'runOnce from inside a callback', call: (t) => inCallback(t, () => t.loop.runOnce(0)), expect: 'ERR_EVPOLL_REENTRANT' },
  { name: 'run from inside a callback', call: (t) => inCallback(t, () => t.loop.run()), expect: 'ERR_EVPOLL_REENTRANT' },
  {
    name: 'start from inside a callback (run mode: BUSY; already started: a no-op)',
    call: (t) => inCallback(t, () => t.loop.start()),
    expect: MODE === 'run' ? 'ERR_EVPOLL_BUSY' : null,
    kernel: INTEGRATED,
  },
  {
    name: 'stop() from inside a callback: run() returns / start() detaches; registrations stay',
    call: async (t) => {
      let beats = 0;
      const ev = t.loop.timer(EV.PERSIST, () => { if (++beats === 3) t.loop.stop(); }).add(1);
      t.defer(() => ev.del());
      if (MODE === 'run') {
        t.loop.run();
      } else {
        t.loop.start();
        const end = Date.now() + 2000;
        while (t.loop.started && Date.now() < end) await sleep(5);
      }
      return { ev, beats };
    },
    expect: null,
    then: (t, { ev, beats }) => {
      assert.is(beats, 3);
      assert.ok(ev.pending);
      assert.not.ok(t.loop.started);
    },
  },
  {
    name: 'close() from inside a callback: the batch stops, the loop releases its fds',
    call: async (t) => {
      const before = openFds();
      const loop = t.fresh();
      const ran: string[] = [];
      const [r, w] = t.pipe();
      const fdEv = loop.event(r, EV.READ, () => { ran.push('fd'); loop.close(); }).add();
      const later = loop.timer(0, () => ran.push('timer')).add(0);
      loop.signal('SIGUSR2', noop);
      writeByte(w);
      await sleep(2);
      const n = await iterate(loop, 0);
      return { loop, ran, n, fdEv, later, before, r, w };
    },
    expect: null,
    then: (_t, { loop, ran, n, fdEv, later, before, r, w }) => {
      assert.equal(ran, ['fd']);
      assert.is(n, 1);
      assert.ok(loop.closed);
      assert.not.ok(fdEv.pending);
      assert.not.ok(later.pending);
      assert.equal(openFds(), [...before, r, w].sort((a, b) => a - b), 'no fd of the loop left open');
    },
    kernel: "a signal watcher, and the loop's own real fds (/proc/self/fd)",
  },
  {
    name: 'close() from inside a PERSIST timer while the loop runs: run() returns / start() detaches',
    call: async (t) => {
      const loop = t.fresh();
      let beats = 0;
      loop.timer(EV.PERSIST, () => { if (++beats === 2) loop.close(); }).add(1);
      if (MODE === 'run') {
        loop.run();
      } else {
        loop.start();
        const end = Date.now() + 2000;
        while (!loop.closed && Date.now() < end) await sleep(5);
      }
      return { loop, beats };
    },
    expect: null,
    then: (_t, { loop, beats }) => {
      assert.is(beats, 2);
      assert.ok(loop.closed);
      assert.not.ok(loop.started);
    },
  },

  // A callback that throws.
  {
    name: 'an fd callback throws: it propagates; the other ready fd of the batch runs next',
    call: async (t) => {
      const [r1, w1] = t.pipe();
      const [r2, w2] = t.pipe();
      const ran: number[] = [];
      const cb = (_e: unknown, _w: number, fd: number) => {
        drain(fd);
        ran.push(fd);
        if (ran.length === 1) throw boom();
      };
      const a = t.loop.event(r1, EV.READ, cb, r1).add();
      const b = t.loop.event(r2, EV.READ, cb, r2).add();
      t.defer(() => { a.del(); b.del(); });
      t.state.ran = ran;
      writeByte(w1);
      writeByte(w2);
      await sleep(1);
      await until(t.loop, () => ran.length > 0);
    },
    expect: 'BOOM',
    then: async (t) => {
      await until(t.loop, () => t.state.ran.length === 2);
      assert.is.not(t.state.ran[0], t.state.ran[1]);
    },
  },
  {
    name: 'a timer callback throws: a one-shot timer due in the same batch is not lost',
    call: async (t) => {
      const ran: string[] = [];
      const a = t.loop.timer(0, () => { ran.push('a'); throw boom(); }).add(0);
      const b = t.loop.timer(0, () => ran.push('b')).add(0);
      t.defer(() => { a.del(); b.del(); });
      t.state.ran = ran;
      await sleep(2);
      await until(t.loop, () => ran.length > 0);
    },
    expect: 'BOOM',
    then: async (t) => {
      await until(t.loop, () => t.state.ran.length === 2);
      assert.equal(t.state.ran, ['a', 'b']);
    },
  },
  {
    name: 'a callback throws a non-Error (42): it propagates as it is',
    call: async (t) => {
      const ev = t.loop.timer(0, () => { throw 42; }).add(0);
      t.defer(() => ev.del());
      await until(t.loop, () => !ev.pending);
    },
    expect: 'thrown 42',
  },
  {
    name: 'a signal callback throws: the other watcher of that signal still gets it',
    call: async (t) => {
      const got: string[] = [];
      const a = t.loop.signal('SIGUSR2', () => { got.push('a'); throw boom(); });
      const b = t.loop.signal('SIGUSR2', () => got.push('b'));
      t.defer(() => { a.del(); b.del(); });
      t.state.got = got;
      process.kill(process.pid, 'SIGUSR2');
      await until(t.loop, () => got.length > 0);
    },
    expect: 'BOOM',
    then: async (t) => {
      await until(t.loop, () => t.state.got.includes('b'));
    },
    kernel: SIGNALS,
  },
  {
    name: "a started loop's callback throws with no 'error' listener: an uncaught exception",
    modes: ['start'],
    call: async (t) => {
      const caught = new Promise<unknown>((resolve) => process.prependOnceListener('uncaughtException', resolve));
      // mocha-style test runners keep their own listener; uvu has none, so ours is the only one.
      const ev = t.loop.timer(0, () => { throw boom(); }).add(0);
      t.defer(() => ev.del());
      t.loop.start();
      throw await caught;
    },
    expect: 'BOOM',
  },

  // loop.signal(name, callback)
  { name: "signal: 'SIGKILL'", call: (t) => t.loop.signal('SIGKILL' as 'SIGTERM', noop), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  { name: "signal: 'SIGSEGV' (V8's)", call: (t) => t.loop.signal('SIGSEGV' as 'SIGTERM', noop), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  { name: "signal: 'sigterm' (names are exact)", call: (t) => t.loop.signal('sigterm' as 'SIGTERM', noop), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  { name: 'signal: 15 (a number)', call: (t) => t.loop.signal(15 as unknown as 'SIGTERM', noop), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  { name: "signal: 'toString' (inherited property)", call: (t) => t.loop.signal('toString' as 'SIGTERM', noop), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  { name: 'signal: callback missing', call: (t) => t.loop.signal('SIGUSR2', undefined as unknown as () => void), expect: 'ERR_EVPOLL_INVALID_ARG', kernel: SIGNALS },
  {
    name: 'signal: more loops watching signals than there are self-pipe slots (64)',
    manyLoops: true,
    kernel: SIGNALS,
    call: (t) => {
      for (let i = 0; i < 100; i++) t.fresh().signal('SIGUSR2', noop);
    },
    expect: 'ERR_EVPOLL_SIGNAL_LIMIT',
    then: (t, err) => {
      assert.match(err.message, /at most 64 loops/);
      t.cleanup(); // every slot back
      const again = t.fresh().signal('SIGUSR2', noop);
      assert.ok(again.pending);
    },
  },
  {
    name: 'signal: no free fd for the self-pipe',
    call: (t) => t.loop.signal('SIGUSR2', noop),
    expect: 'EMFILE',
    then: (_t, err) => assert.is(err.syscall, 'pipe2'),
    noFds: true,
  },

  // Use after close()
  { name: 'closed: loop.event', call: (t) => { const c = closedLoop(t); c.loop.event(c.r, EV.READ, noop); }, expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: loop.timer', call: (t) => closedLoop(t).loop.timer(0, noop), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: loop.signal', call: (t) => closedLoop(t).loop.signal('SIGUSR2', noop), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: fd event add', call: (t) => closedLoop(t).ev.add(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: fd event del', call: (t) => closedLoop(t).ev.del(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: timer add', call: (t) => closedLoop(t).timer.add(5), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: timer del', call: (t) => closedLoop(t).timer.del(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: signal add', call: (t) => closedLoop(t).sig!.add(), expect: 'ERR_EVPOLL_CLOSED', kernel: SIGNALS },
  { name: 'closed: signal del', call: (t) => closedLoop(t).sig!.del(), expect: 'ERR_EVPOLL_CLOSED', kernel: SIGNALS },
  { name: 'closed: runOnce', call: (t) => closedLoop(t).loop.runOnce(0), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: run', call: (t) => closedLoop(t).loop.run(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: start', call: (t) => closedLoop(t).loop.start(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: stop', call: (t) => closedLoop(t).loop.stop(), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'closed: new Acceptor', call: (t) => new Acceptor(closedLoop(t).loop, listener(t), noop), expect: 'ERR_EVPOLL_CLOSED' },
  {
    name: 'closed: pending flags are all false; close(), ref(), unref() are harmless',
    call: (t) => {
      const c = closedLoop(t);
      c.loop.close();
      c.loop.ref();
      c.loop.unref();
      return c;
    },
    expect: null,
    then: (_t, c) => assert.equal([c.ev.pending, c.timer.pending, c.sig?.pending ?? false, c.loop.closed], [false, false, false, true]),
  },

  // evpoll/net
  { name: 'net.read: fd -1', call: () => net.read(-1, new Uint8Array(4)), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "net.read: buffer 'abc'", call: (t) => net.read(t.pipe()[0], 'abc' as unknown as Uint8Array), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: buffer an Int32Array', call: (t) => net.read(t.pipe()[0], new Int32Array(4) as unknown as Uint8Array), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: offset beyond the buffer', call: (t) => net.read(t.pipe()[0], new Uint8Array(4), 5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: offset -1', call: (t) => net.read(t.pipe()[0], new Uint8Array(4), -1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: length beyond the buffer', call: (t) => net.read(t.pipe()[0], new Uint8Array(4), 2, 3), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: offset 1.5', call: (t) => net.read(t.pipe()[0], new Uint8Array(4), 1.5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.read: an fd that is not open returns -9 (EBADF)', call: () => net.read(notOpen(), new Uint8Array(4)), expect: null, then: (_t, v) => assert.is(v, net.EBADF) },
  { name: 'net.write: fd 1.5', call: () => net.write(1.5, new Uint8Array(1)), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.write: buffer a string', call: (t) => net.write(t.pipe()[1], 'x' as unknown as Uint8Array), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.write: length beyond the buffer', call: (t) => net.write(t.pipe()[1], new Uint8Array(4), 0, 5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.write: length -1', call: (t) => net.write(t.pipe()[1], new Uint8Array(4), 0, -1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.write: to a pipe whose reader is gone returns -32 (EPIPE)', call: (t) => { const [r, w] = t.pipe(); t.close(r); return net.write(w, new Uint8Array(1)); }, expect: null, then: (_t, v) => assert.is(v, net.EPIPE) },
  { name: 'net.close: fd -1', call: () => net.close(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.close: an fd that is not open returns -9', call: () => net.close(notOpen()), expect: null, then: (_t, v) => assert.is(v, net.EBADF) },
  { name: 'net.listen: host 5', call: () => net.listen(5 as unknown as string, 0), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "net.listen: host 'localhost' (not a literal)", call: () => net.listen('localhost', 0), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.listen: port -1', call: () => net.listen('127.0.0.1', -1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.listen: port 65536', call: () => net.listen('127.0.0.1', 65536), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.listen: port 80.5', call: () => net.listen('127.0.0.1', 80.5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.listen: backlog -1', call: () => net.listen('127.0.0.1', 0, { backlog: -1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.listen: options null', call: () => net.listen('127.0.0.1', 0, null as unknown as {}), expect: 'ERR_EVPOLL_INVALID_ARG' },
  {
    name: 'net.listen: a port in use',
    call: (t) => net.listen('127.0.0.1', net.localPort(listener(t))),
    expect: 'EADDRINUSE',
    then: (_t, err) => assert.is(err.syscall, 'listen'),
  },
  { name: 'net.listen: an address not on this host', call: () => net.listen('192.0.2.1', 0), expect: 'EADDRNOTAVAIL', kernel: ADDRESSES },
  { name: 'net.listen: no free fd', call: () => net.listen('127.0.0.1', 0), expect: 'EMFILE', noFds: true },
  { name: 'net.pipe: no free fd', call: () => net.pipe(), expect: 'EMFILE', then: (_t, err) => assert.is(err.syscall, 'pipe2'), noFds: true },
  { name: 'net.socketpair: no free fd', call: () => net.socketpair(), expect: 'EMFILE', noFds: true },
  { name: 'net.accept: max 0', call: (t) => net.accept(listener(t), 0), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.accept: fd -1', call: () => net.accept(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.accept: a pipe returns -88 (ENOTSOCK)', call: (t) => net.accept(t.pipe()[0]), expect: null, then: (_t, v) => assert.is(v, -88) },
  { name: 'net.accept: a socket not listening returns -22 (EINVAL)', call: (t) => net.accept(t.track(net.socketpair())[0]), expect: null, then: (_t, v) => assert.is(v, net.EINVAL) },
  { name: 'net.accept: nothing pending returns -11 (EAGAIN)', call: (t) => net.accept(listener(t)), expect: null, then: (_t, v) => assert.is(v, net.EAGAIN) },
  { name: 'net.connect: host 5', call: () => net.connect(5 as unknown as string, 80), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "net.connect: host 'localhost' (not a literal)", call: () => net.connect('localhost', 80), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.connect: port 0', call: () => net.connect('127.0.0.1', 0), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.connect: port 65536', call: () => net.connect('127.0.0.1', 65536), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.connect: a multicast address', call: () => net.connect('ff02::1', 80), expect: 'ENETUNREACH', then: (_t, err) => assert.is(err.syscall, 'connect') },
  { name: 'net.connect: no free fd', call: () => net.connect('127.0.0.1', 80), expect: 'EMFILE', then: (_t, err) => assert.is(err.syscall, 'connect'), noFds: true },
  { name: 'net.connectResult: fd -1', call: () => net.connectResult(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.connectResult: a pipe returns -88 (ENOTSOCK)', call: (t) => net.connectResult(t.pipe()[0]), expect: null, then: (_t, v) => assert.is(v, -88) },
  { name: 'net.shutdown: fd 1.5', call: () => net.shutdown(1.5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.shutdown: a pipe returns -88 (ENOTSOCK)', call: (t) => net.shutdown(t.pipe()[1]), expect: null, then: (_t, v) => assert.is(v, -88) },
  { name: 'net.localPort: fd -1', call: () => net.localPort(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.localPort: a pipe', call: (t) => net.localPort(t.pipe()[0]), expect: 'ENOTSOCK', then: (_t, err) => assert.is(err.syscall, 'getsockname') },
  { name: 'net.setNoDelay: fd -1', call: () => net.setNoDelay(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.setNoDelay: a pipe returns -88 (ENOTSOCK)', call: (t) => net.setNoDelay(t.pipe()[0]), expect: null, then: (_t, v) => assert.is(v, -88) },

  // new net.FixedBuffer(size), io.read / io.write(fd, offset, length). A refused call leaves the
  // buffer usable (`usable`: a byte through it after the refusal).
  { name: 'net.FixedBuffer: size 0', call: () => new net.FixedBuffer(0), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.FixedBuffer: size -1', call: () => new net.FixedBuffer(-1), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.FixedBuffer: size 1.5', call: () => new net.FixedBuffer(1.5), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.FixedBuffer: size 2**31 (above the int32 a length is)', call: () => new net.FixedBuffer(2 ** 31), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "net.FixedBuffer: size '64'", call: () => new net.FixedBuffer('64' as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'net.FixedBuffer: size NaN', call: () => new net.FixedBuffer(NaN), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'io.read: fd -1', call: (t) => fixed(t).read(-1), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: "io.read: fd '3'", call: (t) => fixed(t).read('3' as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: fd 2**32 (would wrap to 0 as a C int)', call: (t) => fixed(t).read(2 ** 32), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: offset beyond the buffer', call: (t) => fixed(t).read(t.pipe()[0], 5), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: offset 1.5', call: (t) => fixed(t).read(t.pipe()[0], 1.5), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: length beyond the buffer from an offset', call: (t) => fixed(t).read(t.pipe()[0], 2, 3), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: offset 2**32 (would wrap to 0 as an int32)', call: (t) => fixed(t).read(t.pipe()[0], 2 ** 32, 1), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.write: length -1', call: (t) => fixed(t).write(t.pipe()[1], 0, -1), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.write: length NaN', call: (t) => fixed(t).write(t.pipe()[1], 0, NaN), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: "io.write: offset '1'", call: (t) => fixed(t).write(t.pipe()[1], '1' as unknown as number), expect: 'ERR_EVPOLL_INVALID_ARG', then: usable },
  { name: 'io.read: an fd that is not open returns -9 (EBADF)', call: (t) => fixed(t).read(notOpen()), expect: null, then: (t, v) => { assert.is(v, net.EBADF); usable(t); } },
  { name: 'io.write: to a pipe whose reader is gone returns -32 (EPIPE)', call: (t) => { const [r, w] = t.pipe(); t.close(r); return fixed(t).write(w, 0, 1); }, expect: null, then: (_t, v) => assert.is(v, net.EPIPE) },

  // new Acceptor(loop, listenFd, onConnection, options)
  { name: 'Acceptor: batch 0', call: (t) => acceptor(t, t.loop, listener(t), noop, { batch: 0 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: batch 1.5', call: (t) => acceptor(t, t.loop, listener(t), noop, { batch: 1.5 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "Acceptor: batch '5'", call: (t) => acceptor(t, t.loop, listener(t), noop, { batch: '5' as unknown as number }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: backoffMs -1', call: (t) => acceptor(t, t.loop, listener(t), noop, { backoffMs: -1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: backoffMs NaN', call: (t) => acceptor(t, t.loop, listener(t), noop, { backoffMs: NaN }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: backoffMs Infinity', call: (t) => acceptor(t, t.loop, listener(t), noop, { backoffMs: Infinity }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: maxConnections 0', call: (t) => acceptor(t, t.loop, listener(t), noop, { maxConnections: 0 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: maxConnections 2.5', call: (t) => acceptor(t, t.loop, listener(t), noop, { maxConnections: 2.5 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: maxConnections NaN', call: (t) => acceptor(t, t.loop, listener(t), noop, { maxConnections: NaN }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "Acceptor: maxConnections '8'", call: (t) => acceptor(t, t.loop, listener(t), noop, { maxConnections: '8' as unknown as number }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: turnMs 0 (every yielded turn would end at once)', call: (t) => acceptor(t, t.loop, listener(t), noop, { turnMs: 0 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: turnMs Infinity', call: (t) => acceptor(t, t.loop, listener(t), noop, { turnMs: Infinity }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "Acceptor: yieldNearCap 'no'", call: (t) => acceptor(t, t.loop, listener(t), noop, { yieldNearCap: 'no' as unknown as boolean }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: onRefused not a function', call: (t) => acceptor(t, t.loop, listener(t), noop, { onRefused: {} as unknown as () => void }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: mutex not an AcceptMutex', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: {} as unknown as AcceptMutex }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: mutex on a closed SharedRegion', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: closedMutex() }), expect: 'ERR_EVPOLL_CLOSED' },
  { name: 'Acceptor: mutexDelayMs 0 (a locked-out turn would end at once)', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: mutex(t), mutexDelayMs: 0 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: mutexDelayMs -1', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: mutex(t), mutexDelayMs: -1 }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: mutexDelayMs NaN', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: mutex(t), mutexDelayMs: NaN }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: mutexDelayMs Infinity', call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: mutex(t), mutexDelayMs: Infinity }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: "Acceptor: mutexDelayMs '500'", call: (t) => acceptor(t, t.loop, listener(t), noop, { mutex: mutex(t), mutexDelayMs: '500' as unknown as number }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: release() with no connection open', call: (t) => acceptor(t, t.loop, listener(t), noop, { maxConnections: 4 }).release(), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: onConnection missing', call: (t) => acceptor(t, t.loop, listener(t), undefined as unknown as () => void), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: options null', call: (t) => acceptor(t, t.loop, listener(t), noop, null as unknown as {}), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: onBackoff not a function', call: (t) => acceptor(t, t.loop, listener(t), noop, { onBackoff: 5 as unknown as () => void }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: onError not a function', call: (t) => acceptor(t, t.loop, listener(t), noop, { onError: 'x' as unknown as () => void }), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: listenFd -1', call: (t) => acceptor(t, t.loop, -1, noop), expect: 'ERR_EVPOLL_INVALID_ARG' },
  { name: 'Acceptor: listenFd not open', call: (t) => acceptor(t, t.loop, notOpen(), noop), expect: 'EBADF' },
  {
    name: 'Acceptor: listenFd a regular file (epoll: EPERM; elsewhere ENOTSOCK at the first accept)',
    call: async (t) => {
      const errors: string[] = [];
      const a = new Acceptor(t.loop, unpollable(t, 'file'), noop, { onError: (e) => errors.push(e.code) });
      t.defer(() => a.close());
      await until(t.loop, () => errors.length > 0);
      return errors;
    },
    expect: (m) => (isEpoll(m) ? 'EPERM' : null),
    kernel: FILES,
    then: (_t, errors) => {
      if (!isEpoll(MECHANISM)) assert.is(errors[0], 'ENOTSOCK');
    },
  },
  {
    name: 'Acceptor: pause() after loop.close()',
    call: (t) => {
      const loop = t.fresh();
      const a = new Acceptor(loop, listener(t), noop);
      loop.close();
      a.pause();
    },
    expect: 'ERR_EVPOLL_CLOSED',
  },
  {
    name: 'Acceptor: close() after loop.close() is harmless',
    call: (t) => {
      const loop = t.fresh();
      const a = new Acceptor(loop, listener(t), noop);
      loop.close();
      a.close();
      return a;
    },
    expect: null,
    then: (_t, a) => assert.is(a.state, 'closed'),
  },

  // With no free fd at all, what is already open goes on working.
  {
    name: 'no free fd: start() and the loop dispatching need no new fd',
    call: (t) => {
      if (MODE === 'start') {
        t.loop.start();
        t.loop.stop();
      }
      return t.loop.runOnce(0);
    },
    expect: null,
    noFds: true,
  },
];

// ---------------------------------------------------------------------------------------------
// The runner.

/** The code of whatever was thrown: `code` for errors, else a description of the value. */
function codeOf(e: unknown): string {
  if (e !== null && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string') return (e as { code: string }).code;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `thrown ${String(e)}`;
}

function expected(row: Row): Code {
  return typeof row.expect === 'function' ? row.expect(MECHANISM) : row.expect;
}

/** The error's shape matches its kind: EvpollError for ERR_EVPOLL_*, Node's SystemError for errno codes. */
function checkShape(code: string, err: any): void {
  if (code.startsWith('ERR_EVPOLL_')) {
    assert.instance(err, EvpollError);
  } else if (/^E[A-Z]+$/.test(code)) {
    assert.type(err.errno, 'number');
    assert.ok(err.errno < 0, `errno ${err.errno} is negative, as in Node`);
    assert.type(err.syscall, 'string');
    assert.ok(err.message.startsWith(`${code}: `), err.message);
  }
}

/** Registered on the shared loop before the first row; each must fire after every row. */
function survivors(loop: EventLoop) {
  const [r, w] = net.pipe();
  const count = { fd: 0, timer: 0, signal: 0 };
  const fdEv = loop.event(r, EV.READ, () => { count.fd++; drain(r); }).add();
  const timer = loop.timer(EV.PERSIST, () => count.timer++).add(5);
  // On 'sim' there are no signals (loop.signal() needs a kernel): the fd event and the timer.
  const sig: SignalEvent | undefined = SIMULATION ? undefined : loop.signal('SIGUSR2', () => count.signal++);
  return {
    async check(): Promise<void> {
      assert.ok(!loop.closed && fdEv.pending && timer.pending && (sig?.pending ?? true), 'still registered');
      const before = { ...count };
      writeByte(w);
      if (sig) process.kill(process.pid, 'SIGUSR2');
      await iterateUntil(loop, () => count.fd > before.fd && count.timer > before.timer && (!sig || count.signal > before.signal), 3000);
    },
    close(): void {
      loop.close();
      net.close(r);
      net.close(w);
    },
  };
}

/** The outcome of one row: the code thrown (or null) and the value or error. */
async function attempt(row: Row, t: Ctx): Promise<{ code: Code; value: any }> {
  try {
    return { code: null, value: await row.call(t) };
  } catch (e) {
    return { code: codeOf(e), value: e };
  }
}

async function runRow(row: Row, t: Ctx, outcome: { code: Code; value: any }): Promise<void> {
  const want = expected(row);
  assert.is(outcome.code, want, `threw ${outcome.code}, expected ${want}${outcome.code && !want ? `: ${outcome.value?.stack ?? outcome.value}` : ''}`);
  if (want !== null) checkShape(want, outcome.value);
  await row.then?.(t, outcome.value);
}

test('hostile input: each bad call throws its code, and the loop keeps working with nothing lost', async () => {
  const loop = newLoop();
  const alive = survivors(loop);
  const fdsBefore = openFds();
  const virtualBefore = SIMULATION?.openFds();
  const failures: string[] = [];
  // On 'sim' every noFds row is kernel-only: no child to run them.
  const noFdsOutcomes = SIMULATION ? {} : await runNoFdsChild();
  let ran = 0;
  for (const row of ROWS) {
    if (row.modes && !row.modes.includes(MODE)) continue;
    if (row.manyLoops && process.env.EVPOLL_VALGRIND) continue;
    const kernel = row.kernel ?? (row.noFds ? FD_LIMIT : undefined);
    if (SIMULATION && kernel !== undefined) {
      console.log(`sim: skipped hostile.test row "${row.name}": ${kernel}`);
      continue;
    }
    const t = new Ctx(loop);
    try {
      const outcome = row.noFds ? noFdsOutcomes[row.name] : await attempt(row, t);
      if (outcome === undefined) throw new Error('the no-fd child did not report this row');
      await runRow(row, t, outcome);
    } catch (e) {
      failures.push(`${row.name}: ${(e as Error).message}`);
    } finally {
      t.cleanup();
    }
    try {
      await alive.check();
    } catch (e) {
      failures.push(`after "${row.name}": the shared loop lost something: ${(e as Error).message}`);
      break; // every later row would report the same
    }
    ran++;
  }
  alive.close();
  assert.equal(failures, [], `${failures.length} of ${ran} rows failed:\n  ${failures.join('\n  ')}`);
  assert.equal(openFds().filter((fd) => !fdsBefore.includes(fd)), [], 'fds the rows left open');
  if (SIMULATION) assert.equal(SIMULATION.openFds().filter((fd) => !virtualBefore!.includes(fd)), [], 'virtual fds the rows left open');
});

// ---------------------------------------------------------------------------------------------
// Rows marked noFds run in a child under RLIMIT_NOFILE 64 (this same file, with NO_FDS_CHILD
// set), after it has used up every fd; it reports each row's code, errno and syscall, then
// frees the fds and checks its loop still dispatches.

interface Reported {
  code: Code;
  value: { code?: string; errno?: number; syscall?: string; message?: string } | unknown;
}

async function runNoFdsChild(): Promise<Record<string, { code: Code; value: any }>> {
  const report = await runUnderFdLimit<{ rows: Record<string, Reported>; afterwards: string }>(import.meta.url, NO_FDS_CHILD, 20_000);
  assert.is(report.afterwards, 'ok', 'the child\'s loop dispatched and new loops and pipes worked once fds were freed');
  const outcomes: Record<string, { code: Code; value: any }> = {};
  for (const [name, r] of Object.entries(report.rows)) {
    const v = r.value as { message?: string };
    // Rebuild an Error of the same shape, so checkShape and `then` see what the child saw.
    outcomes[name] = { code: r.code, value: r.code !== null && v && typeof v === 'object' ? Object.assign(new Error(v.message), v) : r.value };
  }
  return outcomes;
}

async function noFdsChild(): Promise<void> {
  const loop = newLoop();
  let fired = 0;
  const [r, w] = net.pipe();
  loop.event(r, EV.READ, () => { fired++; drain(r); }).add();
  const fillers = fillFdTable();
  const rows: Record<string, Reported> = {};
  for (const row of ROWS.filter((x) => x.noFds && (!x.modes || x.modes.includes(MODE)))) {
    const t = new Ctx(loop);
    const { code, value } = await attempt(row, t);
    const v = value as { code?: string; errno?: number; syscall?: string; message?: string };
    rows[row.name] = { code, value: code === null ? value ?? null : { code: v?.code, errno: v?.errno, syscall: v?.syscall, message: v?.message } };
    t.cleanup();
  }
  // The loop dispatches with no free fd...
  writeByte(w);
  await iterateUntil(loop, () => fired === 1);
  // ...and once fds are freed, everything that was refused works.
  for (const fd of fillers.splice(0, 16)) closeSync(fd);
  let afterwards = 'ok';
  try {
    const fresh = newLoop();
    fresh.signal('SIGUSR2', noop);
    net.close(net.listen('127.0.0.1', 0));
    net.pipe().forEach((fd) => net.close(fd));
    fresh.close();
    writeByte(w);
    await iterateUntil(loop, () => fired === 2);
  } catch (e) {
    afterwards = (e as Error).stack ?? String(e);
  }
  console.log(JSON.stringify({ rows, afterwards }));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The backend's hot methods (add, modify, remove, wait, takeBatch, rearm) are functions of each
// backend's own, bound to it natively (no napi_unwrap per call). Taken off the object they
// still work; one that outlives its backend — closed, or collected — answers -EBADF (rearm:
// nothing), and never touches freed memory (the ASan run checks that).

type HotFns = Pick<NativeBackend, 'add' | 'modify' | 'remove' | 'wait' | 'takeBatch' | 'rearm'>;

function hotFns(b: NativeBackend): HotFns {
  const { add, modify, remove, wait, takeBatch, rearm } = b;
  return { add, modify, remove, wait, takeBatch, rearm };
}

/** Every hot function answers as a closed backend does, and still refuses bad arguments. */
function assertClosed(f: HotFns, fd: number, what: string): void {
  const ab = new ArrayBuffer(120);
  assert.is(f.wait(0, ab, 0, 10), net.EBADF, `${what}: wait`);
  assert.is(f.takeBatch(ab, 0, 10), net.EBADF, `${what}: takeBatch`);
  assert.is(f.add(fd, EV.READ, 1), net.EBADF, `${what}: add`);
  assert.is(f.modify(fd, EV.READ, 1), net.EBADF, `${what}: modify`);
  assert.is(f.remove(fd), net.EBADF, `${what}: remove`);
  assert.is(f.rearm(), undefined, `${what}: rearm`);
  assert.throws(() => f.wait(0, {} as ArrayBuffer, 0, 1), (e: Error) => e instanceof TypeError, `${what}: wait with no ArrayBuffer`);
  assert.throws(() => f.takeBatch(ab, 2, 1), (e: Error) => e instanceof RangeError, `${what}: takeBatch misaligned`);
  assert.throws(() => f.add('x' as unknown as number, EV.READ, 1), (e: Error) => e instanceof TypeError, `${what}: add with fd 'x'`);
}

kernelOnly('the native backends themselves (addon.Backend, on real fds)', () => {
  test('backend methods taken off the object work, refuse bad arguments, and answer EBADF once it is closed', () => {
    const b = new addon.Backend(MECHANISM, 64);
    const f = hotFns(b);
    const [r, w] = net.pipe();
    const ab = new ArrayBuffer(120);
    const records = new Int32Array(ab);
    assert.is(f.add(w, EV.WRITE, 7), 0);
    assert.is(f.wait(0, ab, 12, 9), 1);
    assert.equal([...records.subarray(3, 6)], [w, 7, EV.WRITE]);
    assert.is(f.modify(w, EV.READ, 8), 0);
    assert.is(f.takeBatch(ab, 0, 10), 0, 'a pipe\'s write end is never readable');
    assert.is(f.add(r, EV.READ, 9), 0);
    writeByte(w);
    assert.is(f.takeBatch(ab, 0, 10), 1);
    assert.equal([...records.subarray(0, 3)], [r, 9, EV.READ]);
    assert.is(f.remove(r), 0);
    assert.is(f.wait(0, ab, 0, 10), 0);
    assert.is(f.rearm(), undefined);
    // Bad arguments are refused with a TypeError or RangeError, never reach the backend.
    for (const [name, args] of [
      ['wait', [NaN, ab, 0, 1]], ['wait', [0, ab, -4, 1]], ['wait', [0, ab, 2 ** 32 + 4, 1]], ['wait', [0, ab, 0, 0]], ['wait', [0, ab, 0, 11]], ['wait', [0, ab, 0, 'x']], ['wait', []],
      ['takeBatch', [new Uint8Array(120), 0, 1]], ['takeBatch', [ab, 'x', 1]], ['takeBatch', [ab, 112, 1]],
      ['add', [w, 'x', 1]], ['add', [w, EV.READ, {}]], ['modify', [undefined, EV.READ, 1]], ['remove', ['x']],
    ] as [keyof HotFns, unknown[]][]) {
      const thrown = (fn: () => unknown) => {
        try {
          fn();
        } catch (e) {
          return `${(e as Error).constructor.name}: ${(e as Error).message}`;
        }
        return 'nothing thrown';
      };
      const own = thrown(() => (f[name] as (...a: unknown[]) => unknown)(...args));
      assert.ok(/^(TypeError|RangeError): /.test(own), `${name}(${args.map(String).join(', ')}): ${own}`);
    }
    b.close();
    assertClosed(f, r, 'after close()');
    net.close(r);
    net.close(w);
  });

  test('a backend function that outlives its collected backend answers EBADF; the backend\'s fds are released', async () => {
    const gc = exposedGc();
    const fdsBefore = openFds();
    const [r, w] = net.pipe();
    // Made in a frame of its own, so that nothing but the functions is left of it.
    const f = ((): HotFns => {
      const b = new addon.Backend(MECHANISM, 64);
      b.add(r, EV.READ, 1);
      return hotFns(b);
    })();
    writeByte(w);
    const ab = new ArrayBuffer(120);
    assert.is(f.wait(0, ab, 0, 10), 1, 'alive: it reports the ready pipe');
    let answer = 1;
    for (let round = 0; round < 50 && answer !== net.EBADF; round++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve)); // finalizers run after the GC
      answer = f.wait(0, ab, 0, 10);
      assert.ok(answer === 1 || answer === net.EBADF, `wait answered ${answer}`);
    }
    assert.is(answer, net.EBADF, 'the backend was collected');
    assertClosed(f, r, 'after collection');
    net.close(r);
    net.close(w);
    assert.equal(openFds().filter((fd) => !fdsBefore.includes(fd)), [], 'the collected backend closed its fds');
  });

  test('a worker that exits with backends and their functions alive releases them', async () => {
    const before = openFds();
    const path = addonPath();
    for (const how of ['return', 'terminate']) {
      const worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
        const addon = require(workerData.path);
        const kept = [];
        for (let i = 0; i < 4; i++) {
          const b = new addon.Backend(workerData.mechanism, 64);
          kept.push(i % 2 ? b : { wait: b.wait, add: b.add, remove: b.remove });
          if (i === 3) b.close();
        }
        globalThis.kept = kept;
        kept[0].wait(0, new ArrayBuffer(12), 0, 1);
        // To be terminated, it must still be running when terminate() comes: nothing else keeps
        // a worker alive here, and it would end on its own first if the parent were slow.
        if (workerData.how === 'terminate') setInterval(() => {}, 60_000);
        parentPort.postMessage('ready');`,
        { eval: true, workerData: { path, mechanism: MECHANISM, how } },
      );
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      await new Promise((resolve) => worker.once('message', resolve));
      if (how === 'terminate') await worker.terminate();
      assert.is(await exited, how === 'terminate' ? 1 : 0, how);
    }
    assert.equal(openFds().filter((fd) => !before.includes(fd)), [], 'the workers\' backends closed their fds');
  });
});

if (process.env[NO_FDS_CHILD]) await noFdsChild();
else test.run();
