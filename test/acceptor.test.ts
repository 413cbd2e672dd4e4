// The Acceptor: batched accepts, pause/resume, nginx's back-off when out of fds (EMFILE,
// checked in a child process whose RLIMIT_NOFILE is lowered with prlimit), the cap on open
// connections and nginx's accept_disabled, the refusal of fds the loop cannot watch, and
// EV.EXCLUSIVE's one wake-up per connection among processes sharing a listener.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { closeSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { Acceptor } from '../src/acceptor.js';
import { EV, mechanisms, type EventLoop } from '../src/index.js';
import * as net from '../src/net.js';
import { newLoop, iterate, iterateUntil, drive, sleep, fillFdTable, runUnderFdLimit, MODE, MECHANISM, SIMULATION, openFds, until, eventually, killOnCleanup, report, CHILD_PRELUDE } from './helpers.js';
import { onCleanup } from './harness.js';

const CHILD_FLAG = 'EVPOLL_ACCEPTOR_EMFILE_CHILD';

/** What the tests do with a client connection: a node:net socket, or on 'sim' a VirtualClient. */
interface Client {
  write(data: string): unknown;
  destroy(): unknown;
}

/** On 'sim', the client end of a connection is a virtual fd (node:net's sockets are real ones). */
class VirtualClient implements Client {
  #open = true;
  constructor(readonly fd: number) {}
  write(data: string): void {
    const bytes = new TextEncoder().encode(data);
    const n = net.write(this.fd, bytes);
    if (n !== bytes.length) throw new Error(`write(${this.fd}) returned ${n}`);
  }
  destroy(): void {
    if (this.#open) net.close(this.fd);
    this.#open = false;
  }
}

const clients: Client[] = [];
const accepted: number[] = [];

test.after.each(() => {
  for (const s of clients.splice(0)) s.destroy();
  for (const fd of accepted.splice(0)) net.close(fd);
});

/** `n` client connections to `port`, resolved once all are established. */
async function connectClients(port: number, n: number): Promise<Client[]> {
  if (SIMULATION) {
    const made = Array.from({ length: n }, () => new VirtualClient(net.connect('127.0.0.1', port)));
    clients.push(...made);
    // No latency in the tests' simulation: the handshakes are done, and the connections queued, as
    // soon as virtual time moves on (by nothing).
    SIMULATION.advance(0);
    for (const c of made) assert.is(net.connectResult(c.fd), 0, `virtual client ${c.fd} connected`);
    return made;
  }
  const made = await Promise.all(
    Array.from({ length: n }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s)).on('error', reject);
    })),
  );
  clients.push(...made);
  return made;
}

/** The first bytes `client` receives, as a string. */
function received(client: Client): Promise<string> {
  if (client instanceof VirtualClient) {
    // After the caller's write: what is on its way arrives once virtual time moves on.
    return Promise.resolve().then(() => {
      SIMULATION!.advance(0);
      const buffer = new Uint8Array(64);
      const n = net.read(client.fd, buffer);
      return n > 0 ? new TextDecoder().decode(buffer.subarray(0, n)) : `read() returned ${n}`;
    });
  }
  return new Promise<string>((resolve) => (client as Socket).once('data', (d) => resolve(String(d))));
}

test('takes at most one batch per readiness', async () => {
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  const batches: number[] = [];
  let inBatch = 0;
  const acceptor = new Acceptor(loop, listener, (fd) => { accepted.push(fd); inBatch++; }, { batch: 10 });
  await connectClients(net.localPort(listener), 25);
  while (accepted.length < 25) {
    inBatch = 0;
    await iterate(loop, 200);
    if (inBatch) batches.push(inBatch);
  }
  assert.equal(batches, [10, 10, 5]);
  acceptor.close();
  loop.close();
  net.close(listener);
});

test('accepted fds are nonblocking sockets connected to the clients', async () => {
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd));
  const [client] = await connectClients(net.localPort(listener), 1);
  await iterateUntil(loop, () => accepted.length === 1);
  assert.is(net.read(accepted[0], new Uint8Array(16)), net.EAGAIN, 'EAGAIN, not a blocking read');
  const got = received(client);
  assert.is(net.write(accepted[0], new TextEncoder().encode('hi')), 2);
  assert.is(await got, 'hi');
  acceptor.close();
  loop.close();
  net.close(listener);
});

