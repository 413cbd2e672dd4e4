import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { EV, EventLoop, EvpollError, mechanisms, type Mechanism } from '../src/index.js';
import { addon } from '../src/native.js';
import { VIRTUAL_FD_BASE } from '../src/virtual.js';
import * as net from '../src/net.js';
import { MECHANISM, SIMULATION, openFds, throwsCode } from './helpers.js';

test('mechanisms() lists epoll, poll, select first, in preference order', () => {
  const list = mechanisms();
  assert.equal(list.slice(0, 3).map((m) => m.name), ['epoll', 'poll', 'select']);
  for (const m of list.slice(0, 3)) assert.ok(m.available, `${m.name} available on Linux`);
  assert.equal(list.find((m) => m.name === 'epoll')!.supportEdgeTrigger, true);
  assert.equal(list.find((m) => m.name === 'poll')!.supportEdgeTrigger, false);
  assert.equal(list.find((m) => m.name === 'select')!.supportEdgeTrigger, false);
  const keys = ['available', 'fdLimit', 'helperThread', 'name', 'supportEdgeTrigger', 'supportExclusive', 'syscalls'];
  for (const m of list) {
    assert.equal(Object.keys(m).sort(), keys, m.name);
    assert.equal(Object.keys(m.syscalls).sort(), ['add', 'wait'], m.name);
  }
});

// What each backend's module struct says of itself (backend.h): the loop builds on these, so a
// wrong value here is a wrong error, a missed fd limit or a helper thread that is not there.
const EXPECTED: Mechanism[] = [
  { name: 'epoll', supportEdgeTrigger: true, available: true, supportExclusive: true, fdLimit: null, helperThread: false, syscalls: { add: 'epoll_ctl', wait: 'epoll_wait' } },
  { name: 'poll', supportEdgeTrigger: false, available: true, supportExclusive: false, fdLimit: null, helperThread: true, syscalls: { add: 'fcntl', wait: 'poll' } },
  { name: 'select', supportEdgeTrigger: false, available: true, supportExclusive: false, fdLimit: 1024, helperThread: true, syscalls: { add: 'fcntl', wait: 'select' } },
  { name: 'kqueue', supportEdgeTrigger: true, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'kevent', wait: 'kevent' } },
  { name: '/dev/poll', supportEdgeTrigger: false, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'write', wait: 'ioctl' } },
  { name: 'port', supportEdgeTrigger: false, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'port_associate', wait: 'port_getn' } },
  // evpoll/sim's: always listed, available while a Simulation is installed (the 'sim' suite's).
  { name: 'sim', supportEdgeTrigger: true, available: SIMULATION !== undefined, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'sim_ctl', wait: 'sim_wait' } },
];

test('mechanisms() reports each backend\'s capabilities: exclusive wake-ups, fd limit, helper thread, syscall names', () => {
  assert.equal(mechanisms(), EXPECTED);
  // The native ones come from the module structs themselves, not from a table in JS.
  assert.equal(addon.mechanisms(), EXPECTED.slice(0, 3));
  const select = mechanisms().find((m) => m.name === 'select')!;
  assert.is(select.fdLimit, addon.FD_SETSIZE, 'select\'s limit is the FD_SETSIZE it was compiled with');
});

test('mechanisms() hands out copies: changing one changes nothing for the next caller', () => {
  const first = mechanisms();
  for (const m of first) {
    m.helperThread = !m.helperThread;
    m.syscalls.add = 'changed';
  }
  assert.equal(mechanisms(), EXPECTED);
});

