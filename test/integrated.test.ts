// Integrated mode: loop.start() rides on Node's event loop.
import { kernelOnly, onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { Socket } from 'node:net';
import { EV } from '../src/index.js';
import * as net from '../src/net.js';
import { newLoop, pipe, writeByte, drain, sleep, until, throwsCode, runChild } from './helpers.js';

kernelOnly("integrated mode: loop.start() rides on Node's real event loop");

/**
 * The most batches one wake-up of a started loop runs before Node's loop gets a turn again
 * (native/integrate.h's kMaxBatches).
 */
const WAKE_UP_BUDGET = 32;



test('Node timers and I/O keep running while evpoll dispatches', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  let nodeTicks = 0;
  loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  const beat = loop.timer(EV.PERSIST, () => writeByte(w)).add(5);
  const iv = setInterval(() => nodeTicks++, 5);
  onCleanup(() => clearInterval(iv));
  loop.start();
  assert.ok(loop.started);
  await until('5 reads and 5 ticks of Node\'s interval', () => reads >= 5 && nodeTicks >= 5);
  clearInterval(iv);
  loop.stop();
  assert.not.ok(loop.started);
  assert.ok(reads >= 5, `evpoll read ${reads} times`);
  assert.ok(nodeTicks >= 5, `Node's interval ran ${nodeTicks} times`);
  // Stopped: registrations stay, nothing is dispatched.
  const before = reads;
  await sleep(40);
  assert.is(reads, before);
  assert.ok(beat.pending);
  assert.is(loop.runOnce(50) > 0, true, 'run mode works again after stop()');
  loop.close();
});

test('a level-triggered fd left ready does not spin: one callback per handled batch, a budget of batches per turn, Node stays responsive', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  writeByte(w);
  let calls = 0;
  loop.event(r, EV.READ, () => calls++).add();
  let nodeTicks = 0;
  const iv = setInterval(() => nodeTicks++, 2);
  onCleanup(() => clearInterval(iv));
  // Turns of Node's loop, counted without a clock (a stalled process makes any time window
  // unfair): a setImmediate chain runs once per turn. Not spinning means at most a wake-up's
  // budget of batches per turn, however slowly the turns come.
  let turns = 0;
  let counting = true;
  const turn = () => {
    turns++;
    if (counting) setImmediate(turn);
  };
  setImmediate(turn);
  onCleanup(() => { counting = false; });
  loop.start();
  await until('the ready fd dispatched and 10 ticks of Node\'s interval', () => calls > 0 && nodeTicks >= 10);
  loop.stop();
  counting = false;
  clearInterval(iv);
  assert.ok(calls > 0, 'the ready fd was dispatched');
  assert.ok(nodeTicks >= 10, `Node's timers were not starved (${nodeTicks} ticks)`);
  assert.ok(calls <= WAKE_UP_BUDGET * (turns + 2), `${calls} callbacks in ${turns} turns of Node's loop`);
  loop.close();
});

test('a started loop kept busy does not starve Node: its immediates, timers and sockets run between wake-ups', async () => {
  const loop = newLoop();
  // Readable and never drained: level-triggered, so every batch finds it and is productive,
  // and the wake-up loop would look again for ever without its budget.
  const [r, w] = pipe();
  writeByte(w);
  // Node's own I/O: a net.Socket on one end of a socketpair (libuv polls it), fed from the
  // busy callback. Not the helpers' tracked pair: the Socket closes its own fd.
  const [a, b] = net.socketpair();
  const sock = new Socket({ fd: a, readable: true, writable: false });
  onCleanup(() => {
    sock.destroy();
    net.close(b);
  });
  let calls = 0;
  let sinceNode = 0; // evpoll batches since Node last ran a callback of its own
  let worst = 0;
  let starved = false;
  const nodeRan = () => {
    worst = Math.max(worst, sinceNode);
    sinceNode = 0;
  };
  const STARVED = 5000;
  loop.event(r, EV.READ | EV.PERSIST, () => {
    calls++;
    // Without a budget the wake-up would never end and this test would hang rather than
    // fail: give up, and let the assertions below say why.
    if (++sinceNode >= STARVED && !starved) {
      starved = true;
      loop.stop();
    }
    if (calls % 64 === 0) writeByte(b);
  }).add();
  let received = 0;
  sock.on('data', (data: Buffer) => {
    nodeRan();
    received += data.length;
  });
  let going = true;
  onCleanup(() => { going = false; });
  let immediates = 0;
  const immediate = () => {
    nodeRan();
    immediates++;
    if (going) setImmediate(immediate);
  };
  setImmediate(immediate);
  let timeouts = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = () => {
    nodeRan();
    timeouts++;
    if (going) timer = setTimeout(timeout, 1);
  };
  timer = setTimeout(timeout, 1);
  onCleanup(() => clearTimeout(timer));
  loop.start();
  await until('Node\'s immediates, timers and socket served while the loop stays busy', () =>
    starved || (immediates >= 50 && timeouts >= 10 && received >= 10 && calls >= 1000));
  going = false;
  loop.stop();
  assert.not.ok(starved, `${STARVED} evpoll batches in a row without one callback of Node's own`);
  assert.ok(worst <= 2 * WAKE_UP_BUDGET, `${worst} evpoll batches in a row without one callback of Node's own`);
  assert.ok(calls >= 1000 && immediates >= 50 && timeouts >= 10 && received >= 10);
  loop.close();
});