test('priority: the listener below a connection in one batch runs after it (a worker serves what it has read first); default 0, 2 with a mutex; a bad one throws', async () => {
  for (const [priority, expected] of [[-1, ['read', 'accept']], [1, ['accept', 'read']]] as const) {
    const loop = newLoop();
    const listener = net.listen('127.0.0.1', 0);
    const order: string[] = [];
    const mine: number[] = [];
    const acceptor = new Acceptor(loop, listener, (fd) => { accepted.push(fd); mine.push(fd); order.push('accept'); }, { priority, batch: 1 });
    try {
      const [first] = await connectClients(net.localPort(listener), 1);
      await iterateUntil(loop, () => mine.length === 1);
      const readable = loop.event(mine[0], EV.READ, (ev) => { order.push('read'); ev.del(); }).add();
      order.length = 0;
      // Both ready before the next wait: a second connection waits and the first has sent a byte.
      first.write('x');
      await connectClients(net.localPort(listener), 1);
      await until('both ready', () => net.listenQueue(listener).length === 1);
      await sleep(20); // the byte is on loopback at once; a moment for the kernel, not a deadline
      await iterateUntil(loop, () => order.length === 2);
      assert.equal(order, expected, `priority ${priority}`);
      readable.del();
    } finally {
      acceptor.close();
      loop.close();
      net.close(listener);
    }
  }
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  try {
    const err = (() => { try { new Acceptor(loop, listener, () => {}, { priority: 3 }); } catch (e) { return e as Error & { code: string }; } })();
    assert.is(err?.code, 'ERR_EVPOLL_INVALID_ARG');
  } finally {
    loop.close();
    net.close(listener);
  }
});

test('pause() leaves connections in the backlog; resume() takes them; close() stops for good', async () => {
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd));
  acceptor.pause();
  assert.is(acceptor.state, 'paused');
  await connectClients(net.localPort(listener), 2);
  await iterate(loop, 30);
  assert.is(accepted.length, 0);
  acceptor.resume();
  await iterateUntil(loop, () => accepted.length === 2);
  acceptor.close();
  assert.is(acceptor.state, 'closed');
  acceptor.resume(); // no effect once closed
  await connectClients(net.localPort(listener), 1);
  await iterate(loop, 30);
  assert.is(accepted.length, 2);
  assert.is(acceptor.acceptPending(), 0, 'closed: hands nothing over');
  loop.close();
  net.close(listener);
});

test('acceptPending() takes queued connections while paused (a process leaving a shared listener)', async () => {
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { exclusive: true });
  acceptor.pause();
  await connectClients(net.localPort(listener), 3);
  assert.is(acceptor.acceptPending(), 3);
  assert.is(acceptor.acceptPending(), 0, 'EAGAIN: nothing left');
  assert.is(accepted.length, 3);
  acceptor.close();
  loop.close();
  net.close(listener);
});

test('an accept failure other than EAGAIN/EMFILE goes to onError', async () => {
  const loop = newLoop();
  const [r, w] = net.pipe(); // readable, but not a socket: accept4 says ENOTSOCK
  net.write(w, new Uint8Array([1]));
  const errors: string[] = [];
  const acceptor = new Acceptor(loop, r, () => assert.unreachable('no connection'), { onError: (e) => errors.push(e.code) });
  await iterate(loop, 100);
  assert.equal(errors, ['ENOTSOCK']);
  acceptor.close();
  loop.close();
  net.close(r);
  net.close(w);
});

kernelOnly("the process's own fd limit (prlimit RLIMIT_NOFILE in a child process)", () => {
  test('out of fds: the listener is switched off for the back-off, the CPU stays idle, and the queue is served once fds are freed', async () => {
    const report = await runUnderFdLimit<EmfileReport>(import.meta.url, CHILD_FLAG, 15_000);
    assert.ok(report.backoffs >= 1, `backed off at least once (${report.backoffs})`);
    assert.is(report.acceptedWhileOut, 0);
    assert.is(report.stateWhileOut, 'backing-off');
    assert.ok(report.cpuMs < 100, `CPU time over ${report.spanMs} ms out of fds: ${report.cpuMs} ms (a spinning loop uses it all)`);
    assert.is(report.acceptedAfter, report.clients, 'every queued connection accepted once fds were freed');
  });
});

/** A listening socket on 127.0.0.1, closed after the test. */
function listen(): number {
  const fd = net.listen('127.0.0.1', 0);
  onCleanup(() => net.close(fd));
  return fd;
}

