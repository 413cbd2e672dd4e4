// evpoll's main job (`npm start`): an HTTP hello server in PHP-FPM's shape, one master
// (master.ts) and N worker processes (worker.ts), each with its own EventLoop.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ACCEPT_MODES, type AcceptMode } from './control.js';
import { runMaster, type PoolOptions } from './master.js';
import { PROCESS_MANAGERS, type ProcessManager } from './scoreboard.js';
import { MAX_BUSY_MS, runWorker } from './worker.js';

const USAGE = `Usage: npm start -- [options]

An HTTP/1.1 server on evpoll in PHP-FPM's shape: a master process running FPM's process
manager, and worker processes sharing its listening socket, each with its own event loop.
GET /busy?ms=N keeps the worker that takes it busy for N ms (at most ${MAX_BUSY_MS}), as a
PHP script does; GET /status is FPM's status page; anything else answers hello.
Durations are in ms. FPM's name for each setting is in brackets.

Process manager:
  --pm MODE               [pm] static, dynamic or ondemand (default static):
                            static    max-children workers, always
                            dynamic   start-servers at start; each second, one idle worker
                                      is stopped while more than max-spare-servers are
                                      idle, and while fewer than min-spare-servers are,
                                      1, 2, 4 ... (up to max-spawn-rate) are started
                            ondemand  none at start; one is started when a connection
                                      waits and none is idle; one idle for longer than
                                      process-idle-timeout is stopped
  --max-children N        [pm.max_children] the most workers at once (default: available
                          CPUs); --workers N is the same
  --start-servers N       [pm.start_servers] dynamic: workers at start (default
                          min-spare-servers + (max-spare-servers - min-spare-servers) / 2)
  --min-spare-servers N   [pm.min_spare_servers] dynamic: fewest idle workers (default 1)
  --max-spare-servers N   [pm.max_spare_servers] dynamic: most idle workers (default
                          3, or max-children if lower)
  --max-spawn-rate N      [pm.max_spawn_rate] dynamic: most workers started in one second
                          (default 32)
  --process-idle-timeout MS
                          [pm.process_idle_timeout] ondemand: stop a worker idle this long
                          (default 10000)
  --max-requests N        [pm.max_requests] a worker that has answered N requests finishes
                          and is replaced (default 0: never)
  --request-terminate-timeout MS
                          [request_terminate_timeout] kill (SIGKILL) a worker whose request
                          runs this long, and replace it (default 0: off)
  --request-slowlog-timeout MS
                          [request_slowlog_timeout] log a request running this long, once,
                          and count it in the status page's slow requests (default 0: off)
  --status-path PATH      [pm.status_path] where the status page is (default /status);
                          ?json, ?openmetrics, and &full for one block per worker

Server:
  --host ADDRESS          IPv4 or IPv6 address to listen on (default 127.0.0.1)
  --port PORT             TCP port; 0 picks a free one (default 8080)
  --mechanism NAME        epoll, poll or select (default: EVPOLL_MECHANISM, else the best)
  --idle-timeout MS       close keep-alive connections idle this long (default 15000)
  --grace-timeout MS      a graceful stop closes what a worker still has open after this
                          long (default 10000; FPM's process_control_timeout)
  --worker-connections N  connections a worker keeps open at once (nginx's
                          worker_connections; default 1024, with select no more than
                          fit below its FD_SETSIZE); past 7/8 of it a worker leaves new
                          connections to the others
  --accept MODE           how the workers share new connections (default: exclusive where
                          the mechanism has exclusive wake-ups (epoll), mutex elsewhere):
                            exclusive  one listening socket; the kernel wakes one worker
                                       per connection (EPOLLEXCLUSIVE; elsewhere as none)
                            mutex      one listening socket, watched only by the worker
                                       holding an accept mutex in shared memory (nginx's
                                       accept_mutex; the others try every 500 ms)
                            reuseport  a listening socket per worker (SO_REUSEPORT): the
                                       kernel spreads connections among them (--pm
                                       static only: every socket needs its worker)
                            none       one listening socket, watched by every worker: each
                                       connection wakes them all
  --status-interval MS    how often the master prints a status line: workers alive,
                          requests served, idle, active and total (default 5000)
  --help                  this text

Signals to the master: SIGTERM/SIGINT stop gracefully, SIGQUIT stops at once,
SIGUSR2 replaces the workers one by one without refusing a connection.`;

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function integer(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be an integer from ${min} to ${max}, got '${value}'`);
  return n;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      workers: { type: 'string' },
      pm: { type: 'string' },
      'max-children': { type: 'string' },
      'start-servers': { type: 'string' },
      'min-spare-servers': { type: 'string' },
      'max-spare-servers': { type: 'string' },
      'max-spawn-rate': { type: 'string' },
      'process-idle-timeout': { type: 'string' },
      'max-requests': { type: 'string' },
      'request-terminate-timeout': { type: 'string' },
      'request-slowlog-timeout': { type: 'string' },
      'status-path': { type: 'string' },
      record: { type: 'string' }, // internal: the worker's scoreboard record
      mechanism: { type: 'string' },
      'idle-timeout': { type: 'string' },
      'grace-timeout': { type: 'string' },
      'status-interval': { type: 'string' },
      'worker-connections': { type: 'string' },
      accept: { type: 'string' },
      help: { type: 'boolean' },
      worker: { type: 'boolean' }, // internal: how the master starts a worker
    },
  }).values;
} catch (e) {
  fail((e as Error).message);
}

if (parsed.help) {
  console.log(USAGE);
  process.exit(0);
}

const idleTimeoutMs = integer('idle-timeout', parsed['idle-timeout'], 15_000, 1, 86_400_000);
const graceMs = integer('grace-timeout', parsed['grace-timeout'], 10_000, 1, 86_400_000);
// Unset means the worker's own default, which depends on the fds it holds (select).
const workerConnections = parsed['worker-connections'] === undefined ? undefined : integer('worker-connections', parsed['worker-connections'], 0, 1, 1 << 20);
if (parsed.workers !== undefined && parsed['max-children'] !== undefined && parsed.workers !== parsed['max-children']) {
  fail(`--workers is --max-children by another name: give one, or the same number (got ${parsed.workers} and ${parsed['max-children']})`);
}
const pm = (parsed.pm ?? 'static') as ProcessManager;
if (!PROCESS_MANAGERS.includes(pm)) fail(`--pm must be one of ${PROCESS_MANAGERS.join(', ')}, got '${parsed.pm}'`);
const maxChildren = parsed['max-children'] !== undefined
  ? integer('max-children', parsed['max-children'], 0, 1, 1024)
  : integer('workers', parsed.workers, availableParallelism(), 1, 1024);
const workers = maxChildren;
// FPM's checks (fpm_conf.c), with its messages' sense: spare servers within max-children, start servers between them.
const minSpare = integer('min-spare-servers', parsed['min-spare-servers'], 1, 1, 1024);
const maxSpare = integer('max-spare-servers', parsed['max-spare-servers'], Math.max(minSpare, Math.min(3, maxChildren)), 1, 1024);
if (pm === 'dynamic') {
  if (minSpare > maxSpare) fail(`--min-spare-servers (${minSpare}) must not be greater than --max-spare-servers (${maxSpare})`);
  if (maxSpare > maxChildren) fail(`--max-spare-servers (${maxSpare}) must not be greater than --max-children (${maxChildren})`);
}
const startServers = integer('start-servers', parsed['start-servers'], minSpare + Math.floor((maxSpare - minSpare) / 2), 1, 1024);
if (pm === 'dynamic' && (startServers < minSpare || startServers > maxSpare)) {
  fail(`--start-servers (${startServers}) must not be less than --min-spare-servers (${minSpare}) nor greater than --max-spare-servers (${maxSpare})`);
}
const pool: PoolOptions = {
  pm,
  maxChildren,
  startServers,
  minSpareServers: minSpare,
  maxSpareServers: maxSpare,
  maxSpawnRate: integer('max-spawn-rate', parsed['max-spawn-rate'], 32, 1, 1024),
  processIdleTimeoutMs: integer('process-idle-timeout', parsed['process-idle-timeout'], 10_000, 1, 86_400_000),
  requestTerminateTimeoutMs: integer('request-terminate-timeout', parsed['request-terminate-timeout'], 0, 0, 86_400_000),
  requestSlowlogTimeoutMs: integer('request-slowlog-timeout', parsed['request-slowlog-timeout'], 0, 0, 86_400_000),
};
const maxRequests = integer('max-requests', parsed['max-requests'], 0, 0, 2 ** 31 - 1);
const statusPath = parsed['status-path'] ?? '/status';
if (!/^\/[\x21-\x7e]*$/.test(statusPath) || statusPath.includes('?') || statusPath === '/' || statusPath === '/busy') {
  fail(`--status-path must be a path starting with /, without spaces or ?, other than / and /busy, got '${statusPath}'`);
}
const mechanism = parsed.mechanism;
// Unset means the master's default, which depends on the mechanism; a worker is always told.
const accept = parsed.accept as AcceptMode | undefined;
if (accept !== undefined && !ACCEPT_MODES.includes(accept)) fail(`--accept must be one of ${ACCEPT_MODES.join(', ')}, got '${accept}'`);
if (accept === 'reuseport' && pm !== 'static') {
  fail(`--accept reuseport needs --pm static: the kernel hashes each connection to one socket of the group, and a socket whose worker ${pm} has stopped would keep its connections waiting`);
}

if (parsed.worker) {
  if (accept === undefined) fail('--worker needs --accept');
  const record = integer('record', parsed.record, -1, 0, 4096);
  if (record < 0) fail('--worker needs --record');
  runWorker({ mechanism, idleTimeoutMs, graceMs, workerConnections, workers, accept, record, maxRequests, statusPath });
} else {
  const workerCommand = [fileURLToPath(import.meta.url), '--worker', '--idle-timeout', String(idleTimeoutMs), '--grace-timeout', String(graceMs), '--workers', String(workers),
    '--max-requests', String(maxRequests), '--status-path', statusPath];
  if (workerConnections !== undefined) workerCommand.push('--worker-connections', String(workerConnections));
  try {
    runMaster({
      host: parsed.host ?? '127.0.0.1',
      port: integer('port', parsed.port, 8080, 0, 65535),
      pool,
      mechanism,
      accept,
      statusIntervalMs: integer('status-interval', parsed['status-interval'], 5000, 10, 86_400_000),
      graceMs,
      workerCommand,
    });
  } catch (e) {
    // A refusal (EADDRINUSE, a bad --host or --mechanism) says enough in its message; anything else is a bug.
    const err = e as Error & { code?: string };
    console.error(`evpoll server: ${err.code ? err.message : err.stack}`);
    process.exit(1);
  }
}
