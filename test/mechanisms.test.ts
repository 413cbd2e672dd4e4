import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { EventLoop, EvpollError, mechanisms } from '../src/index.js';
import { MECHANISM, throwsCode } from './helpers.js';

test('mechanisms() lists epoll, poll, select first, in preference order', () => {
  const list = mechanisms();
  assert.equal(list.slice(0, 3).map((m) => m.name), ['epoll', 'poll', 'select']);
  for (const m of list.slice(0, 3)) assert.ok(m.available, `${m.name} available on Linux`);
  assert.equal(list.find((m) => m.name === 'epoll')!.supportEdgeTrigger, true);
  assert.equal(list.find((m) => m.name === 'poll')!.supportEdgeTrigger, false);
  assert.equal(list.find((m) => m.name === 'select')!.supportEdgeTrigger, false);
  for (const m of list) assert.equal(Object.keys(m).sort(), ['available', 'name', 'supportEdgeTrigger']);
});

test('the mechanism name matches case-insensitively and is reported by the loop', () => {
  const loop = new EventLoop({ mechanism: MECHANISM.toUpperCase() });
  assert.is(loop.mechanism, MECHANISM);
  assert.is(loop.supportEdgeTrigger, MECHANISM === 'epoll');
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
    assert.is(b.mechanism, mechanisms().find((m) => m.available)!.name);
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