test('without maxConnections: connections are counted, acceptDisabled stays 0', async () => {
  const loop = newLoop();
  const listener = listen();
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd));
  assert.is(acceptor.maxConnections, Infinity);
  await connectClients(net.localPort(listener), 5);
  await iterateUntil(loop, () => accepted.length === 5);
  assert.equal([acceptor.connections, acceptor.acceptDisabled, acceptor.state], [5, 0, 'watching']);
  acceptor.release(5);
  assert.is(acceptor.connections, 0);
});

test('maxConnections: at the cap the listener is not watched (no wake-up while connections wait), and each release() makes room for one more', async () => {
  const loop = newLoop();
  const listener = listen();
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { maxConnections: 3 });
  await connectClients(net.localPort(listener), 5);
  await iterateUntil(loop, () => accepted.length === 3);
  assert.equal([acceptor.connections, acceptor.state], [3, 'full']);
  const before = loop.stats();
  await drive(loop, 200);
  const waits = loop.stats().waits - before.waits;
  const callbacks = loop.stats().callbacks - before.callbacks;
  assert.is(accepted.length, 3, 'nothing taken past the cap');
  // A listener still watched while full is readable all along (two connections queued): a
  // level-triggered loop would wake for it at once, over and over.
  assert.ok(waits <= 3 && callbacks <= 1, `${waits} waits and ${callbacks} callbacks in 200 ms while full (only the limit timer's expected)`);
  net.close(accepted.shift()!);
  acceptor.release();
  assert.equal([acceptor.connections, acceptor.state], [2, 'watching']);
  await iterateUntil(loop, () => accepted.length === 3);
  assert.equal([acceptor.connections, acceptor.state], [3, 'full'], 'the 4th taken: full again');
  for (const fd of accepted.splice(0, 2)) net.close(fd);
  acceptor.release(2);
  await iterateUntil(loop, () => accepted.length === 2);
  assert.equal([acceptor.connections, acceptor.state], [2, 'watching'], 'the 5th taken, and room for more');
});

test('a batch takes no more than the room under maxConnections; so does acceptPending()', async () => {
  const loop = newLoop();
  const listener = listen();
  let inBatch = 0;
  const acceptor = new Acceptor(loop, listener, (fd) => { accepted.push(fd); inBatch++; }, { batch: 10, maxConnections: 7 });
  await connectClients(net.localPort(listener), 10);
  const batches: number[] = [];
  while (accepted.length < 7) {
    inBatch = 0;
    await iterate(loop, 200);
    if (inBatch) batches.push(inBatch);
  }
  assert.equal(batches, [7]);
  assert.is(acceptor.state, 'full');
  acceptor.pause();
  assert.is(acceptor.acceptPending(), 0, 'full: none taken');
  for (const fd of accepted.splice(0, 2)) net.close(fd);
  acceptor.release(2);
  assert.is(acceptor.state, 'paused', 'a release does not undo pause()');
  assert.is(acceptor.acceptPending(), 2, 'room for 2 of the 3 queued');
  assert.is(acceptor.connections, 7);
});

test("acceptDisabled is nginx's maxConnections/8 − free, set as each connection is taken: 0 at 7/8, then the Acceptor yields turns with the listener off, and takes the next connection after them", async () => {
  const loop = newLoop();
  const listener = listen();
  const MAX = 64, TURN_MS = 30;
  const seen: [number, number][] = [];
  let turns = 0;
  let turnsAtAccept = -1;
  const acceptor: Acceptor = new Acceptor(loop, listener, (fd) => {
    accepted.push(fd);
    seen.push([acceptor.connections, acceptor.acceptDisabled]);
    turnsAtAccept = turns;
  }, { maxConnections: MAX, turnMs: TURN_MS });
  await connectClients(net.localPort(listener), 60);
  await iterateUntil(loop, () => accepted.length === 60);
  assert.equal(seen, Array.from({ length: 60 }, (_, i) => [i + 1, MAX / 8 - (MAX - (i + 1))]));
  assert.equal(seen[55], [56, 0], 'at 7/8 of the cap: not yet');
  assert.is(acceptor.state, 'yielding');
  // 4, less the turn that start mode's stop() after the batch may already have taken.
  const k = acceptor.acceptDisabled;
  assert.ok(k === 4 || (MODE === 'start' && k === 3), `acceptDisabled ${k}`);

  const hook = loop.prepare(() => turns++); // after the Acceptor's own: counts the same turns
  turns = 0;
  await connectClients(net.localPort(listener), 1);
  const before = loop.stats();
  assert.ok(await drive(loop, 5000, () => accepted.length === 61), 'the next connection taken after the turns');
  const waits = loop.stats().waits - before.waits;
  const timersFired = loop.stats().timersFired - before.timersFired;
  hook.del();
  assert.ok(turnsAtAccept >= k + 1, `taken in turn ${turnsAtAccept}: after the ${k} yielded`);
  // Each yielded turn is a wait the turn timer ends: the listener, readable all along, was not
  // watched (a loop that only skipped its readiness would go through the k turns at once).
  assert.ok(waits <= k + 3, `${waits} waits for ${k} yielded turns`);
  // ...and the turn timer ended them: a loop that only skipped the listener's readiness would have
  // its turns ended by that readiness instead. Not in start() mode, where a turn is also each
  // hand-back to Node's loop, and poll's and select's helper thread hands back batches with
  // nothing for this loop (seen: 3 turns in 32 ms).
  if (MODE === 'run') assert.ok(timersFired >= k - 1, `${timersFired} turn timers fired for ${k} yielded turns`);
  assert.equal(seen[60], [61, 5]);
});