test('the loop agrees with what mechanisms() reports for its mechanism', () => {
  const m = mechanisms().find((x) => x.name === MECHANISM)!;
  const loop = new EventLoop({ mechanism: MECHANISM });
  try {
    assert.is(loop.supportEdgeTrigger, m.supportEdgeTrigger);
    assert.is(loop.supportExclusive, m.supportExclusive);
    // add() of an fd that is not open names syscalls.add. On 'sim' the loop takes virtual fds
    // only, numbered from VIRTUAL_FD_BASE: a closed one, and the limit counted from there.
    const fds = SIMULATION ? SIMULATION.openFds() : openFds();
    const fd0 = SIMULATION ? VIRTUAL_FD_BASE : 0;
    let bad = 100;
    if (SIMULATION) {
      const [r, w] = net.pipe();
      net.close(r);
      net.close(w);
      bad = r;
    }
    while (fds.includes(bad)) bad++;
    const err = throwsCode(() => loop.event(bad, EV.READ, () => {}).add(), 'EBADF');
    assert.is(err.syscall, m.syscalls.add);
    // fdLimit: refused by the loop itself; with none, fd 1024 is as good as any (the OS refuses it: not open).
    const high = fd0 + (m.fdLimit ?? addon.FD_SETSIZE);
    assert.ok(!fds.includes(high));
    throwsCode(() => loop.event(high, EV.READ, () => {}).add(), m.fdLimit === null ? 'EBADF' : 'ERR_EVPOLL_FD_LIMIT');
    // helperThread: start() makes one (named in integrate.cc) exactly when reported.
    const helpers = () => readdirSync('/proc/self/task').filter((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'evpoll-wait').length;
    assert.is(helpers(), 0);
    if (SIMULATION) {
      // 'sim' has no integrated mode (start() refuses it), so no helper thread either.
      throwsCode(() => loop.start(), 'ERR_EVPOLL_SIM_UNSUPPORTED');
    } else {
      loop.start();
    }
    assert.is(helpers(), m.helperThread ? 1 : 0);
  } finally {
    loop.close();
  }
});

test('the mechanism name matches case-insensitively and is reported by the loop', () => {
  const loop = new EventLoop({ mechanism: MECHANISM.toUpperCase() });
  assert.is(loop.mechanism, MECHANISM);
  assert.is(loop.supportEdgeTrigger, EXPECTED.find((m) => m.name === MECHANISM)!.supportEdgeTrigger);
  loop.close();
});

test('omitted mechanism: EVPOLL_MECHANISM, else the first available', () => {
  const saved = process.env.EVPOLL_MECHANISM;
  try {
    process.env.EVPOLL_MECHANISM = MECHANISM;
    const a = new EventLoop();
    assert.is(a.mechanism, MECHANISM);
    a.close();
    delete process.env.EVPOLL_MECHANISM;
    const b = new EventLoop();
    // While a Simulation is installed (the 'sim' suite), 'sim' comes before both.
    assert.is(b.mechanism, SIMULATION ? 'sim' : mechanisms().find((m) => m.available)!.name);
    b.close();
  } finally {
    if (saved === undefined) delete process.env.EVPOLL_MECHANISM;
    else process.env.EVPOLL_MECHANISM = saved;
  }
});

test('an unknown mechanism is refused with the list of available ones', () => {
  const err = throwsCode(() => new EventLoop({ mechanism: 'iocp' }), 'ERR_EVPOLL_UNKNOWN_MECHANISM');
  assert.instance(err, EvpollError);
  assert.match(err.message, /'iocp'/);
  assert.match(err.message, /epoll, poll, select/);
});

test('a known mechanism this system lacks is refused as unavailable', () => {
  const missing = mechanisms().find((m) => !m.available)!;
  assert.ok(missing, 'kqueue and friends are known but not on Linux');
  const err = throwsCode(() => new EventLoop({ mechanism: missing.name.toUpperCase() }), 'ERR_EVPOLL_MECHANISM_UNAVAILABLE');
  assert.match(err.message, new RegExp(missing.name));
  assert.match(err.message, /epoll/);
});

test('bad options are refused', () => {
  throwsCode(() => new EventLoop({ mechanism: MECHANISM, maxFd: 0 }), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => new EventLoop({ mechanism: MECHANISM, maxFd: 1.5 }), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => new EventLoop({ mechanism: 42 as unknown as string }), 'ERR_EVPOLL_UNKNOWN_MECHANISM');
});

test.run();
