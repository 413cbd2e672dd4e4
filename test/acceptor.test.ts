// The Acceptor: batched accepts, pause/resume, and nginx's back-off when out of fds (EMFILE,
// checked in a child process whose RLIMIT_NOFILE is lowered with prlimit).
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { Acceptor } from '../src/acceptor.js';
import * as net from '../src/net.js';
import { newLoop, iterate, iterateUntil, sleep, fillFdTable, runUnderFdLimit, MODE } from './helpers.js';

const CHILD_FLAG = 'EVPOLL_ACCEPTOR_EMFILE_CHILD';
const clients: Socket[] = [];
const accepted: number[] = [];

test.after.each(() => {
  for (const s of clients.splice(0)) s.destroy();
  for (const fd of accepted.splice(0)) net.close(fd);
});

/** `n` client connections to `port`, resolved once all are established. */
async function connectClients(port: number, n: number): Promise<Socket[]> {
  const made = await Promise.all(
    Array.from({ length: n }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s)).on('error', reject);
    })),
  );
  clients.push(...made);
  return made;
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
  const got = new Promise<string>((resolve) => client.once('data', (d) => resolve(String(d))));
  assert.is(net.write(accepted[0], new TextEncoder().encode('hi')), 2);
  assert.is(await got, 'hi');
  acceptor.close();
  loop.close();
  net.close(listener);
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

test('out of fds: the listener is switched off for the back-off, the CPU stays idle, and the queue is served once fds are freed', async () => {
  const report = await runUnderFdLimit<EmfileReport>(import.meta.url, CHILD_FLAG, 15_000);
  assert.ok(report.backoffs >= 1, `backed off at least once (${report.backoffs})`);
  assert.is(report.acceptedWhileOut, 0);
  assert.is(report.stateWhileOut, 'backing-off');
  assert.ok(report.cpuMs < 100, `CPU time over ${report.spanMs} ms out of fds: ${report.cpuMs} ms (a spinning loop uses it all)`);
  assert.is(report.acceptedAfter, report.clients, 'every queued connection accepted once fds were freed');
});

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