test('a yielding Acceptor leaves new connections to another one sharing its listener', async () => {
  const near = newLoop();
  const other = newLoop();
  const listener = listen();
  const mine: number[] = [];
  const theirs: number[] = [];
  // No turn ends by the clock: only the one iteration below could take one.
  const yielding = new Acceptor(near, listener, (fd) => { accepted.push(fd); mine.push(fd); }, { maxConnections: 64, turnMs: 60_000 });
  await connectClients(net.localPort(listener), 62);
  await iterateUntil(near, () => mine.length === 62);
  assert.equal([yielding.state, yielding.acceptDisabled >= 5], ['yielding', true]);
  new Acceptor(other, listener, (fd) => { accepted.push(fd); theirs.push(fd); });
  await connectClients(net.localPort(listener), 5);
  await iterate(near, 50); // with the listener watched, this would take all 5 (a batch is 100)
  await iterateUntil(other, () => theirs.length === 5);
  assert.is(mine.length, 62, 'the yielding one took none');
});

test('yieldNearCap: false (no other process on the listener): acceptDisabled stays 0 and the Acceptor takes what its cap has room for', async () => {
  const loop = newLoop();
  const listener = listen();
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { maxConnections: 16, yieldNearCap: false });
  await connectClients(net.localPort(listener), 20);
  await iterateUntil(loop, () => accepted.length === 16);
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['full', 0]);
  net.close(accepted.shift()!);
  acceptor.release();
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['watching', 0]);
  await iterateUntil(loop, () => accepted.length === 16);
});

test('release() lowers acceptDisabled: back under 7/8 the listener is watched at once; still near the cap, the turns left are yielded', async () => {
  const loop = newLoop();
  const listener = listen();
  // Turns that never end by the clock: only iterations could count them, and none runs here.
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { maxConnections: 16, turnMs: 60_000 });
  await connectClients(net.localPort(listener), 16);
  await iterateUntil(loop, () => accepted.length === 16);
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['full', 2]);
  net.close(accepted.shift()!);
  acceptor.release();
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['yielding', 1]);
  for (const fd of accepted.splice(0, 4)) net.close(fd);
  acceptor.release(4);
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['watching', -3]);
  await connectClients(net.localPort(listener), 1);
  await iterateUntil(loop, () => accepted.length === 12);
});

test('release() of more connections than are open throws, and changes nothing', () => {
  const loop = newLoop();
  const acceptor = new Acceptor(loop, listen(), () => {}, { maxConnections: 4 });
  for (const n of [1, -1, 0.5, NaN]) {
    try {
      acceptor.release(n);
      assert.unreachable(`release(${n})`);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_EVPOLL_INVALID_ARG', String(e));
    }
  }
  assert.equal([acceptor.connections, acceptor.state], [0, 'watching']);
});