test('promise jobs and nextTicks run between the fd batches of one wake-up', async () => {
  // A chain over pipes: each callback makes the next pipe readable, so one wake-up runs the
  // whole chain, a batch per link; each batch's microtasks run before the next batch.
  const loop = newLoop();
  const pipes = Array.from({ length: 4 }, () => pipe());
  const order: string[] = [];
  pipes.forEach(([r], i) => {
    loop.event(r, EV.READ | EV.PERSIST, () => {
      drain(r);
      order.push(`cb${i}`);
      Promise.resolve().then(() => order.push(`micro${i}`));
      process.nextTick(() => order.push(`tick${i}`));
      if (i + 1 < pipes.length) writeByte(pipes[i + 1][1]);
    }).add();
  });
  loop.start();
  writeByte(pipes[0][1]);
  await until('the chain', () => order.length >= 3 * pipes.length);
  loop.close();
  assert.equal(order, pipes.flatMap((_, i) => [`cb${i}`, `tick${i}`, `micro${i}`]));
});

test('registrations made while started are seen: add, del, and timers rescheduled earlier', async () => {
  const loop = newLoop();
  loop.start();
  const [r, w] = pipe();
  let reads = 0;
  const ev = loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  writeByte(w);
  await until('the read', () => reads > 0);
  assert.is(reads, 1);
  ev.del();
  writeByte(w);
  await sleep(30);
  assert.is(reads, 1, 'a deleted event is not dispatched');
  let fired = 0;
  const t = loop.timer(0, () => fired++).add(10_000);
  t.add(5); // earlier than the Node timer already armed
  await until('the rescheduled timer (long before the 10 s first asked)', () => fired > 0);
  assert.is(fired, 1);
  loop.close();
  assert.not.ok(loop.started);
});

test('a callback that throws is emitted as error when the loop has listeners; the rest of the batch still runs', async () => {
  const loop = newLoop();
  const errors: unknown[] = [];
  loop.on('error', (e) => errors.push(e));
  const ran: string[] = [];
  loop.timer(0, () => { ran.push('a'); throw new Error('boom'); }).add(0);
  loop.timer(0, () => ran.push('b')).add(0);
  loop.start();
  await until('the error', () => errors.length > 0 && ran.length === 2);
  assert.is(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
  assert.equal(ran, ['a', 'b']);
  loop.close();
});

test('without error listeners a throwing callback is an uncaught exception', () => {
  const r = runChild(`
    process.on('uncaughtException', (e) => { console.log('uncaught:' + e.message); process.exit(0); });
    const loop = new EventLoop({ mechanism: MECHANISM });
    loop.timer(0, () => { throw new Error('kaboom'); }).add(1);
    loop.start();
  `);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /uncaught:kaboom/);
  // The same from an fd callback, dispatched from the backend's own wake-up (uv_poll or the
  // helper thread's uv_async) rather than from a Node timer.
  const fd = runChild(`
    process.on('uncaughtException', (e) => { console.log('uncaught:' + e.message); process.exit(0); });
    const loop = new EventLoop({ mechanism: MECHANISM });
    const [r, w] = net.pipe();
    loop.event(r, EV.READ, () => { throw new Error('fd-kaboom'); }).add();
    loop.start();
    setTimeout(() => net.write(w, new Uint8Array([1])), 20);
  `);
  assert.is(fd.status, 0, fd.stderr);
  assert.match(fd.stdout, /uncaught:fd-kaboom/);
});

