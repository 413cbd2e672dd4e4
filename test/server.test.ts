// The main job end to end: `node scripts/start.mjs` (what `npm start` runs) on a free port,
// real HTTP clients, worker deaths, reload and stops, and no process left behind.
import { kernelOnly, suite } from './harness.js';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { onCleanup } from './harness.js';
import { MECHANISM, MODE, sleep, until, eventually } from './helpers.js';
import { Server, running, allGone, get, steadyClient as steadyClientEvery, stopLoads } from './server-helpers.js';

kernelOnly('a real server: child processes, real TCP and HTTP clients, signals');

const test = suite('server');

const IDLE_TIMEOUT_MS = 1000; // the server's sweep then ticks every 250 ms

const TICK_MS = IDLE_TIMEOUT_MS / 4; // the server's sweep period

const steadyClient = (port: number) => steadyClientEvery(port, TICK_MS);

/** Sends `payload` on a fresh connection; resolves to everything received until the server closes (or `limitMs`). */
function raw(port: number, payload: string | Buffer, limitMs = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(port, '127.0.0.1', () => s.write(payload));
    const timer = setTimeout(() => { s.destroy(); resolve({ text, closed: false }); }, limitMs);
    s.setEncoding('latin1').on('data', (d) => { text += d; });
    s.on('end', () => { clearTimeout(timer); s.destroy(); resolve({ text, closed: true }); });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

const statuses = (text: string) => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

let server: Server;

test.before(async () => {
  server = await Server.start('--workers', '2', '--idle-timeout', String(IDLE_TIMEOUT_MS), '--status-interval', '200');
  await until('2 workers ready', () => server.workers().length === 2);
});

test.after(async () => {
  await stopLoads();
  for (const s of running) if (s.child.exitCode === null && s.child.signalCode === null) s.kill('SIGKILL');
  await allGone([...running].flatMap((s) => [...s.pids]));
});

test('prints where it listens, then its master and workers', () => {
  assert.ok(server.port > 0);
  assert.match(server.lines[1], new RegExp(`^master ${server.child.pid}: 2 workers, mechanism ${MECHANISM}$`));
  assert.is(server.workers().length, 2);
});

test("answers Node's http client, keeping the connection alive", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  agent.on('free', (socket) => sockets.add(socket));
  for (let i = 0; i < 20; i++) {
    const r = await get(server.port, agent, `/${i}`);
    assert.is(r.status, 200);
    assert.is(r.body, 'hello\n');
    assert.is(r.headers['content-length'], '6');
    assert.ok(r.headers.date, 'a Date header');
  }
  assert.is(sockets.size, 1, 'one connection for all 20 requests');
  agent.destroy();
});

test('answers pipelined requests in order, each once, and honours Connection: close', async () => {
  const heads = ['GET /a HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde', 'GET /c HTTP/1.1\r\nConnection: close\r\n\r\n'];
  const { text, closed } = await raw(server.port, heads.join(''));
  assert.equal(statuses(text), [200, 200, 200]);
  assert.is(text.match(/hello\n/g)?.length, 3);
  assert.match(text, /Connection: close\r\n\r\nhello\n$/, 'the last answer says close');
  assert.ok(closed, 'then the server closes');
});

test('a head split across writes is answered once complete', async () => {
  const s = connect(server.port, '127.0.0.1');
  let text = '';
  s.setEncoding('latin1').on('data', (d) => { text += d; });
  await new Promise((r) => s.once('connect', r));
  for (const part of ['GE', 'T / HTTP/1.1\r\nHo', 'st: x\r\n\r', '\n']) {
    s.write(part);
    await sleep(20);
  }
  await eventually(() => statuses(text).length > 0); // asserted below
  await sleep(50); // room for a second answer, which would be wrong
  s.destroy();
  assert.equal(statuses(text), [200]);
});

test('HTTP/1.0 closes unless it asks for keep-alive', async () => {
  const plain = await raw(server.port, 'GET / HTTP/1.0\r\n\r\n');
  assert.equal(statuses(plain.text), [200]);
  assert.ok(plain.closed);
  const kept = await raw(server.port, 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 1000);
  assert.equal(statuses(kept.text), [200]);
  assert.match(kept.text, /Connection: keep-alive\r\n/);
  assert.not.ok(kept.closed, 'kept open');
});

test('400 for a malformed request line, 431 for a head over 8 KiB; then closed', async () => {
  for (const bad of ['NONSENSE\r\n\r\n', 'GET /\r\n\r\n', 'GET  / HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nno colon\r\n\r\n']) {
    const r = await raw(server.port, bad);
    assert.equal(statuses(r.text), [400], JSON.stringify(bad));
    assert.ok(r.closed);
  }
  const big = await raw(server.port, `GET / HTTP/1.1\r\nX-Big: ${'x'.repeat(9000)}\r\n\r\n`);
  assert.equal(statuses(big.text), [431]);
  assert.ok(big.closed);
  const fits = await raw(server.port, `GET / HTTP/1.1\r\nX-Big: ${'x'.repeat(8000)}\r\nConnection: close\r\n\r\n`);
  assert.equal(statuses(fits.text), [200], 'a head under 8 KiB is fine');
});