kernelOnly("the numbers the kernel gives real fds (the process's table filled with /dev/null up to a maxFd), and real TCP clients that see the refusal", () => {
  test("an accepted fd the loop cannot watch (beyond its maxFd; select's FD_SETSIZE alike) is closed, counted and told to onRefused, and accepting goes on", async () => {
    const listener = listen();
    const CLIENTS = 6;
    const clients = await connectClients(net.localPort(listener), CLIENTS);
    const closed = new Set<Client>();
    for (const c of clients as Socket[]) c.on('end', () => closed.add(c)).on('close', () => closed.add(c)).on('error', () => closed.add(c));
    const high = Math.max(...openFds());
    const maxFd = high + 4;
    const loop = newLoop({ maxFd });
    // Every fd number up to `high` taken, so that the next ones are high + 1, high + 2, ...: the
    // first accepted fds are below maxFd (start mode's helper thread may take one for its wake
    // fd), the others at or beyond it.
    const fillers: number[] = [];
    onCleanup(() => fillers.forEach((fd) => closeSync(fd)));
    for (;;) {
      const fd = openSync('/dev/null', 'r');
      if (fd > high) {
        closeSync(fd);
        break;
      }
      fillers.push(fd);
    }
    const errors: string[] = [];
    const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { onRefused: (e) => errors.push(`${e.code}: ${e.message}`) });
    await iterateUntil(loop, () => accepted.length + acceptor.refused === CLIENTS);
    assert.ok(accepted.length >= 1 && acceptor.refused >= 1, `${accepted.length} handed over, ${acceptor.refused} refused`);
    assert.ok(accepted.every((fd) => fd < maxFd), `handed over: ${accepted.join(', ')} (maxFd ${maxFd})`);
    assert.is(errors.length, acceptor.refused);
    for (const e of errors) assert.match(e, new RegExp(`^ERR_EVPOLL_FD_LIMIT: accepted fd \\d+ is beyond the loop's maxFd \\(${maxFd}\\)$`));
    assert.equal([acceptor.connections, acceptor.state], [accepted.length, 'watching'], 'a refused connection is not counted as open');
    await until('the refused clients see their connection closed', () => closed.size === acceptor.refused);
    // What was handed over is a live connection, and the loop watches it.
    const got = new Set<number>();
    for (const fd of accepted) loop.event(fd, EV.READ, (ev) => { if (net.read(ev.fd, new Uint8Array(8)) === 1) got.add(ev.fd); ev.del(); }).add();
    for (const c of clients) if (!closed.has(c)) c.write('x');
    await iterateUntil(loop, () => got.size === accepted.length);
  });
});

const EXCLUSIVE = mechanisms().find((m) => m.name === MECHANISM)?.supportExclusive === true;
const HERD = 4; // loops sharing the listener
const ONE_BY_ONE = 12; // connections, each made once the previous one has woken its loops

/**
 * Wake-ups of HERD loops, each in a child process (driven as the mode under test drives loops)
 * and watching one shared listener with EV.READ | EV.EDGE, and EV.EXCLUSIVE if `exclusive`,
 * over ONE_BY_ONE connections. No loop accepts: with EDGE each connection is then one event per
 * loop it wakes, and no loop can take a connection before another one looks.
 */
async function wakeUps(exclusive: boolean): Promise<number> {
  const listener = listen();
  const code = `
    const loop = new EventLoop({ mechanism: MECHANISM });
    loop.event(3, EV.READ | EV.EDGE${exclusive ? ' | EV.EXCLUSIVE' : ''}, () => process.stdout.write('woken\\n')).add();
    loop.event(0, EV.READ, () => { loop.close(); process.exit(0); }).add(); // stdin closed: done
    process.stdout.write('watching\\n');
    ${MODE === 'start' ? 'loop.start();' : 'loop.run();'}
  `;
  let woken = 0;
  let watching = 0;
  const children = Array.from({ length: HERD }, () => {
    const child = killOnCleanup(spawn(process.execPath, ['--input-type=module', '-e', CHILD_PRELUDE + code], { stdio: ['pipe', 'pipe', 'inherit', listener] }));
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === 'woken') woken++;
        else if (line === 'watching') watching++;
      }
    });
    return child;
  });
  await until(`${HERD} loops watching the listener`, () => watching === HERD, 20_000);
  const port = net.localPort(listener);
  for (let i = 0; i < ONE_BY_ONE; i++) {
    const before = woken;
    await connectClients(port, 1);
    await until(`connection ${i + 1} woke a loop`, () => woken > before);
    // Without EXCLUSIVE the other loops wake within microseconds: let them (briefly), so that
    // none of them sees two connections in one wake-up.
    await eventually(() => woken - before >= HERD, 50);
  }
  const exited = children.map((c) => new Promise((resolve) => c.once('exit', resolve)));
  for (const c of children) c.stdin!.end();
  await Promise.all(exited);
  return woken;
}

