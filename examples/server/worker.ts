// A worker process: its own EventLoop in run() mode (the loop owns the thread; signals arrive
// through evpoll's self-pipe), accepting on the listener the master handed down as fd 3 and
// serving HTTP on every connection it takes. It reports to the master over fd 4, and keeps its
// record of FPM's scoreboard in the shared memory handed down as fd 5 (where, with
// `--accept mutex`, it also finds the accept mutex).
import { readdirSync } from 'node:fs';
import { Acceptor, EV, EventLoop, mechanisms } from 'evpoll';
import * as net from 'evpoll/net';
import { AcceptMutex, SharedRegion } from 'evpoll/shm';
import { Connections } from './connections.js';
import { CONTROL_FD, LISTEN_FD, MUTEX_OFFSET, SHM_FD, type AcceptMode } from './control.js';
import { makeResponse } from './http.js';
import { Scoreboard, State, epochNow } from './scoreboard.js';
import { renderStatus } from './status.js';


export interface WorkerOptions {
  mechanism?: string;
  idleTimeoutMs: number;
  /** A graceful stop closes whatever is still open after this long. */
  graceMs: number;
  /** Connections open at once (--worker-connections); default: DEFAULT_WORKER_CONNECTIONS, or what fits (select). */
  workerConnections?: number;
  /** Workers sharing the listener (--workers): a lone one has nobody to leave connections to. */
  workers: number;
  /** How the workers share new connections (control.ts's AcceptMode). */
  accept: AcceptMode;
  /** Its record in the scoreboard (the master's choice). */
  record: number;
  /** FPM's pm.max_requests: answer this many, then finish and exit (0: no limit). */
  maxRequests: number;
  /** FPM's pm.status_path; null: no status page. */
  statusPath: string | null;
}

/** The longest a busy page may block its worker (GET /busy?ms=N). */
export const MAX_BUSY_MS = 60_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * The answer to a request for something other than `/`: the busy page (blocks this process for
 * N ms, as a PHP script that computes or waits would: the loop runs nothing meanwhile), the
 * status page, or null (the hello page).
 */
function pages(scoreboard: Scoreboard, statusPath: string | null, listenerQueue: () => { length: number; limit: number }) {
  return (target: string, keepAlive: boolean, keepAlive10: boolean): Buffer | null => {
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    if (path === '/busy') {
      const ms = /^ms=(\d{1,9})$/.exec(target.slice(q + 1));
      if (q < 0 || ms === null || Number(ms[1]) > MAX_BUSY_MS) {
        return makeResponse('400 Bad Request', 'text/plain', `busy needs ?ms=N, N an integer from 0 to ${MAX_BUSY_MS}\n`, keepAlive, keepAlive10);
      }
      const n = Number(ms[1]);
      // Atomics.wait blocks the thread, as a synchronous PHP script does; it burns no CPU, so a
      // test with many busy workers does not starve the machine it runs on.
      if (n > 0) Atomics.wait(sleeper, 0, 0, n);
      return makeResponse('200 OK', 'text/plain', `busy ${n}\n`, keepAlive, keepAlive10);
    }
    if (statusPath !== null && path === statusPath) {
      const queue = listenerQueue();
      const page = renderStatus(target, scoreboard.read(), { listenQueue: queue.length, listenQueueLen: queue.limit, now: epochNow() });
      return makeResponse('200 OK', page.type, page.body, keepAlive, keepAlive10);
    }
    return null;
  };
}

/** nginx's default worker_connections is 512; a hello server's connections cost little. */
export const DEFAULT_WORKER_CONNECTIONS = 1024;

/** fds a worker may still open after it counted its own (Node's and libuv's, lazily). */
const FD_MARGIN = 16;

/**
 * How many connections fit below the first fd the mechanism cannot watch (select's
 * FD_SETSIZE), beside the fds the worker holds now; null where there is no such limit. A
 * connection takes the lowest free fd, so this many can be watched.
 */
function connectionsThatFit(mechanism: string): number | null {
  const limit = mechanisms().find((m) => m.name === mechanism)?.fdLimit ?? null;
  if (limit === null) return null;
  const held = readdirSync('/proc/self/fd').filter((name) => Number(name) < limit).length;
  return Math.max(1, limit - held - FD_MARGIN);
}

