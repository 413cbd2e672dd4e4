// FPM's process manager in the server (issue 14), end to end with real processes and clients:
// ondemand from zero to serving and back to zero; dynamic growing under /busy clients up to
// max-children (max children reached counted once) and shrinking to max-spare one worker per
// beat; max-requests replacing workers under load with no failed request; a terminate timeout
// replacing a stuck worker while other clients see no error; the status page's fields against
// what the test did; and the flags FPM would refuse.
import { kernelOnly, suite } from './harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { MECHANISM, MODE, eventually, until } from './helpers.js';
import { Server, running, allGone, freshClient, getFresh, steadyClient, stopLoads, type Answer } from './server-helpers.js';

kernelOnly('a real server: child processes, real TCP and HTTP clients, signals');

const test = suite('server --pm');

const IDLE_TIMEOUT_MS = 1000;
const TICK_MS = IDLE_TIMEOUT_MS / 4; // the server's sweep period

test.after(async () => {
  await stopLoads();
  for (const s of running) if (s.child.exitCode === null && s.child.signalCode === null) s.kill('SIGKILL');
  await allGone([...running].flatMap((s) => [...s.pids]));
});

interface StatusLine { alive: number; idle: number; active: number; total: number; index: number }

/** The master's periodic status lines from index `from` on. */
function statusLines(server: Server, from = 0): StatusLine[] {
  const out: StatusLine[] = [];
  for (let i = from; i < server.lines.length; i++) {
    const m = /^status: (\d+) workers alive, \d+ requests served, mechanism \w+; (\d+) idle, (\d+) active, (\d+) total(?:, \d+ connections refused)?$/.exec(server.lines[i]);
    if (m) out.push({ alive: Number(m[1]), idle: Number(m[2]), active: Number(m[3]), total: Number(m[4]), index: i });
  }
  return out;
}

/** Waits for a status line from index `from` on that satisfies `ok`; returns it. */
async function statusWhere(server: Server, what: string, ok: (s: StatusLine) => boolean, from = 0, limitMs = 20_000): Promise<StatusLine> {
  let found: StatusLine | undefined;
  await until(what, () => (found = statusLines(server, from).find(ok)) !== undefined, limitMs);
  return found!;
}

const linesMatching = (server: Server, re: RegExp, from = 0) => server.lines.slice(from).filter((l) => re.test(l));

async function statusJson(port: number, query = 'json', path = '/status'): Promise<Record<string, any>> {
  const answer = await getFresh(port, `${path}?${query}`);
  assert.is(answer.status, 200);
  assert.is(answer.type, 'application/json');
  return JSON.parse(answer.body);
}

