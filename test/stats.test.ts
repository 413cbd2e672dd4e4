// loop.stats() (libuv's uv_metrics_info), and the per-iteration hooks loop.prepare() and
// loop.check() (libev's prepare and check watchers), in the mode under test.
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { EV, EvpollError, LoopHook } from '../src/index.js';
import { newLoop, iterate, iterateExpecting, pipe, writeByte, drain, until, MODE, loopNow } from './helpers.js';

test('stats(): a fresh loop has done nothing; its core has memory', () => {
  const loop = newLoop();
  const s = loop.stats();
  assert.equal(
    { ...s, coreBytes: 0 },
    { iterations: 0, waits: 0, records: 0, callbacks: 0, timersFired: 0, handoffs: 0, waitMs: 0, dispatchMs: 0, coreBytes: 0 },
  );
  assert.ok(s.coreBytes >= 65536, `coreBytes ${s.coreBytes}: at least one WebAssembly page`);
  assert.is.not(loop.stats(), loop.stats(), 'a fresh object each call');
});

test('stats(): ready records, callbacks and fired timers are counted', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  let reads = 0;
  loop.event(r1, EV.READ, () => { reads++; drain(r1); }).add();
  loop.event(r2, EV.READ, () => { reads++; drain(r2); }).add();
  let fired = 0;
  loop.timer(0, () => fired++).add(0);
  writeByte(w1);
  writeByte(w2);
  const before = loop.stats();
  let ran = 0;
  while (ran < 3) ran += await iterateExpecting(loop);
  const s = loop.stats();
  assert.is(reads, 2);
  assert.is(fired, 1);
  assert.is(s.callbacks - before.callbacks, 3);
  assert.is(s.timersFired - before.timersFired, 1);
  assert.ok(s.records - before.records >= 2, `records ${s.records - before.records}: one per ready fd at least`);
  assert.ok(s.waits > before.waits && s.iterations > before.iterations);
  assert.ok(s.dispatchMs >= 0);
});

if (MODE === 'run') test('stats(): run() mode counts the time blocked in the wait', () => {
  const loop = newLoop();
  loop.timer(0, () => {}).add(30);
  // On the loop's clock, which waitMs is counted on (on 'sim' a virtual one: real time does not pass).
  const started = loopNow();
  loop.runOnce();
  const elapsed = loopNow() - started;
  const s = loop.stats();
  assert.is(s.timersFired, 1);
  assert.ok(s.waitMs >= 25 && s.waitMs <= elapsed + 1, `waitMs ${s.waitMs} of ${elapsed} ms`);
});

test('stats(): integrated mode counts its hand-offs to Node\'s loop', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  if (MODE === 'start') {
    loop.start();
    writeByte(w);
    await until('the read', () => reads === 1);
    loop.stop();
    assert.ok(loop.stats().handoffs >= 1, `handoffs ${loop.stats().handoffs}`);
  } else {
    writeByte(w);
    while (reads === 0) loop.runOnce();
    assert.is(loop.stats().handoffs, 0, 'run() never hands the wait to Node');
  }
});

test('prepare(): runs before the wait, and a timer it sets counts for that wait', async () => {
  const loop = newLoop();
  const [r] = pipe();
  loop.event(r, EV.READ, () => {}).add(); // keeps the loop alive, never ready
  const order: string[] = [];
  let timer = false;
  const hook = loop.prepare(() => {
    order.push('prepare');
    if (!timer) {
      timer = true;
      loop.timer(0, () => order.push('timer')).add(0);
    }
  });
  assert.ok(hook instanceof LoopHook && hook.pending);
  // With no timeout given and nothing ready, the wait would block for ever unless the timer
  // set by the prepare hook shortened it.
  while (!order.includes('timer')) await iterate(loop, MODE === 'run' ? undefined : 0, 5000);
  assert.is(order[0], 'prepare');
  assert.ok(order.indexOf('timer') > 0);
  assert.ok(hook.del());
  assert.not.ok(hook.pending);
  assert.not.ok(hook.del(), 'del() twice: false');
});

test('check(): runs after the wait, before the batch\'s callbacks; what it deletes does not run', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const order: string[] = [];
  const a = loop.event(r1, EV.READ, () => { order.push('a'); drain(r1); }).add();
  const b = loop.event(r2, EV.READ, () => { order.push('b'); drain(r2); }).add();
  const hook = loop.check(() => {
    order.push('check');
    b.del();
  });
  writeByte(w1);
  writeByte(w2);
  while (!order.includes('a')) await iterateExpecting(loop);
  hook.del();
  a.del();
  assert.is(order[0], 'check');
  assert.not.ok(order.includes('b'), 'deleted by the check hook before its callback');
});

test('a hook may delete another hook of the same round, and itself', async () => {
  const loop = newLoop();
  const ran: string[] = [];
  let second: LoopHook | undefined;
  loop.check((self) => {
    ran.push('first');
    second!.del();
    self.del();
  });
  second = loop.check(() => ran.push('second'));
  let fired = false;
  loop.timer(0, () => { fired = true; }).add(0);
  while (!fired) await iterateExpecting(loop);
  assert.equal(ran, ['first']);
});

test('hooks: a non-function is ERR_EVPOLL_INVALID_ARG; a closed loop is ERR_EVPOLL_CLOSED; close() drops them', () => {
  const loop = newLoop();
  for (const make of [(cb: any) => loop.prepare(cb), (cb: any) => loop.check(cb)]) {
    try {
      make(42);
      assert.unreachable('accepted a number');
    } catch (err) {
      assert.instance(err, EvpollError);
      assert.is((err as EvpollError).code, 'ERR_EVPOLL_INVALID_ARG');
    }
  }
  const hook = loop.prepare(() => {});
  loop.close();
  assert.not.ok(hook.pending, 'close() drops every hook');
  try {
    loop.check(() => {});
    assert.unreachable('a closed loop took a hook');
  } catch (err) {
    assert.is((err as EvpollError).code, 'ERR_EVPOLL_CLOSED');
  }
});

test('a check hook that throws: the error propagates and the batch runs next time', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  let throws = true;
  loop.check(() => {
    if (throws) {
      throws = false;
      throw new Error('check hook');
    }
  });
  writeByte(w);
  let caught: unknown;
  try {
    while (!caught) await iterateExpecting(loop);
  } catch (err) {
    caught = err;
  }
  assert.is((caught as Error).message, 'check hook');
  assert.is(reads, 0, 'the batch did not run with the throw');
  while (reads === 0) await iterateExpecting(loop);
  assert.is(reads, 1);
});

test.run();
