import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { EV } from '../src/index.js';
import { newLoop, iterate, iterateExpecting, iterateUntil, loopNow, pipe, writeByte, SIMULATION } from './helpers.js';


/**
 * Lets `ms` pass on the loop's clock without the loop running: busy on the real clock; on 'sim'
 * by moving the simulation's virtual clock (which real time does not move).
 */
function busyWait(ms: number): void {
  if (SIMULATION) {
    SIMULATION.advance(ms);
    return;
  }
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('a PERSIST timer is re-armed at now + frequency after it fires (exact, on a hand-driven clock)', async () => {
  let now = 1000;
  const loop = newLoop({ clock: () => now });
  const fired: number[] = [];
  const t = loop.timer(EV.PERSIST, (ev, which) => {
    assert.is(which, EV.TIMEOUT);
    assert.ok(ev.pending, 'a PERSIST timer stays pending in its callback');
    fired.push(now);
  });
  t.add(15);
  for (const at of [1014, 1015, 1029, 1031, 1045, 1046]) {
    now = at;
    await iterate(loop, 0);
  }
  // Due at 1015; re-armed at 1015 + 15 = 1030, seen at 1031; re-armed at 1031 + 15 = 1046.
  assert.equal(fired, [1015, 1031, 1046]);
  assert.ok(t.pending);
  assert.is(t.del(), true);
  assert.is(t.pending, false);
  now = 2000;
  assert.is(await iterate(loop, 0), 0, 'a deleted timer never fires');
  loop.close();
});

test('a PERSIST timer on the real clock never fires before its frequency has passed', async () => {
  // The real clock, with each reading kept: inside a callback the last one is the `now` its
  // batch collected timers at, which is what the re-arm counts from. Intervals between the
  // callbacks themselves may be short by however late the previous callback ran (a stall
  // between collect and dispatch), so they are not what is checked.
  let read = 0;
  const loop = newLoop({ clock: () => (read = performance.now()) });
  const collected: number[] = [];
  const ran: number[] = [];
  const t = loop.timer(EV.PERSIST, () => {
    collected.push(read);
    ran.push(performance.now());
  });
  t.add(15);
  const added = read;
  await iterateUntil(loop, () => collected.length === 3);
  assert.ok(collected[0] - added >= 15, `first collected ${collected[0] - added} ms after add()`);
  assert.ok(ran[0] - added >= 15, `first ran ${ran[0] - added} ms after add()`);
  for (let i = 1; i < 3; i++) {
    assert.ok(collected[i] - collected[i - 1] >= 15, `collected ${collected[i] - collected[i - 1]} ms after the previous`);
    assert.ok(ran[i] - collected[i - 1] >= 15, `ran ${ran[i] - collected[i - 1]} ms after the previous collect`);
  }
  t.del();
  loop.close();
});

test('a one-shot timer is removed before its callback runs, which may add it again', async () => {
  const loop = newLoop();
  let fires = 0;
  const t = loop.timer(0, (ev) => {
    fires++;
    assert.is(ev.pending, false, 'not pending inside its own callback');
    assert.is(ev.del(), false, 'del() of a fired one-shot timer reports it was not pending');
    if (fires < 3) ev.add(1);
  });
  t.add(1);
  await iterateUntil(loop, () => fires === 3);
  assert.is(t.pending, false);
  assert.is(await iterate(loop, 20), 0);
  assert.is(fires, 3);
  loop.close();
});

test('timers due together are all collected first: a 0 ms re-add fires in the next iteration', async () => {
  const loop = newLoop();
  let fires = 0;
  const t = loop.timer(0, (ev) => {
    fires++;
    ev.add(0);
  });
  t.add(0);
  assert.is(await iterateExpecting(loop), 1);
  assert.is(fires, 1);
  assert.is(await iterateExpecting(loop), 1);
  assert.is(fires, 2);
  const p = loop.timer(EV.PERSIST, () => fires++).add(0);
  fires = 0;
  assert.is(await iterateExpecting(loop), 2, 'a 0 ms PERSIST timer fires once per iteration, not forever');
  p.del();
  t.del();
  loop.close();
});

test('due timers run in deadline order; equal frequencies in the order they were added', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const cb = (_ev: unknown, _w: number, name: string) => order.push(name);
  // c40 is added first but due last: 15 ms of margin for a slow machine (ASan, load) between
  // its add() and the s-timers' (with 5 ms, a stall there once put c before them).
  loop.timer(0, cb, 'c40').add(40);
  loop.timer(0, cb, 'a10').add(10);
  loop.timer(0, cb, 'b20').add(20);
  for (let i = 0; i < 20; i++) loop.timer(0, cb, `s${i}`).add(25);
  busyWait(45);
  assert.is(await iterateExpecting(loop), 23);
  assert.equal(order, ['a10', 'b20', ...Array.from({ length: 20 }, (_, i) => `s${i}`), 'c40']);
  loop.close();
});

