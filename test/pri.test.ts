// EV.PRI: urgent data and exceptional conditions (EPOLLPRI, POLLPRI, select's except set), with
// TCP urgent data (net.sendUrgent / net.readUrgent) over loopback as the condition.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { constants } from 'node:os';
import { EV } from '../src/index.js';
import * as net from '../src/net.js';
import { newLoop, iterate, iterateUntil, pipe, socketpair, close, drain, throwsCode, MECHANISM } from './helpers.js';
import { tcpPair } from './tcp-helpers.js';

kernelOnly('TCP urgent data (MSG_OOB) over real loopback: not simulated');

const { EINVAL, EBADF } = net;

test('urgent data: an EV.PRI event fires with which = PRI until readUrgent reads the byte, then no more', async () => {
  const loop = newLoop();
  const { accepted: rx, client: tx } = await tcpPair();
  const seen: number[] = [];
  const ev = loop.event(rx, EV.PRI, (_e, which) => seen.push(which)).add();
  assert.is(await iterate(loop, 0), 0, 'nothing urgent yet');
  assert.is(net.sendUrgent(tx, 0x21), 1);
  await iterateUntil(loop, () => seen.length >= 1);
  assert.equal(seen, [EV.PRI]);
  // Level-triggered: left unread, the condition is reported again.
  await iterateUntil(loop, () => seen.length >= 2);
  assert.equal(seen, [EV.PRI, EV.PRI]);
  assert.is(net.readUrgent(rx), 0x21);
  assert.is(net.readUrgent(rx), EINVAL, 'read once: none pending any more');
  seen.length = 0;
  assert.is(await iterate(loop, 50), 0, 'cleared by the read');
  assert.equal(seen, []);
  assert.ok(ev.pending);
  // A second urgent byte is a new condition.
  assert.is(net.sendUrgent(tx, 0), 1);
  await iterateUntil(loop, () => seen.length >= 1);
  assert.equal(seen, [EV.PRI]);
  assert.is(net.readUrgent(rx), 0, 'the byte 0 is a byte, not an end');
  loop.close();
});

test('urgent data alone wakes only the PRI watchers of the fd; normal data wakes READ, never as PRI', async () => {
  const loop = newLoop();
  const { accepted: rx, client: tx } = await tcpPair();
  const reads: number[] = [];
  const pris: number[] = [];
  loop.event(rx, EV.READ, (_e, which) => reads.push(which)).add();
  loop.event(rx, EV.PRI, (_e, which) => {
    pris.push(which);
    assert.is(net.readUrgent(rx), 0xee);
  }).add();
  assert.is(net.sendUrgent(tx, 0xee), 1);
  await iterateUntil(loop, () => pris.length >= 1);
  assert.equal(reads, [], 'the READ event did not fire: the urgent byte is not in the stream');
  assert.equal(pris, [EV.PRI]);
  assert.is(net.write(tx, new TextEncoder().encode('abc')), 3);
  await iterateUntil(loop, () => reads.length >= 1);
  assert.equal(reads, [EV.READ]);
  assert.equal(pris, [EV.PRI], 'normal data is not PRI');
  const buf = new Uint8Array(8);
  assert.is(net.read(rx, buf), 3, 'the stream holds the normal bytes only');
  assert.equal([...buf.subarray(0, 3)], [0x61, 0x62, 0x63]);
  loop.close();
});

test('READ|PRI on one event: normal and urgent data arriving together give READ|PRI', async () => {
  const loop = newLoop();
  const { accepted: rx, client: tx } = await tcpPair();
  const seen: number[] = [];
  loop.event(rx, EV.READ | EV.PRI, (_e, which) => seen.push(which)).add();
  assert.is(net.write(tx, new TextEncoder().encode('hello')), 5);
  assert.is(net.sendUrgent(tx, 0x7f), 1);
  await iterateUntil(loop, () => seen.includes(EV.READ | EV.PRI));
  for (const which of seen) assert.is(which & ~(EV.READ | EV.PRI), 0, `which ${which} has only the watched bits`);
  const buf = new Uint8Array(16);
  assert.is(net.read(rx, buf), 5, 'the normal bytes, up to the urgent mark');
  assert.is(new TextDecoder().decode(buf.subarray(0, 5)), 'hello');
  assert.is(net.readUrgent(rx), 0x7f);
  seen.length = 0;
  assert.is(await iterate(loop, 50), 0, 'both conditions cleared');
  loop.close();
});

test('EV.PRI is an interest of its own: alone, with EDGE, with PERSIST; not on a timer', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  for (const flags of [EV.PRI, EV.PRI | EV.PERSIST, EV.PRI | EV.EDGE, EV.PRI | EV.READ | EV.WRITE]) {
    const ev = loop.event(r, flags, () => {}).add();
    assert.ok(ev.pending, `flags ${flags}`);
    assert.is(ev.flags, flags);
    ev.del();
  }
  throwsCode(() => loop.timer(EV.PRI, () => {}), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => loop.timer(EV.PRI | EV.PERSIST, () => {}), 'ERR_EVPOLL_INVALID_ARG');
  const err = throwsCode(() => loop.event(r, EV.PERSIST | EV.EDGE, () => {}), 'ERR_EVPOLL_INVALID_ARG');
  assert.match(err.message, 'EV.READ, EV.WRITE or EV.PRI');
  assert.match(throwsCode(() => loop.event(r, EV.PRI | 512, () => {}), 'ERR_EVPOLL_INVALID_ARG').message, 'PRI');
  // A pipe has no urgent data: a PRI watcher of one is never woken by data.
  let n = 0;
  loop.event(r, EV.PRI, () => n++).add();
  net.write(w, new Uint8Array([1]));
  assert.is(await iterate(loop, 50), 0);
  assert.is(n, 0);
  loop.close();
});

