// evpoll's main job (`npm start`): an HTTP hello server in PHP-FPM's shape, one master
// (master.ts) and N worker processes (worker.ts), each with its own EventLoop.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ACCEPT_MODES, type AcceptMode } from './control.js';
import { runMaster } from './master.js';
import { runWorker } from './worker.js';

const USAGE = `Usage: npm start -- [options]

An HTTP/1.1 hello server on evpoll: a master process and worker processes sharing its
listening socket, each worker with its own event loop.

Options:
  --host ADDRESS          IPv4 or IPv6 address to listen on (default 127.0.0.1)
  --port PORT             TCP port; 0 picks a free one (default 8080)
  --workers N             worker processes (default: available CPUs)
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
                                       kernel spreads connections among them
                            none       one listening socket, watched by every worker: each
                                       connection wakes them all
  --status-interval MS    how often the master prints a status line (default 5000)
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
const workers = integer('workers', parsed.workers, availableParallelism(), 1, 1024);
const mechanism = parsed.mechanism;
// Unset means the master's default, which depends on the mechanism; a worker is always told.
const accept = parsed.accept as AcceptMode | undefined;
if (accept !== undefined && !ACCEPT_MODES.includes(accept)) fail(`--accept must be one of ${ACCEPT_MODES.join(', ')}, got '${accept}'`);

if (parsed.worker) {
  if (accept === undefined) fail('--worker needs --accept');
  runWorker({ mechanism, idleTimeoutMs, graceMs, workerConnections, workers, accept });
} else {
  const workerCommand = [fileURLToPath(import.meta.url), '--worker', '--idle-timeout', String(idleTimeoutMs), '--grace-timeout', String(graceMs), '--workers', String(workers)];
  if (workerConnections !== undefined) workerCommand.push('--worker-connections', String(workerConnections));
  try {
    runMaster({
      host: parsed.host ?? '127.0.0.1',
      port: integer('port', parsed.port, 8080, 0, 65535),
      workers,
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
