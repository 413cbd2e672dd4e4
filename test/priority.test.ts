// ev.priority (libev's model: everything ready in an iteration runs, highest priority first) and
// ev.activate() (libev's ev_feed_event, nginx's posted events), in the mode under test.
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { EV, type Event, type EventLoop } from '../src/index.js';
import { newLoop, iterate, iterateUntil, pipe, writeByte, drain, throwsCode, until, MODE } from './helpers.js';

/** Runs one batch and checks that it was one: everything asked for ran in a single iteration. */
async function oneIteration(loop: EventLoop): Promise<number> {
  const before = loop.stats().iterations;
  const ran = await iterate(loop, 2000);
  assert.is(loop.stats().iterations - before, 1, 'one iteration');
  return ran;
}

/** A readable pipe watched at `priority`, its callback logging `name` and draining it. */
function readyFd(loop: EventLoop, name: string, priority: number, order: string[]): Event {
  const [r, w] = pipe();
  const ev = loop.event(r, EV.READ | EV.PERSIST, () => { order.push(name); drain(r); });
  ev.priority = priority;
  ev.add();
  writeByte(w);
  return ev;
}

test('priority: one iteration runs everything ready, 2 first; fd events before timers within a priority', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const timer = (name: string, priority: number) => {
    const ev = loop.timer(0, () => order.push(name));
    ev.priority = priority;
    return ev.add(0);
  };
  timer('timer -2', -2);
  readyFd(loop, 'fd -1', -1, order);
  timer('timer 0', 0);
  readyFd(loop, 'fd 0', 0, order);
  readyFd(loop, 'fd 1', 1, order);
  timer('timer 2', 2);
  // A second ready fd at 0 and a second due timer at 0: the order within the priority is the
  // backend's for fds (not checked), deadline then sequence for timers.
  readyFd(loop, 'fd 0b', 0, order);
  timer('timer 0b', 0);
  assert.is(await oneIteration(loop), 8);
  const fds0 = order.slice(2, 4).sort();
  assert.equal([...order.slice(0, 2), ...fds0, ...order.slice(4)], ['timer 2', 'fd 1', 'fd 0', 'fd 0b', 'timer 0', 'timer 0b', 'fd -1', 'timer -2']);
});

test('priority: settable while pending, and a released slot forgets it', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const a = readyFd(loop, 'a', 0, order);
  readyFd(loop, 'b', 1, order);
  a.priority = 2; // pending: the core's slot takes it
  assert.is(a.priority, 2);
  assert.is(await oneIteration(loop), 2);
  assert.equal(order, ['a', 'b']);
  // A one-shot timer at 2 fires and releases its slot; the next event given that slot runs at 0.
  order.length = 0;
  const high = loop.timer(0, () => order.push('high'));
  high.priority = 2;
  high.add(0);
  assert.is(await iterate(loop, 2000), 1);
  a.del();
  const plain = loop.timer(0, () => order.push('plain')).add(0);
  const low = loop.timer(0, () => order.push('low'));
  low.priority = -1;
  low.add(0);
  const ahead = loop.timer(0, () => order.push('ahead'));
  ahead.priority = 1;
  ahead.add(0);
  assert.is(plain.priority, 0);
  assert.is(await oneIteration(loop), 3);
  assert.equal(order, ['high', 'ahead', 'plain', 'low']);
});

test('priority: out of range or not an integer is refused and changes nothing', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const ev = readyFd(loop, 'a', 1, order);
  for (const bad of [3, -3, 1.5, Number.NaN, '1' as unknown as number, undefined as unknown as number]) {
    const err = throwsCode(() => { ev.priority = bad; }, 'ERR_EVPOLL_INVALID_ARG');
    assert.match(err.message, /priority must be an integer from -2 to 2/);
  }
  assert.is(ev.priority, 1);
  readyFd(loop, 'b', 2, order);
  assert.is(await oneIteration(loop), 2);
  assert.equal(order, ['b', 'a']);
});

test('activate() from a callback: same iteration, after the batch, by priority then activation order', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const posted = (name: string, priority: number, then?: () => void) => {
    const ev = loop.timer(0, (_ev, which) => { order.push(`${name}:${which}`); then?.(); });
    ev.priority = priority;
    return ev;
  };
  const w = posted('w', 2);
  const x = posted('x', 0, () => w.activate());
  const y = posted('y', 1);
  const z = posted('z', 0);
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  loop.event(r1, EV.READ | EV.PERSIST, () => {
    order.push('a');
    drain(r1);
    x.activate();
    y.activate(EV.READ);
    z.activate();
  }).add();
  loop.event(r2, EV.READ | EV.PERSIST, () => { order.push('b'); drain(r2); }).add();
  writeByte(w1);
  writeByte(w2);
  assert.is(await oneIteration(loop), 6);
  const batch = order.slice(0, 2).sort();
  assert.equal(batch, ['a', 'b']);
  assert.equal(order.slice(2), [`y:${EV.READ}`, `x:${EV.TIMEOUT}`, `w:${EV.TIMEOUT}`, `z:${EV.TIMEOUT}`]);
  assert.not.ok(w.pending || x.pending || y.pending || z.pending, 'activation does not make a timer pending');
});