test('in one iteration fd callbacks run first, then due timers', async () => {
  const loop = newLoop();
  const order: string[] = [];
  const [r, w] = pipe();
  loop.timer(0, () => order.push('timer')).add(0);
  loop.event(r, EV.READ, () => order.push('fd')).add();
  writeByte(w);
  busyWait(2);
  assert.is(await iterateExpecting(loop), 2);
  assert.equal(order, ['fd', 'timer']);
  loop.close();
});

test('adding a pending timer again reschedules it', async () => {
  const loop = newLoop();
  let fires = 0;
  const t = loop.timer(0, () => fires++).add(10_000);
  const start = loopNow();
  t.add(10);
  assert.ok(t.pending);
  await iterateUntil(loop, () => fires === 1);
  const took = loopNow() - start;
  assert.ok(took < 5000, `rescheduled to 10 ms, fired after ${took} ms`); // not after the 10 s first asked
  assert.is(t.pending, false);
  assert.is(await iterate(loop, 30), 0, 'rescheduling did not leave a second copy behind');
  loop.close();
});

test('a timer deleted by an earlier callback of the same batch does not run', async () => {
  const loop = newLoop();
  const ran: string[] = [];
  const b = loop.timer(0, () => ran.push('b'));
  const a = loop.timer(0, () => {
    ran.push('a');
    assert.is(b.del(), true, 'b was still pending: its callback had not run');
  });
  a.add(1);
  b.add(1);
  busyWait(3);
  await iterate(loop, 0);
  assert.equal(ran, ['a']);
  loop.close();
});

test('timeouts honour the nearest timer: runOnce() returns when it is due', async () => {
  const loop = newLoop();
  let fired = 0;
  const start = loopNow(); // before add(), which reads the loop's clock: the deadline is >= start + 20
  loop.timer(0, () => fired++).add(20);
  const n = await iterate(loop);
  const took = loopNow() - start;
  assert.is(n, 1);
  assert.is(fired, 1);
  assert.ok(took >= 19.9 && took < 1000, `waited ${took} ms for a 20 ms timer`);
  loop.close();
});

test('a quarter-million timers: memory grows and the loop keeps working', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  loop.event(r, EV.READ, () => reads++).add();
  const timers = [];
  for (let i = 0; i < 250_000; i++) timers.push(loop.timer(0, () => {}).add(60_000 + i));
  writeByte(w);
  assert.is(await iterateExpecting(loop), 1, 'the wait wrote its records into the grown memory');
  assert.is(reads, 1);
  for (const t of timers) assert.ok(t.del());
  let fired = 0;
  loop.timer(0, () => fired++).add(0);
  await iterate(loop, 0);
  assert.is(fired, 1);
  loop.close();
});

test('a callback that grows the core\'s memory mid-batch: the rest of the batch is read from the new memory', async () => {
  const loop = newLoop();
  const ran: string[] = [];
  let grown = false;
  const cb = (_ev: unknown, which: number, name: string) => {
    ran.push(`${name}:${which}`);
    if (!grown) {
      grown = true;
      for (let i = 0; i < 200_000; i++) loop.timer(0, () => {}).add(60_000);
    }
  };
  for (const name of ['a', 'b', 'c']) loop.timer(0, cb, name).add(0);
  busyWait(2);
  assert.is(await iterateExpecting(loop), 3);
  assert.equal(ran, ['a:1', 'b:1', 'c:1']);
  loop.close();
});

test.run();
