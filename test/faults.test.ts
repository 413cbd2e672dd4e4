// Faults the server (examples/server, what `npm start` runs) must ride out: a worker killed
// with SIGKILL under load, and peers that reset their connections mid-request. Load comes
// from Node's own http/net clients in this process (no wrk needed). The other faults of the
// reliability issue have their tests beside the feature: EMFILE on accept in
// acceptor.test.ts, a burst of 10,000 signals in signals.test.ts.
//
// The server drives both modes itself (master: start(), workers: run()), so this file runs
// once per mechanism, in the run pass only: a suite of its own (see server.test.ts's end).
import { kernelOnly, suite } from './harness.js';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { MODE, sleep, until, eventually } from './helpers.js';
import { Server, gone, keepRequesting, stopLoads } from './server-helpers.js';

kernelOnly('a real server: child processes killed with SIGKILL, real TCP and HTTP clients');

const test = suite('faults');

/** A process's open fd count. */
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The client ports of the TCP connections to `port` that process `pid` holds. */
function clientPortsOf(pid: number, port: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9]) || f[3] === '0A') continue; // not the listener (TCP_LISTEN)
    const local = parseInt(f[1].split(':')[1], 16);
    if (local === port) ports.add(parseInt(f[2].split(':')[1], 16));
  }
  return ports;
}

/**
 * `n` request loops over `n` keep-alive connections until stop(). Each request records the
 * client port of the connection it went on, so a failure can be traced to a worker.
 */
function load(port: number, n: number) {
  const result = { ok: 0, failures: [] as { port: number | undefined; error: string; at: number }[] };
  return keepRequesting(n, result, (agent) => new Promise<void>((resolve) => {
    let clientPort: number | undefined;
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => {
        if (res.statusCode === 200 && body === 'hello\n') result.ok++;
        else result.failures.push({ port: clientPort, error: `status ${res.statusCode}`, at: Date.now() });
        resolve();
      }).on('error', (e) => {
        result.failures.push({ port: clientPort, error: e.message, at: Date.now() });
        resolve();
      });
    });
    req.on('socket', (s: Socket) => {
      clientPort = s.localPort;
      if (clientPort === undefined) s.once('connect', () => { clientPort = s.localPort; });
    });
    req.on('error', (e) => {
      result.failures.push({ port: clientPort, error: e.message, at: Date.now() });
      resolve();
    });
  }));
}

let server: Server;

test.before(async () => {
  server = await Server.start('--workers', '2', '--status-interval', '60000');
  const end = Date.now() + 10_000;
  while (server.workers().length < 2 && Date.now() < end) await sleep(20);
  assert.is(server.workers().length, 2);
});

test.after(async () => {
  await stopLoads();
  if (server) await server.stop();
});

test('a worker killed with SIGKILL under load: respawned; only requests on its own connections fail', async () => {
  const n = 8;
  const client = load(server.port, n);
  let [victim, survivor] = server.workers();
  let victimPorts = new Set<number>(), survivorPorts = new Set<number>();
  // Every connection of the pool made (each in one worker or the other) and the load going.
  // Polled, not slept on: a stalled CI process may take longer than any fixed wait.
  await until(`${n} connections and 50 answers`, () => {
    victimPorts = clientPortsOf(victim, server.port);
    survivorPorts = clientPortsOf(survivor, server.port);
    return victimPorts.size + survivorPorts.size === n && client.result.ok > 50;
  });
  // The victim is the worker holding more of them: with EXCLUSIVE, one worker may hold all.
  if (victimPorts.size < survivorPorts.size) {
    [victim, survivor] = [survivor, victim];
    [victimPorts, survivorPorts] = [survivorPorts, victimPorts];
  }
  const from = server.lines.length;
  const okBefore = client.result.ok;
  process.kill(victim, 'SIGKILL');
  await server.waitFor(new RegExp(`^worker ${victim} died \\(signal SIGKILL\\); respawning in \\d+ ms$`), 5000, from);
  const ready = await server.waitFor(/^worker (\d+) ready$/, 5000, from);
  const okAtRespawn = client.result.ok;
  await eventually(() => client.result.ok > okAtRespawn + 50); // asserted below
  const { ok, failures } = await client.stop();
  const failed = failures.map((f) => f.port);
  process.stdout.write(`  ${okBefore} answers before the kill, ${ok - okBefore} after; ${failures.length} failed on ${victimPorts.size} connections of the killed worker (${survivorPorts.size} on the other)\n`);
  assert.ok(okBefore > 50, 'the load was running');
  assert.ok(victimPorts.size > 0, 'the victim held connections of the pool');
  assert.ok(failed.every((p) => p !== undefined && victimPorts.has(p)), `failures only on the killed worker's connections: ${JSON.stringify(failures)}`);
  assert.ok(new Set(failed).size === failed.length, 'at most one failure (the request in flight) per connection');
  assert.ok(ok > okAtRespawn + 50, 'served on after the respawn');
  assert.is.not(Number(ready[1]), victim);
  assert.is(server.workers().length, 2);
});

/** Opens `total` connections, `concurrency` at a time, each handed to `abuse`, which resolves once it has reset it. */
async function resets(port: number, total: number, concurrency: number, abuse: (s: Socket) => Promise<void>): Promise<number> {
  let started = 0, errors = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      await new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => { errors++; resolve(); });
        s.once('connect', () => abuse(s).then(resolve));
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return errors;
}

/** RST instead of FIN: SO_LINGER 0, then close. */
function reset(s: Socket): void {
  s.resetAndDestroy();
}

test('peers that reset connections mid-request: no fd is left behind in any server process', async () => {
  const pids = [server.child.pid!, ...server.workers()];
  const settle = async () => {
    // Idle: every connection of this test is gone from the server's side.
    const end = Date.now() + 5000;
    let counts = pids.map(fdCount);
    for (;;) {
      await sleep(100);
      const now = pids.map(fdCount);
      if (now.every((c, i) => c === counts[i]) || Date.now() > end) return now;
      counts = now;
    }
  };
  const before = await settle();
  const head = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  const variants: [string, (s: Socket) => Promise<void>][] = [
    ['at once', async (s) => reset(s)],
    ['half a request head', async (s) => { s.write('GET / HTTP/1.1\r\nHo'); await sleep(2); reset(s); }],
    ['a request, before the answer is read', async (s) => { s.write(head); reset(s); }],
    ['a request and half a body', async (s) => { s.write('POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc'); await sleep(2); reset(s); }],
    [
      'thousands of pipelined requests, none of the answers read (the server is blocked writing)',
      async (s) => {
        s.pause();
        s.write(head.repeat(3000));
        await sleep(30);
        reset(s);
      },
    ],
  ];
  const counts: Record<string, number[]> = {};
  for (const [name, abuse] of variants) {
    const errors = await resets(server.port, name.startsWith('thousands') ? 100 : 500, 20, abuse);
    counts[name] = await settle();
    assert.is(errors, 0, `${name}: the connections were made`);
  }
  process.stdout.write(`  fds (master, workers) before ${before.join(', ')}; after each kind of reset ${Object.values(counts).map((c) => c.join('/')).join(', ')}\n`);
  for (const [name, after] of Object.entries(counts)) assert.equal(after, before, `fd counts after resets ${name}`);
  assert.ok(!pids.some(gone), 'no server process died');
  // And it still answers.
  const res = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: '/', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve(body));
    }).on('error', reject);
  });
  assert.is(res, 'hello\n');
});

if (MODE === 'run') test.run();