test(`PRI with EDGE ${MECHANISM === 'epoll' ? 'fires once per urgent byte' : 'falls back to level-triggered'} on ${MECHANISM}`, async () => {
  const loop = newLoop();
  const { accepted: rx, client: tx } = await tcpPair();
  let n = 0;
  loop.event(rx, EV.PRI | EV.EDGE, () => n++).add();
  net.sendUrgent(tx, 1);
  await iterateUntil(loop, () => n >= 1);
  if (loop.supportEdgeTrigger) {
    assert.is(await iterate(loop, 50), 0, 'left unread, an edge does not fire again');
    net.sendUrgent(tx, 2);
    await iterateUntil(loop, () => n >= 2);
    assert.is(n, 2);
  } else {
    await iterateUntil(loop, () => n >= 2);
  }
  assert.is(net.readUrgent(rx), loop.supportEdgeTrigger ? 2 : 1);
  loop.close();
});

test('EXCLUSIVE with PRI (epoll refuses EPOLLEXCLUSIVE with EPOLLPRI): accepted, and both conditions still fire', async () => {
  const loop = newLoop();
  const { accepted: rx, client: tx } = await tcpPair();
  const seen: string[] = [];
  loop.event(rx, EV.READ | EV.EXCLUSIVE, (_e, which) => { seen.push(`R${which}`); drain(rx); }).add();
  // The union becomes READ|PRI|EXCLUSIVE: a MODIFY, which epoll makes a DEL + ADD.
  const pri = loop.event(rx, EV.PRI | EV.EXCLUSIVE, (_e, which) => { seen.push(`P${which}`); net.readUrgent(rx); }).add();
  assert.ok(pri.pending);
  net.sendUrgent(tx, 9);
  await iterateUntil(loop, () => seen.includes(`P${EV.PRI}`));
  net.write(tx, new Uint8Array([1, 2]));
  await iterateUntil(loop, () => seen.includes(`R${EV.READ}`));
  pri.del(); // back to READ|EXCLUSIVE alone
  net.write(tx, new Uint8Array([3]));
  const reads = seen.filter((s) => s.startsWith('R')).length;
  await iterateUntil(loop, () => seen.filter((s) => s.startsWith('R')).length > reads);
  loop.close();
});

test(`a hang-up: READ and READ|PRI watchers get READ; a watcher of PRI alone ${MECHANISM === 'select' ? 'is not told (select has no hang-up)' : 'gets PRI'}`, async () => {
  const loop = newLoop();
  const [a, b] = socketpair();
  const seen: Record<string, number[]> = { r: [], rp: [], p: [] };
  loop.event(a, EV.READ, (_e, which) => seen.r.push(which)).add();
  loop.event(a, EV.READ | EV.PRI, (_e, which) => seen.rp.push(which)).add();
  const p = loop.event(a, EV.PRI, (_e, which) => seen.p.push(which)).add();
  close(b);
  await iterateUntil(loop, () => seen.r.length > 0 && seen.rp.length > 0 && (MECHANISM === 'select' || seen.p.length > 0));
  assert.is(seen.r[0], EV.READ);
  assert.is(seen.rp[0], EV.READ, 'a hang-up is not urgent data');
  if (MECHANISM === 'select') assert.equal(seen.p, []);
  else assert.is(seen.p[0], EV.PRI);
  assert.ok(p.pending, 'a hang-up does not remove the event');
  loop.close();
});

test('sendUrgent/readUrgent: bad arguments throw ERR_EVPOLL_INVALID_ARG; OS refusals are negative errnos', async () => {
  const { accepted: rx, client: tx } = await tcpPair();
  const bad: [string, () => unknown][] = [
    ['sendUrgent fd -1', () => net.sendUrgent(-1, 1)],
    ['sendUrgent fd 1.5', () => net.sendUrgent(1.5, 1)],
    ["sendUrgent fd '3'", () => net.sendUrgent('3' as unknown as number, 1)],
    ['sendUrgent byte 256', () => net.sendUrgent(tx, 256)],
    ['sendUrgent byte -1', () => net.sendUrgent(tx, -1)],
    ['sendUrgent byte 1.5', () => net.sendUrgent(tx, 1.5)],
    ["sendUrgent byte 'a'", () => net.sendUrgent(tx, 'a' as unknown as number)],
    ['sendUrgent byte missing', () => (net.sendUrgent as (fd: number) => number)(tx)],
    ['readUrgent fd -1', () => net.readUrgent(-1)],
    ['readUrgent fd NaN', () => net.readUrgent(NaN)],
    ['readUrgent fd undefined', () => (net.readUrgent as () => number)()],
  ];
  for (const [what, call] of bad) assert.match(throwsCode(call, 'ERR_EVPOLL_INVALID_ARG').message, /fd|byte/, what);
  assert.is(net.readUrgent(rx), EINVAL, 'nothing was sent (the refusals above sent nothing)');
  const [r, w] = pipe();
  assert.is(net.sendUrgent(w, 1), -constants.errno.ENOTSOCK);
  assert.is(net.readUrgent(r), -constants.errno.ENOTSOCK);
  const [s] = socketpair();
  assert.ok(net.readUrgent(s) < 0, 'AF_UNIX: no urgent byte to read');
  close(s);
  assert.is(net.readUrgent(s), EBADF);
  assert.is(net.sendUrgent(s, 1), EBADF);
});

test.run();