export function runWorker(options: WorkerOptions): never {
  const loop = new EventLoop({ mechanism: options.mechanism });
  // Why the last connection the loop could not watch was closed (the count goes to the master).
  let lastRefusal = '';
  const onRefused = (err: Error) => { lastRefusal = err.message; };
  const region = SharedRegion.open(SHM_FD);
  let waitEnded = epochNow();
  loop.check(() => { waitEnded = epochNow(); });
  const scoreboard = new Scoreboard(region);
  const record = options.record;
  let finishing = false;
  // The listen queue: this worker's socket is the pool's, unless each worker has its own
  // (reuseport), when the master's heartbeat sum over all of them is the pool's figure.
  const listenerQueue = () => {
    if (options.accept === 'reuseport') {
      const pool = scoreboard.read();
      return { length: pool.listenQueue, limit: pool.listenQueueLen };
    }
    const q = net.listenQueue(LISTEN_FD);
    scoreboard.noteListenQueue(q.length);
    return q;
  };
  const connections = new Connections(loop, {
    idleTimeoutMs: options.idleTimeoutMs,
    onClosed: () => acceptor.release(),
    onRefused,
    respond: pages(scoreboard, options.statusPath, listenerQueue),
    // The time of a request answered at once is the end of the wait that brought it (read once
    // per iteration, by the check hook below); a page's start and end are read as they happen.
    observer: {
      done: (buf, ms, me, ts, te) => scoreboard.requestDone(record, buf, ms, me, ts, te, waitEnded, finishing),
      start: (buf, ms, me, ts, te) => scoreboard.requestStart(record, buf, ms, me, ts, te, epochNow()),
      end: () => scoreboard.requestEnd(record, waitEnded = epochNow(), finishing),
    },
    onFresh: (fresh) => gateAccepting(fresh),
    maxRequests: options.maxRequests,
    // FPM's pm.max_requests: the master starts the successor now, this one finishes what it
    // holds. On the next iteration, not inside the request's own handling: the stop takes the
    // connections still queued and reads them, which must not happen while this request's
    // answer is still in the shared output buffer.
    onMaxRequests: () => void loop.timer(0, () => {
      tell(`max-requests ${options.maxRequests}`);
      stopGracefully();
    }).add(0),
  });

  // CPU and memory for the scoreboard, once a second: each costs a system call, so not per request.
  let lastCpu = process.cpuUsage();
  let lastAt = performance.now();
  const usage = () => {
    const cpu = process.cpuUsage();
    const at = performance.now();
    const usedMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    const percent = at > lastAt ? (100 * usedMs) / (at - lastAt) : 0;
    lastCpu = cpu;
    lastAt = at;
    scoreboard.setUsage(record, (cpu.user + cpu.system) / 1000, percent, process.memoryUsage.rss());
  };
  usage();
  loop.timer(EV.PERSIST, usage).add(1000);

  let reported = -1;
  let refusedReported = 0;
  let wakeupsReported = -1;
  /** Sends the counts that changed since the last report (`final`: the accept counts in any case, for the master to print). */
  const report = (final = false) => {
    const refused = acceptor.refused + connections.refused;
    if (refused !== refusedReported) {
      refusedReported = refused;
      tell(`refused ${refused} ${lastRefusal}`);
    }
    if (final || acceptor.wakeups !== wakeupsReported) {
      wakeupsReported = acceptor.wakeups;
      tell(`accept accepted=${acceptor.accepted} wakeups=${acceptor.wakeups} wasted=${acceptor.wasted} waits=${loop.stats().waits}`);
    }
    if (connections.served === reported) return;
    reported = connections.served;
    tell(`served ${reported}`);
  };
  loop.timer(EV.PERSIST, () => report()).add(1000);

  let stopping = false;
  // FPM's child takes one connection and reads its request before it accepts again. This
  // worker accepts one at a time (batch 1) and reads it at once (Connections.add), but the
  // request may not be there yet; waiting for it, the worker would be woken for the next
  // connection too (EPOLLEXCLUSIVE wakes the first waiter), and if the first request then
  // blocks (a busy page), the second waits behind it while a sibling idles. So, with siblings,
  // while a connection it took has sent nothing yet, the worker stops accepting: for at most a
  // sweep tick, so that a client that connects and says nothing holds nobody up for long.
  let gated = false;
  const gate = loop.timer(0, () => openGate());
  const openGate = () => {
    gate.del();
    if (!gated) return;
    gated = false;
    if (!stopping) acceptor.resume();
  };
  const gateAccepting = (fresh: number) => {
    if (options.workers < 2 || stopping) return;
    if (fresh === 0) return openGate();
    if (gated || gate.pending) return;
    gated = true;
    acceptor.pause();
    gate.add(connections.tickMs);
  };
  /** The end of a graceful stop; `cut` connections were still open at the deadline. */
  const finish = (cut: number) => {
    report(true);
    tell(`drained: ${connections.closedIdle} closed idle, ${cut} cut off`);
    loop.stop();
  };
  const stopGracefully = () => {
    if (stopping) return;
    stopping = true;
    finishing = true;
    scoreboard.setState(record, State.Finishing);
    acceptor.pause(); // gives the accept mutex back too
    // With EXCLUSIVE, a connection whose wake-up came to this worker wakes no other: take it,
    // and whatever else is queued (a batch is one connection), which the last process to close
    // the listener would reset otherwise.
    while (acceptor.acceptPending() > 0);
    acceptor.close();
    net.close(LISTEN_FD); // the master's and the other workers' copies keep the port open
    loop.timer(0, () => finish(connections.closeAll())).add(options.graceMs);
    connections.drain(() => finish(0));
  };

  loop.signal('SIGTERM', stopGracefully);
  loop.signal('SIGQUIT', () => {
    connections.closeAll();
    report(true);
    process.exit(0);
  });
  // Ctrl-C in a terminal signals the whole process group; the master answers it by stopping
  // the workers gracefully, so a worker leaves SIGINT to the master.
  loop.signal('SIGINT', () => {});
  // The master never writes: readable means EOF, the master is gone. Stop rather than linger.
  loop.event(CONTROL_FD, EV.READ, (ev) => {
    const n = net.read(CONTROL_FD, new Uint8Array(64));
    if (n === 0 || (n < 0 && n !== net.EAGAIN)) {
      ev.del();
      stopGracefully();
    }
  }).add();

  // Counted once everything above holds its fds. With select, the default cap is what fits
  // below FD_SETSIZE, so that the cap (and accept_disabled before it) stops accepting before
  // an fd select cannot watch comes up; a larger --worker-connections is obeyed, and the
  // Acceptor closes and counts each connection past the limit.
  const fit = connectionsThatFit(loop.mechanism);
  const maxConnections = options.workerConnections ?? Math.min(DEFAULT_WORKER_CONNECTIONS, fit ?? Infinity);
  if (fit !== null && maxConnections > fit) {
    tell(`note: --worker-connections ${maxConnections} is more than ${loop.mechanism} can watch here (${fit}); connections past that are closed`);
  }
  // How the workers share new connections (--accept). exclusive: of the workers blocked on
  // this shared listener, the kernel wakes one per connection instead of all of them (the
  // thundering herd; poll and select ignore EV.EXCLUSIVE). mutex: only the worker holding the
  // accept mutex watches the listener; the others try again every mutexDelayMs (500, nginx's
  // accept_mutex_delay). reuseport: this worker's own socket, which no other worker accepts on
  // (but its successor in a reload), so there is nobody to yield to. none: every worker
  // watches the shared listener and wakes for every connection.
  // One accept per readiness (nginx's multi_accept off): the listener is level-triggered, so
  // this worker comes back for the next at once, while the others woken meanwhile take their
  // share. A batch would let the one worker woken first drain a whole burst: under `npm run
  // soak`, one worker took all 100 of wrk's connections and the other idled for the minute.
  // Past 7/8 of its cap a worker yields accept turns to the others (nginx's accept_disabled).
  const mutex = options.accept === 'mutex' ? new AcceptMutex(region, MUTEX_OFFSET) : undefined;
  // The listener below the connections (priority -1): in an iteration where both are ready, the
  // requests already read are served first, so a worker about to block in a long request (the
  // busy page) does not take a new connection first, which would wait behind it while another
  // worker is idle (FPM's children accept only when idle). With the mutex too: the accept takes
  // the lock again for itself (Acceptor), so running it last costs at most a wasted wake-up.
  const acceptor = new Acceptor(loop, LISTEN_FD, (fd) => {
    scoreboard.countAccepted(record);
    connections.add(fd);
  }, {
    priority: -1,
    exclusive: options.accept === 'exclusive',
    mutex,
    batch: 1,
    maxConnections,
    yieldNearCap: options.workers > 1 && options.accept !== 'reuseport',
    onRefused,
  });

  scoreboard.setState(record, State.Idle);
  tell('ready');
  loop.run();
  loop.close();
  process.exit(0);
}

/** One line to the master. Lines are tiny and rare: if the socket is full, the line is dropped (counts are cumulative). */
function tell(line: string): void {
  net.write(CONTROL_FD, Buffer.from(line + '\n', 'latin1'));
}