test('a client that does not read gets everything once it does (back-pressure)', async () => {
  const n = 20_000; // ~3 MB of answers: far more than the socket buffers hold
  const s = connect(server.port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.pause();
  s.write('GET / HTTP/1.1\r\n\r\n'.repeat(n));
  await sleep(200);
  let count = 0;
  let tail = '';
  s.setEncoding('latin1').on('data', (d: string) => {
    const text = tail + d;
    count += text.split('hello\n').length - 1;
    tail = text.slice(text.lastIndexOf('hello\n') + 6);
  });
  s.resume();
  const end = Date.now() + 5000;
  while (count < n && Date.now() < end) await sleep(20);
  s.destroy();
  assert.is(count, n);
});

test('idle connections are closed after the idle timeout', async () => {
  const start = Date.now();
  const r = await raw(server.port, 'GET / HTTP/1.1\r\n\r\n', 4 * IDLE_TIMEOUT_MS);
  const after = Date.now() - start;
  assert.equal(statuses(r.text), [200]);
  assert.ok(r.closed, 'closed by the server');
  assert.ok(after >= IDLE_TIMEOUT_MS - 50 && after < 2 * IDLE_TIMEOUT_MS, `closed after ${after} ms`);
});

test('a killed worker is respawned; one that keeps dying is respawned later and later', async () => {
  const from = server.lines.length;
  const [victim] = server.workers();
  process.kill(victim, 'SIGKILL');
  const first = await server.waitFor(new RegExp(`^worker ${victim} died \\(signal SIGKILL\\); respawning in (\\d+) ms$`), 5000, from);
  const ready = await server.waitFor(/^worker (\d+) ready$/, 5000, from);
  const successor = Number(ready[1]);
  assert.is.not(successor, victim);
  // It died young: the next death of the same slot waits twice as long.
  process.kill(successor, 'SIGKILL');
  const second = await server.waitFor(new RegExp(`^worker ${successor} died \\(signal SIGKILL\\); respawning in (\\d+) ms$`), 5000, from);
  assert.ok(Number(second[1]) > Number(first[1]) && Number(second[1]) > 0, `${first[1]} ms, then ${second[1]} ms`);
  await server.waitFor(/^worker (\d+) ready$/, 5000, server.lines.indexOf(second[0]));
  const status = server.lines.length;
  await server.waitFor(/^status: 2 workers alive/, 2000, status);
  assert.is(server.workers().length, 2);
});

test('SIGUSR2 replaces every worker while a steady client sees no failure', async () => {
  const client = steadyClient(server.port);
  await sleep(100);
  const before = server.workers();
  const from = server.lines.length;
  server.kill('SIGUSR2');
  await server.waitFor(/^reload done$/, 8000, from);
  let closedIdle = 0;
  for (const old of before) {
    await server.waitFor(new RegExp(`^worker ${old} retired \\(code 0\\)$`), 5000, from);
    // Reported before it exits: nothing was cut off at the deadline, and how many connections it closed idle.
    const drained = await server.waitFor(new RegExp(`^worker ${old} drained: (\\d+) closed idle, (\\d+) cut off$`), 0, from);
    assert.is(drained[2], '0', drained[0]);
    closedIdle += Number(drained[1]);
  }
  await sleep(100);
  const { ok, resent, failures } = await client.stop();
  assert.equal(failures, []);
  assert.ok(ok > 50, `${ok} requests answered during the reload`);
  // Only a connection the old workers closed as idle may have met a request on the wire.
  assert.ok(resent <= closedIdle, `${resent} requests sent again, ${closedIdle} connections closed idle`);
  const after = server.workers();
  assert.is(after.length, 2);
  assert.ok(after.every((p) => !before.includes(p)), 'all new workers');
});

test('SIGTERM: workers finish the requests in flight, then everything exits; nothing is left behind', async () => {
  // A request half sent when the signal lands...
  const s = connect(server.port, '127.0.0.1');
  let text = '';
  const ended = new Promise((resolve) => s.on('end', resolve));
  s.setEncoding('latin1').on('data', (d) => { text += d; });
  await new Promise((r) => s.once('connect', r));
  s.write('GET / HTTP/1.1\r\nHost: x\r\n');
  const client = steadyClient(server.port);
  await sleep(100);
  const from = server.lines.length;
  // No request starts after the signal (the listener goes away); those under way must succeed.
  const stopped = client.stop();
  server.kill('SIGTERM');
  const { ok, failures } = await stopped;
  assert.equal(failures, []);
  assert.ok(ok > 0);
  await server.waitFor(/^graceful stop: 2 workers$/, 2000, from);
  await sleep(100);
  // ...is answered once complete (with Connection: close), and the connection closed.
  s.write('\r\n');
  await ended;
  s.destroy();
  assert.equal(statuses(text), [200]);
  assert.match(text, /Connection: close\r\n/);
  const exit = await server.exited;
  assert.equal(exit, { code: 0, signal: null });
  assert.equal(await allGone(server.pids), [], 'master and every worker gone');
});

test('SIGQUIT stops master and workers at once', async () => {
  const quick = await Server.start('--workers', '2');
  await until('2 workers ready', () => quick.workers().length === 2);
  const start = Date.now();
  quick.kill('SIGQUIT');
  const exit = await quick.exited;
  assert.equal(exit, { code: 0, signal: null });
  assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
  assert.equal(await allGone(quick.pids), []);
});

test('a graceful stop cuts off what is still open at --grace-timeout, and says so', async () => {
  const slow = await Server.start('--workers', '1', '--idle-timeout', '60000', '--grace-timeout', '300');
  await until('1 worker ready', () => slow.workers().length === 1);
  const [worker] = slow.workers();
  // Half a request head never completed: not between requests, and the idle timeout is a
  // minute away, so only the deadline closes it (accepted already, or by the stop's last accept).
  const s = connect(slow.port, '127.0.0.1');
  s.on('error', () => {});
  const closed = new Promise((resolve) => s.on('close', resolve));
  await new Promise((r) => s.once('connect', r));
  s.write('GET / HTTP/1.1\r\nHo');
  const start = performance.now();
  slow.kill('SIGTERM');
  const drained = await slow.waitFor(new RegExp(`^worker ${worker} drained: (\\d+) closed idle, (\\d+) cut off$`), 5000);
  assert.equal([drained[1], drained[2]], ['0', '1'], drained[0]);
  await closed;
  const after = performance.now() - start;
  assert.ok(after >= 300, `closed ${after} ms after the signal`);
  assert.equal(await slow.exited, { code: 0, signal: null });
  assert.equal(await allGone(slow.pids), []);
});

test('workers whose master was killed stop on their own', async () => {
  const orphaned = await Server.start('--workers', '2');
  await until('2 workers ready', () => orphaned.workers().length === 2);
  orphaned.kill('SIGKILL'); // no chance to stop them: they see their control socket close
  await orphaned.exited;
  assert.equal(await allGone(orphaned.workers()), []);
});

/** A raw client connection that keeps what it receives, and whether the server closed it. */
interface Idle {
  socket: Socket;
  text: string;
  closed: boolean;
}

/**
 * `n` idle connections to `port`, made 100 at a time (so that none waits out a SYN
 * retransmission behind a full backlog); destroyed after the test.
 */
async function idleConnections(port: number, n: number): Promise<Idle[]> {
  const all: Idle[] = [];
  onCleanup(() => { for (const c of all) c.socket.destroy(); });
  while (all.length < n) {
    const chunk = Array.from({ length: Math.min(100, n - all.length) }, () => new Promise<Idle>((resolve, reject) => {
      const c: Idle = { socket: connect(port, '127.0.0.1', () => resolve(c)), text: '', closed: false };
      c.socket.setEncoding('latin1').on('data', (d: string) => { c.text += d; });
      c.socket.on('end', () => { c.closed = true; }).on('close', () => { c.closed = true; });
      c.socket.on('error', (e) => { c.closed = true; reject(e); });
    }));
    all.push(...(await Promise.all(chunk)));
  }
  return all;
}

const answers = (c: Idle) => c.text.split('hello\n').length - 1;

/** Sends one request on `c`; whether it was answered within `limitMs` (the answer may still come later). */
async function answered(c: Idle, limitMs: number): Promise<boolean> {
  const before = answers(c);
  c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  return eventually(() => answers(c) > before, limitMs);
}

test('--worker-connections caps what a worker keeps open: the next connections wait in the backlog, and are served once some close', async () => {
  const capped = await Server.start('--workers', '1', '--worker-connections', '20', '--idle-timeout', '60000');
  await until('1 worker ready', () => capped.workers().length === 1);
  const [worker] = capped.workers();
  const first = await idleConnections(capped.port, 20);
  for (const c of first) assert.ok(await answered(c, 5000), 'each of the first 20 answered');
  const waiting = await idleConnections(capped.port, 5);
  // Not taken while the worker is at its cap (its listener is not even watched): a request sent
  // meanwhile waits with its connection.
  const early = await Promise.all(waiting.map((c) => answered(c, 300)));
  assert.equal(early, [false, false, false, false, false], 'none answered while the worker is full');
  for (const c of first.slice(0, 5)) c.socket.destroy();
  await until('the 5 waiting answered once 5 others closed', () => waiting.every((c) => answers(c) === 1));
  assert.equal(capped.workers(), [worker], 'the same worker throughout');
  await capped.stop();
});

test('--worker-connections must be a positive integer; --help describes it', () => {
  const start = (...args: string[]) => spawnSync(process.execPath, [join(packageRoot, 'scripts/start.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  const bad = start('--worker-connections', '0');
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /^--worker-connections must be an integer from 1 to 1048576, got '0'$/m);
  assert.match(start('--help').stdout, /^ {2}--worker-connections N {2}connections a worker keeps open at once/m);
});

/** More idle connections than select can watch in one process. */
const MANY = 1100;

/** RLIMIT_NOFILE of this process (Node raises its soft limit to the hard one), which the server inherits. */
function openFilesLimit(): number {
  const m = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1]);
}

/** The refusals the master's latest status line counts (0 when it names none). */
function refusedInStatus(s: Server): number {
  const status = s.lines.filter((l) => l.startsWith('status: ')).pop() ?? '';
  return Number(/, (\d+) connections refused$/.exec(status)?.[1] ?? 0);
}

if (MECHANISM === 'select') {
  test(`select: a worker asked to keep more connections than FD_SETSIZE allows closes and counts those past it, and lives on serving the others (${MANY} idle connections)`, async () => {
    const limit = openFilesLimit();
    assert.ok(limit >= 2 * MANY + 200, `needs ${2 * MANY + 200} fds (clients here, connections in the worker); RLIMIT_NOFILE is ${limit}: raise it (ulimit -n)`);
    const s = await Server.start('--workers', '1', '--worker-connections', '2000', '--idle-timeout', '60000', '--status-interval', '200');
    await until('1 worker ready', () => s.workers().length === 1);
    const [worker] = s.workers();
    await s.waitFor(new RegExp(`^worker ${worker} note: --worker-connections 2000 is more than select can watch here \\(\\d+\\); connections past that are closed$`));
    const conns = await idleConnections(s.port, MANY);
    await s.waitFor(new RegExp(`^worker ${worker} refused \\d+ connections?: accepted fd \\d+ is beyond select's FD_SETSIZE \\(1024\\)$`), 10_000);
    // Refusals are reported once a second: wait until the count has caught up with the closes.
    // Refusals are reported once a second and the clients see their closes as they come: wait for
    // both to reach at least the connections that cannot fit below FD_SETSIZE, and to agree.
    await until(
      `at least the ${MANY - 1024} connections that cannot fit below FD_SETSIZE refused, each counted in the status line`,
      () => refusedInStatus(s) >= MANY - 1024 && refusedInStatus(s) === conns.filter((c) => c.closed).length,
      30_000,
    );
    for (const c of conns.slice(0, 5)) assert.ok(await answered(c, 5000), 'an early connection still served');
    assert.equal(s.workers(), [worker], 'the same worker throughout');
    await s.stop();
  });

  test(`select: by default a worker stops accepting below FD_SETSIZE, refusing none (${MANY} idle connections)`, async () => {
    const limit = openFilesLimit();
    assert.ok(limit >= 2 * MANY + 200, `needs ${2 * MANY + 200} fds; RLIMIT_NOFILE is ${limit}: raise it (ulimit -n)`);
    const s = await Server.start('--workers', '1', '--idle-timeout', '60000', '--status-interval', '200');
    await until('1 worker ready', () => s.workers().length === 1);
    const [worker] = s.workers();
    const conns = await idleConnections(s.port, MANY);
    for (const c of conns.slice(0, 5)) assert.ok(await answered(c, 5000), 'an early connection served');
    assert.not.ok(await answered(conns[MANY - 1], 300), 'the last one waits in the backlog: the worker is at its cap');
    // The worker reports refusals and its served count in the same report: once the status
    // line counts those 5 answers, a refusal would have been reported.
    await s.waitFor(/^status: 1 workers alive, 5 requests served, mechanism select/, 10_000);
    assert.equal(s.lines.filter((l) => / refused /.test(l)), [], 'no connection refused');
    assert.ok(conns.every((c) => !c.closed), 'none closed');
    assert.equal(s.workers(), [worker], 'the same worker throughout');
    await s.stop();
  });
}

// The server drives both modes itself (master: start(), workers: run()), so it runs once per
// mechanism, not once more per EVPOLL_MODE. A suite of its own, not uvu's shared `test`: tests
// registered on that one and never run are picked up by the next file's test.run(), which is
// how, until stop 9, these ran in the start pass too, counted as signals.test's.
if (MODE === 'run') test.run();