// EPOLLEXCLUSIVE is a flag the kernel takes or ignores, and nothing else in the suite would
// notice it gone from native/epoll.c: count the wake-ups. Only epoll has it (elsewhere
// EV.EXCLUSIVE is ignored, and level-triggered loops that do not accept would spin).
if (EXCLUSIVE && MODE === 'run') {
  test(`EV.EXCLUSIVE reaches the kernel: of ${HERD} loops blocked on one listener, one wakes per connection instead of all (${MECHANISM} only: loop.supportExclusive)`, async () => {
    const herd = await wakeUps(false);
    const exclusive = await wakeUps(true);
    const counts = `${exclusive} wake-ups with EV.EXCLUSIVE, ${herd} without, for ${ONE_BY_ONE} connections and ${HERD} loops`;
    report(counts);
    assert.ok(exclusive <= 1.5 * ONE_BY_ONE, counts);
    assert.ok(herd >= 2 * ONE_BY_ONE && herd >= 2 * exclusive, counts);
  });
}

// In start() mode Node's own epoll watches the loop's epoll fd: nobody blocks in epoll_wait on
// the loop's fd, so the kernel's exclusive wake-up finds no waiter there and goes on to the
// next loop, and every loop is woken through Node's epoll. The README says so; this tells if
// it ever changes.
if (EXCLUSIVE && MODE === 'start') {
  test(`EV.EXCLUSIVE in start() mode: Node's epoll watches the loop's epoll fd, so all ${HERD} loops wake per connection, as without it (${MECHANISM} only)`, async () => {
    const exclusive = await wakeUps(true);
    report(`${exclusive} wake-ups with EV.EXCLUSIVE for ${ONE_BY_ONE} connections and ${HERD} loops`);
    assert.ok(exclusive >= 2 * ONE_BY_ONE, `${exclusive} wake-ups with EV.EXCLUSIVE for ${ONE_BY_ONE} connections and ${HERD} loops`);
  });
}

/** What emfileChild prints. */
interface EmfileReport {
  clients: number;
  errno: number;
  backoffs: number;
  stateWhileOut: string;
  acceptedWhileOut: number;
  acceptedAfter: number;
  spanMs: number;
  cpuMs: number;
}

/**
 * Runs in the child under RLIMIT_NOFILE 64 (this same file, run by node with CHILD_FLAG set):
 * queues connections, uses up every fd, drives the loop for ~500 ms in the mode under test,
 * frees some fds, and prints what happened as one JSON line.
 */
async function emfileChild(): Promise<void> {
  const CLIENTS = 5;
  const loop = newLoop();
  const listener = net.listen('127.0.0.1', 0);
  const accepted: number[] = [];
  let errno = 0;
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { backoffMs: 100, onBackoff: (e) => { errno = e; } });
  const sockets = await connectClients(net.localPort(listener), CLIENTS);
  const fillers = fillFdTable();
  const spanMs = 500;
  const cpu = process.cpuUsage();
  if (MODE === 'start') {
    loop.start(); // the process's CPU time covers poll/select's helper thread too
    await sleep(spanMs);
    loop.stop();
  } else {
    const end = performance.now() + spanMs;
    while (performance.now() < end) loop.runOnce(end - performance.now());
  }
  const used = process.cpuUsage(cpu);
  // Still out of fds, it alternates: the back-off timer switches the listener on, the next
  // accept meets EMFILE and switches it off. The span may end between those two, so look
  // at the state once the next iteration has had its accept (an acceptor that never backs
  // off never gets there).
  await iterateUntil(loop, () => acceptor.state === 'backing-off', 2000).catch(() => {}); // asserted by the parent
  const stateWhileOut = acceptor.state;
  const acceptedWhileOut = accepted.length;
  for (const fd of fillers.splice(0, 2 * CLIENTS)) net.close(fd);
  await iterateUntil(loop, () => accepted.length === CLIENTS).catch(() => {}); // the report says how far it got
  const report: EmfileReport = {
    clients: CLIENTS,
    errno,
    backoffs: acceptor.backoffs,
    stateWhileOut,
    acceptedWhileOut,
    acceptedAfter: accepted.length,
    spanMs,
    cpuMs: Math.round((used.user + used.system) / 1000),
  };
  console.log(JSON.stringify(report));
  for (const s of sockets) s.destroy();
  process.exit(0);
}

if (process.env[CHILD_FLAG]) await emfileChild();
else test.run();
