// No stale event reaches a callback (nginx's instance bit, libev's generation counter).
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { EV, type Event } from '../src/index.js';
import { newLoop, iterate, iterateExpecting, pipe, writeByte, close } from './helpers.js';
import * as net from '../src/net.js';


test('a callback that deletes another ready event: that event\'s callback does not run', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const ran: string[] = [];
  let e1: Event<string>, e2: Event<string>;
  const cb = (_e: Event<string>, _w: number, name: string) => {
    ran.push(name);
    (name === 'one' ? e2 : e1).del();
  };
  e1 = loop.event(r1, EV.READ, cb, 'one').add();
  e2 = loop.event(r2, EV.READ, cb, 'two').add();
  writeByte(w1);
  writeByte(w2);
  assert.is(await iterateExpecting(loop), 1);
  assert.is(ran.length, 1, `both were ready, only the first ran: ${ran}`);
  loop.close();
});

test('a callback that deletes, closes and reuses another fd\'s number: the old readiness is dropped', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const ran: string[] = [];
  let reused = -1;
  let fresh: Event | undefined;
  const events: Event<string>[] = [];
  const cb = (_e: Event<string>, _w: number, name: string) => {
    ran.push(name);
    if (fresh) return;
    const victim = name === 'one' ? events[1] : events[0];
    victim.del();
    close(victim.fd);
    // Linux hands out the lowest free number: the new pipe's read end takes the victim's.
    const [nr, nw] = pipe();
    reused = nr === victim.fd ? nr : -1;
    fresh = loop.event(nr, EV.READ, () => ran.push('fresh')).add();
    (fresh as Event & { writeEnd?: number }).writeEnd = nw;
  };
  events.push(loop.event(r1, EV.READ, cb, 'one').add(), loop.event(r2, EV.READ, cb, 'two').add());
  writeByte(w1);
  writeByte(w2);
  await iterate(loop, 0);
  assert.ok(reused >= 0, 'the new registration reused the closed number');
  assert.is(ran.length, 1, `only the first callback ran: ${ran}`);
  assert.is(await iterateExpecting(loop), 1, 'the surviving fd, still unread, fires again; the fresh one has no data');
  assert.not.ok(ran.includes('fresh'));
  writeByte((fresh as Event & { writeEnd: number }).writeEnd);
  await iterate(loop, 0);
  assert.ok(ran.includes('fresh'), 'the new registration works');
  loop.close();
});

test('del() and add() of the same event inside a batch: the old readiness is dropped, the new registration works', async () => {
  const loop = newLoop();
  const [r1, w1] = pipe();
  const [r2, w2] = pipe();
  const ran: string[] = [];
  const events: Event<string>[] = [];
  let done = false;
  const cb = (_e: Event<string>, _w: number, name: string) => {
    ran.push(name);
    if (done) return;
    done = true;
    const other = name === 'one' ? events[1] : events[0];
    other.del();
    other.add();
  };
  events.push(loop.event(r1, EV.READ, cb, 'one').add(), loop.event(r2, EV.READ, cb, 'two').add());
  writeByte(w1);
  writeByte(w2);
  assert.is(await iterateExpecting(loop), 1);
  assert.is(await iterateExpecting(loop), 2, 'both registrations report their unread data next time');
  net.close(w1);
  net.close(w2);
  loop.close();
});

test.run();