test('promise jobs and nextTicks queued by a callback run before the next batch', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const t = loop.timer(EV.PERSIST, () => {
    order.push('cb');
    Promise.resolve().then(() => order.push('micro'));
    process.nextTick(() => order.push('tick'));
    if (order.filter((x) => x === 'cb').length === 2) t.del();
  }).add(2);
  loop.start();
  await until('two batches', () => order.length >= 6);
  await sleep(10); // room for a third, which would be wrong (the second deleted the timer)
  loop.close();
  assert.equal(order, ['cb', 'tick', 'micro', 'cb', 'tick', 'micro']);
});

test('a ref\'d started loop with events keeps the process alive; unref() or nothing registered does not', () => {
  const alive = runChild(`
    const [r] = net.pipe();
    const loop = new EventLoop({ mechanism: MECHANISM });
    loop.event(r, EV.READ, () => {}).add();
    loop.start();
    setTimeout(() => { console.log('still alive'); process.exit(0); }, 300).unref();
  `);
  assert.is(alive.status, 0, alive.stderr);
  assert.match(alive.stdout, /still alive/);

  const unrefd = runChild(`
    const [r] = net.pipe();
    const loop = new EventLoop({ mechanism: MECHANISM });
    loop.event(r, EV.READ, () => {}).add();
    loop.start().unref();
    setTimeout(() => { console.log('kept alive'); }, 2000).unref();
  `);
  // Exited on its own (a loop that held the process would be killed at the time limit), and
  // within 2 s: an unref'd timer still fires in a process that lives that long.
  assert.is(unrefd.signal, null, `killed after ${unrefd.ms} ms`);
  assert.is(unrefd.status, 0, unrefd.stderr);
  assert.not.match(unrefd.stdout, /kept alive/);

  // Busy: the fd stays ready (never read), so after each batch poll and select poll again
  // from the JS thread on the next turn; that continuation must not keep an unref'd loop alive.
  const busy = runChild(`
    const [r, w] = net.pipe();
    net.write(w, new Uint8Array([1]));
    const loop = new EventLoop({ mechanism: MECHANISM });
    let calls = 0;
    loop.event(r, EV.READ, () => { calls++; }).add();
    loop.start().unref();
    setTimeout(() => { console.log('kept alive'); }, 2000).unref();
    process.on('exit', () => console.log('calls ' + calls));
  `);
  assert.is(busy.signal, null, `killed after ${busy.ms} ms`);
  assert.is(busy.status, 0, busy.stderr);
  assert.not.match(busy.stdout, /kept alive/);

  const empty = runChild(`
    const loop = new EventLoop({ mechanism: MECHANISM });
    loop.start();
    const t = loop.timer(0, () => console.log('timer fired')).add(50);
  `);
  assert.is(empty.status, 0, empty.stderr);
  assert.match(empty.stdout, /timer fired/, 'a pending timer keeps it alive until it fires, then it exits');
});

test('run()/runOnce() while started: ERR_EVPOLL_BUSY; start() twice is harmless', () => {
  const loop = newLoop();
  loop.start();
  loop.start();
  throwsCode(() => loop.runOnce(0), 'ERR_EVPOLL_BUSY');
  throwsCode(() => loop.run(), 'ERR_EVPOLL_BUSY');
  loop.stop();
  assert.is(loop.runOnce(0), 0);
  loop.close();
  throwsCode(() => loop.start(), 'ERR_EVPOLL_CLOSED');
});

test('stop() then start() from a callback re-attaches: the rest of the batch and later events run', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  let restarted = 0;
  const ticks: number[] = [];
  loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  loop.timer(EV.PERSIST, (ev) => {
    ticks.push(ticks.length);
    if (ticks.length === 1) {
      loop.stop();
      assert.not.ok(loop.started);
      loop.start(); // was ERR_EVPOLL_BUSY: the loop was still "running" its batch
      restarted++;
      assert.ok(loop.started);
    }
  }).add(5);
  loop.start();
  await until('the restart', () => restarted > 0);
  writeByte(w);
  await until('the read and two more ticks', () => reads > 0 && ticks.length >= 3);
  assert.is(restarted, 1);
  assert.ok(loop.started);
  assert.ok(ticks.length >= 3, `the persistent timer went on firing after the restart (${ticks.length} times)`);
  assert.is(reads, 1, 'an fd made ready after the restart was dispatched');
  loop.stop();
  loop.close();
});

test.run();