test('ondemand: no worker at start; a connection starts one, which serves it; idle past process-idle-timeout it is stopped, back to zero; the next connection starts another', async () => {
  const server = await Server.start('--pm', 'ondemand', '--max-children', '3', '--process-idle-timeout', '1500', '--status-interval', '100', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  await server.waitFor(/^master \d+: pm ondemand, no worker until a connection waits, at most 3, idle ones stopped after 1500 ms, mechanism \w+$/);
  const first = await statusWhere(server, 'a status line', () => true);
  assert.equal([first.alive, first.total], [0, 0], 'no worker at start');
  assert.equal(server.workers(), []);

  assert.equal(await getFresh(server.port), { status: 200, body: 'hello\n', type: 'text/plain' });
  await until('the worker it started reported', () => server.workers().length === 1);
  const [worker] = server.workers();
  // The status request finds the same single worker, which counts itself active.
  const status = await statusJson(server.port);
  assert.equal([status['process manager'], status['idle processes'], status['active processes'], status['total processes']], ['ondemand', 0, 1, 1]);
  assert.is(status['accepted conn'], 2);
  assert.is(server.workers().length, 1, 'the second connection found the worker idle: no second one');

  const from = server.lines.length;
  await server.waitFor(new RegExp(`^worker ${worker} retired \\(code 0\\): idle for more than 1500 ms \\(process-idle-timeout\\)$`), 10_000, from);
  await statusWhere(server, 'a status line with no worker', (s) => s.alive === 0 && s.total === 0, from);
  assert.equal(server.workers(), []);

  assert.is((await getFresh(server.port)).body, 'hello\n');
  await until('the new worker it started reported', () => server.workers().length === 1);
  assert.ok(server.workers()[0] !== worker, 'a new worker');
  await server.stop();
});

test('ondemand at max-children: a connection that waits while every worker is busy counts "max children reached" once, and is served when one is free', async () => {
  const server = await Server.start('--pm', 'ondemand', '--max-children', '1', '--status-interval', '100', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  const busy = getFresh(server.port, '/busy?ms=2500');
  try {
    await statusWhere(server, 'the busy request running', (s) => s.active === 1 && s.total === 1);
    const waiting = [getFresh(server.port), getFresh(server.port)];
    await server.waitFor(/^max children reached: a connection waits and no worker is idle \(pm.max_children 1\); consider raising --max-children$/, 10_000);
    assert.is((await busy).body, 'busy 2500\n');
    assert.equal((await Promise.all(waiting)).map((a) => a.body), ['hello\n', 'hello\n']);
    const status = await statusJson(server.port);
    assert.is(status['max children reached'], 1, 'one episode');
    assert.is(linesMatching(server, /^max children reached/).length, 1);
    assert.is(server.workers().length, 1, 'never more than max-children');
  } finally {
    await busy.catch(() => {});
  }
  await server.stop();
});

test('dynamic: grows under /busy clients up to max-children, counting "max children reached" once; a connection waits in the listen queue meanwhile; shrinks to max-spare one worker per beat after the load', async () => {
  const server = await Server.start('--pm', 'dynamic', '--max-children', '4', '--start-servers', '1', '--min-spare-servers', '1', '--max-spare-servers', '2',
    '--status-interval', '100', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  await statusWhere(server, 'one worker idle', (s) => s.total === 1 && s.idle === 1);
  // The busy requests all end END_MS after the first began (each asks for what is left, at
  // least 3 s), so that all four run at once however long a loaded machine takes to grow the pool.
  const END_MS = 20_000;
  const began = Date.now();
  const asked: number[] = [];
  const busyFor = () => {
    const ms = Math.max(3000, END_MS - (Date.now() - began));
    asked.push(ms);
    return getFresh(server.port, `/busy?ms=${ms}`, 90_000);
  };
  const busy: Promise<Answer>[] = [];
  let peak: StatusLine;
  try {
    // One client at a time, each sent once the one before is seen running (its worker is blocked,
    // so it cannot take the next connection) and the pool has an idle worker for the next.
    for (let k = 1; k <= 3; k++) {
      busy.push(busyFor());
      await statusWhere(server, `${k} busy requests running and an idle worker`, (s) => s.active === k && s.idle >= 1, 0, 30_000);
      if (k === 2) {
        // Active processes: the two busy requests, and the worker serving this status request.
        const status = await statusJson(server.port);
        assert.is(status['active processes'], 3, JSON.stringify(status));
        assert.is(status['total processes'], status['idle processes'] + status['active processes']);
      }
    }
    // The fourth fills the pool: idle 0 at max-children 4.
    busy.push(busyFor());
    peak = await statusWhere(server, '4 busy requests running', (s) => s.active === 4 && s.total === 4, 0, 30_000);
    await server.waitFor(/^max children reached: 0 idle, fewer than min-spare-servers 1 \(pm.max_children 4\); consider raising --max-children$/, 5000);
    // A fifth waits in the listen queue until a worker is free again.
    const fifth = getFresh(server.port, '/busy?ms=0', 90_000);
    const answers = await Promise.all(busy);
    assert.equal(answers.map((a) => a.body), asked.map((ms) => `busy ${ms}\n`));
    assert.is((await fifth).body, 'busy 0\n');
    const status = await statusJson(server.port);
    assert.is(status['max children reached'], 1, 'one episode, counted once');
    assert.is(status['max active processes'], 4);
    assert.ok(status['max listen queue'] >= 1, `the fifth waited in the listen queue: ${JSON.stringify(status)}`);
    assert.is(linesMatching(server, /^max children reached/).length, 1, 'logged once');
  } finally {
    await Promise.allSettled(busy);
  }
  // After the load: idle 4 > max-spare 2, one worker stopped per beat, down to 2 (the first
  // may go as soon as 3 are idle, before the last busy answer is in).
  const down = await statusWhere(server, 'back to max-spare-servers', (s) => s.total === 2 && s.idle === 2, peak!.index, 20_000);
  const totals = statusLines(server, peak!.index).filter((s) => s.index <= down.index).map((s) => s.total);
  for (let i = 1; i < totals.length; i++) assert.ok(totals[i - 1] - totals[i] <= 1, `at most one fewer per status line (100 ms apart, a beat is 1 s): ${totals.join(' ')}`);
  // Each stopped worker's line comes when it has exited, after its graceful stop.
  const retiredLines = () => linesMatching(server, /^worker \d+ retired \(code 0\): as \d+ were idle, more than max-spare-servers 2$/);
  await until('two idle workers stopped', () => retiredLines().length >= 2, 10_000);
  assert.is(retiredLines().length, 2, retiredLines().join('\n'));
  await server.stop();
});

test('max-requests: each worker finishes after its N requests and a successor takes over, under steady load with no failed request and no crash', async () => {
  const server = await Server.start('--pm', 'static', '--max-children', '2', '--max-requests', '25', '--status-interval', '200', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  await until('2 workers ready', () => server.workers().length === 2, 20_000);
  const kept = steadyClient(server.port, TICK_MS);
  const fresh = freshClient(server.port);
  await until('4 workers replaced', () => linesMatching(server, /^worker \d+ retired \(code 0\): after 25 requests \(max-requests\)$/).length >= 4, 30_000);
  const { failures: freshFailures, ok: freshOk } = await fresh.stop();
  const { failures: keptFailures, ok: keptOk } = await kept.stop();
  assert.equal(freshFailures, [], 'new connections');
  assert.equal(keptFailures, [], 'kept-alive connections');
  assert.ok(freshOk + keptOk >= 100, `${freshOk + keptOk} requests`);
  assert.equal(linesMatching(server, /died|respawning/), [], 'not counted as crashes');
  await statusWhere(server, 'the pool at 2', (s) => s.total === 2 && s.alive === 2, server.lines.length);
  await server.stop();
});

test('request-terminate-timeout kills (SIGKILL) a worker stuck in a request and replaces it: that client\'s connection is closed, other clients see no error; request-slowlog-timeout logs it once and counts it', async () => {
  const server = await Server.start('--pm', 'static', '--max-children', '2', '--request-terminate-timeout', '1500', '--request-slowlog-timeout', '300',
    '--status-interval', '100', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  await until('2 workers ready', () => server.workers().length === 2, 20_000);
  const stuck = getFresh(server.port, '/busy?ms=30000', 60_000).then(() => 'answered', (e: Error) => e.message);
  await statusWhere(server, 'the stuck request running', (s) => s.active === 1);
  // Only now the other clients: the stuck worker is blocked, so none of their connections can be in it.
  const kept = steadyClient(server.port, TICK_MS);
  const fresh = freshClient(server.port);
  const slow = await server.waitFor(/^worker (\d+) slow request: GET \/busy\?ms=30000 running for (\d+) ms \(request-slowlog-timeout 300 ms\)$/, 10_000);
  assert.ok(Number(slow[2]) >= 300);
  const killed = await server.waitFor(/^worker (\d+) request GET \/busy\?ms=30000 running for (\d+) ms, past request-terminate-timeout 1500 ms: killing it \(SIGKILL\)$/, 10_000);
  assert.is(killed[1], slow[1]);
  assert.ok(Number(killed[2]) >= 1500);
  assert.match(await stuck, /socket hang up|ECONNRESET/);
  await server.waitFor(new RegExp(`^worker ${killed[1]} exited \\(signal SIGKILL\\) after request-terminate-timeout; replacing it$`), 10_000);
  await until('a successor ready', () => server.workers().length === 2 && !server.workers().includes(Number(killed[1])), 20_000);
  const served = fresh.result.ok;
  await eventually(() => fresh.result.ok >= served + 10);
  const { failures: freshFailures } = await fresh.stop();
  const { failures: keptFailures } = await kept.stop();
  assert.equal(freshFailures, [], 'new connections');
  assert.equal(keptFailures, [], 'kept-alive connections');
  assert.is(linesMatching(server, /slow request/).length, 1, 'logged once');
  const status = await statusJson(server.port);
  assert.is(status['slow requests'], 1);
  assert.equal(linesMatching(server, /died|respawning/), [], 'not counted as a crash');
  await server.stop();
});

test('the status page: accepted conn counts the connections made; the per-worker records; text, json and openmetrics; a custom path; a bad busy page', async () => {
  const server = await Server.start('--pm', 'static', '--max-children', '2', '--status-path', '/fpm-status', '--status-interval', '100', '--idle-timeout', String(IDLE_TIMEOUT_MS));
  await until('2 workers ready', () => server.workers().length === 2, 20_000);
  for (let i = 0; i < 5; i++) assert.is((await getFresh(server.port, `/hello-${i}`)).body, 'hello\n');
  assert.is((await getFresh(server.port, '/status?json')).body, 'hello\n', 'not the status path: the hello page');
  assert.equal(await getFresh(server.port, '/busy?ms=60001'), { status: 400, body: 'busy needs ?ms=N, N an integer from 0 to 60000\n', type: 'text/plain' });
  assert.is((await getFresh(server.port, '/busy')).status, 400);
  const s = await statusJson(server.port, 'json&full', '/fpm-status');
  // 5 hello, 1 wrong status path, 2 bad busy pages, and this one.
  assert.is(s['accepted conn'], 9);
  assert.equal([s.pool, s['process manager'], s['idle processes'], s['active processes'], s['total processes']], ['www', 'static', 1, 1, 2]);
  assert.is(s['listen queue'], 0);
  assert.is(s['listen queue len'], 511);
  assert.ok(Math.abs(s['start time'] - Date.now() / 1000) < 120);
  assert.equal(s.processes.map((p: any) => p.pid).sort(), server.workers().sort());
  // Requests answered: the 8 before; this one is running, in the record of the worker serving it.
  assert.is(s.processes.reduce((n: number, p: any) => n + p.requests, 0), 8);
  const me = s.processes.find((p: any) => p.state === 'Running');
  assert.equal([me['request method'], me['request uri']], ['GET', '/fpm-status?json&full']);
  for (const p of s.processes) assert.ok(p['last request memory'] > 1e6, `memory of ${p.pid}`);

  const text = await getFresh(server.port, '/fpm-status?full');
  assert.is(text.type, 'text/plain');
  assert.match(text.body, /^pool: {17}www\nprocess manager: {6}static\nstart time: {11}\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\n/);
  assert.match(text.body, /\naccepted conn: {8}10\n/);
  assert.is(text.body.split('************************').length, 3, 'a block per worker');
  assert.match(text.body, /\nrequest URI: {10}\/fpm-status\?full\n/);

  const metrics = await getFresh(server.port, '/fpm-status?openmetrics');
  assert.is(metrics.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.match(metrics.body, /\nphpfpm_accepted_connections_total 11\n/);
  assert.match(metrics.body, /\nphpfpm_total_processes 2\n/);
  assert.ok(metrics.body.endsWith('# EOF\n'));

  // Active processes: a busy request in flight, and the worker serving the status request.
  const busy = getFresh(server.port, '/busy?ms=3000');
  try {
    await statusWhere(server, 'the busy request running', (l) => l.active === 1);
    const during = await statusJson(server.port, 'json', '/fpm-status');
    assert.equal([during['active processes'], during['idle processes']], [2, 0]);
    assert.is((await busy).body, 'busy 3000\n');
  } finally {
    await busy.catch(() => {});
  }
  await server.stop();
});

test('flags FPM would refuse exit with status 2 and say why', () => {
  const start = (...args: string[]) => spawnSync(process.execPath, [join(packageRoot, 'scripts/start.mjs'), '--port', '0', '--mechanism', MECHANISM, ...args], { encoding: 'utf8', timeout: 60_000 });
  const cases: [string[], RegExp][] = [
    [['--pm', 'adaptive'], /--pm must be one of static, dynamic, ondemand, got 'adaptive'/],
    [['--pm', 'dynamic', '--max-children', '4', '--min-spare-servers', '3', '--max-spare-servers', '2'], /--min-spare-servers \(3\) must not be greater than --max-spare-servers \(2\)/],
    [['--pm', 'dynamic', '--max-children', '2', '--max-spare-servers', '3'], /--max-spare-servers \(3\) must not be greater than --max-children \(2\)/],
    [['--pm', 'dynamic', '--max-children', '8', '--start-servers', '5', '--max-spare-servers', '4'], /--start-servers \(5\) must not be less than --min-spare-servers \(1\) nor greater than --max-spare-servers \(4\)/],
    [['--pm', 'ondemand', '--accept', 'reuseport'], /--accept reuseport needs --pm static/],
    [['--workers', '2', '--max-children', '3'], /--workers is --max-children by another name/],
    [['--max-requests', '1.5'], /--max-requests must be an integer from 0/],
    [['--status-path', 'status'], /--status-path must be a path starting with \//],
  ];
  for (const [args, message] of cases) {
    const r = start(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

// Processes, not loops: once per mechanism (as server.test.ts), not once more per EVPOLL_MODE.
if (MODE === 'run') test.run();