test('activate() from outside a callback: the next iteration runs it without waiting', async () => {
  const loop = newLoop();
  const [r] = pipe(); // never readable
  const seen: number[] = [];
  const ev = loop.event(r, EV.READ | EV.WRITE, (_ev, which) => seen.push(which)).add();
  ev.activate();
  if (MODE === 'run') {
    // runOnce() with no timeout would block forever on a pipe nobody writes to.
    assert.is(loop.runOnce(), 1);
  } else {
    assert.is(await iterate(loop, 10_000), 1);
  }
  assert.equal(seen, [EV.READ | EV.WRITE], 'the default which is the interest');
  assert.ok(ev.pending, 'still pending');
  // A timer that is not pending, on a loop with nothing else registered: it still runs.
  ev.del();
  let fired = 0;
  const t = loop.timer(0, (_t, which) => { assert.is(which, EV.TIMEOUT); fired++; });
  if (MODE === 'run') {
    t.activate();
    loop.run(); // returns once nothing is registered or posted
  } else {
    loop.start();
    setTimeout(() => t.activate(), 1); // from outside evpoll, on Node's loop
    await until('the posted timer to run', () => fired === 1);
    loop.stop();
  }
  assert.is(fired, 1);
  assert.not.ok(t.pending);
});

test('activate() twice before it runs: once, with the which bits combined', async () => {
  const loop = newLoop();
  const [r] = pipe();
  const seen: number[] = [];
  const ev = loop.event(r, EV.READ, (_ev, which) => seen.push(which)).add();
  ev.activate(EV.READ);
  ev.activate(EV.WRITE);
  ev.activate(EV.ERROR);
  assert.is(await iterate(loop, 10_000), 1);
  assert.equal(seen, [EV.READ | EV.WRITE | EV.ERROR]);
});

test('activate() then del(): dropped; activated again after del(): runs once, in its new place', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const make = (name: string) => loop.timer(0, () => order.push(name));
  const a = make('a');
  const b = make('b');
  const c = make('c').add(60_000);
  a.activate();
  b.activate();
  c.activate();
  assert.not.ok(a.del(), 'a was not pending');
  assert.ok(c.del());
  a.activate(); // after b now
  assert.is(await iterate(loop, 10_000), 2);
  assert.equal(order, ['b', 'a']);
  // Nothing is left posted: a later iteration runs nothing.
  const [r] = pipe();
  loop.event(r, EV.READ, () => order.push('never')).add();
  assert.is(await iterate(loop, 30), 0);
  assert.equal(order, ['b', 'a']);
});

test('activate() leaves a timer\'s schedule alone', async () => {
  const loop = newLoop();
  let ran = 0;
  const t = loop.timer(0, (_t, which) => { assert.is(which, EV.TIMEOUT); ran++; }).add(60_000);
  t.activate();
  assert.is(await iterate(loop, 10_000), 1);
  assert.is(ran, 1);
  assert.ok(t.pending, 'still pending');
  assert.is(loop.stats().timersFired, 0, 'not fired');
  assert.is(await iterate(loop, 30), 0, 'not due now');
  t.del();
  // A PERSIST timer keeps its frequency too: activated, then it fires on its schedule.
  let beats = 0;
  const p = loop.timer(EV.PERSIST, () => beats++).add(20);
  p.activate();
  assert.is(await iterate(loop, 10_000), 1);
  assert.is(loop.stats().timersFired, 0);
  await iterateUntil(loop, () => loop.stats().timersFired >= 2, 10_000);
  assert.ok(p.pending);
  assert.is(beats, 3);
});

test('activate(): bad which is refused, a closed loop too; a throwing posted callback leaves the rest for the next iteration', async () => {
  const loop = newLoop();
  const [r] = pipe();
  const ev = loop.event(r, EV.READ, () => {}).add();
  for (const bad of [0, -1, 1.5, EV.PERSIST, EV.EDGE, EV.EXCLUSIVE, 1 << 20, 'x' as unknown as number, null as unknown as number]) {
    const err = throwsCode(() => ev.activate(bad), 'ERR_EVPOLL_INVALID_ARG');
    assert.match(err.message, /which/);
  }
  const order: string[] = [];
  const boom = loop.timer(0, () => { order.push('boom'); throw new Error('boom'); });
  const after = loop.timer(0, () => order.push('after'));
  boom.activate();
  after.activate();
  if (MODE === 'run') {
    assert.throws(() => loop.runOnce(0), /boom/);
    assert.equal(order, ['boom']);
    assert.is(loop.runOnce(), 1, 'the rest runs next, without waiting');
  } else {
    const errors: unknown[] = [];
    loop.on('error', (err) => errors.push(err));
    loop.start();
    await until('both posted callbacks', () => order.length === 2);
    loop.stop();
    assert.is(errors.length, 1);
  }
  assert.equal(order, ['boom', 'after']);
  loop.close();
  throwsCode(() => after.activate(), 'ERR_EVPOLL_CLOSED');
});

test.run();
