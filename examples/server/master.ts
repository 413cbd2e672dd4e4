// The master (FPM's master process): owns the listening socket (with --accept reuseport, one per
// worker slot) and the shared memory holding the scoreboard (and, with --accept mutex, the
// accept mutex); runs FPM's process manager over the workers, and turns signals into stops and
// reloads. Its EventLoop runs in integrated mode (start()), because it also needs Node's own
// loop for child_process 'exit' events. What FPM's master does with its loop, this one does:
//
//   a 1 s timer      fpm_pctl_perform_idle_server_maintenance_heartbeat: grow or shrink the
//                    pool by its process manager (--pm), sample the listen queue
//   a request timer  fpm_pctl_heartbeat: log requests running past --request-slowlog-timeout,
//                    kill workers whose request runs past --request-terminate-timeout
//   READ | EDGE      fpm_pctl_on_socket_accept (--pm ondemand): on the listener, start a worker
//                    when a connection waits and none is idle
//
//   SIGTERM, SIGINT  graceful stop: workers stop accepting, finish what is in flight, exit
//   SIGQUIT          immediate stop
//   SIGUSR2          reload: replace the workers one at a time, each old one stopped only
//                    once its successor accepts (the listener is never closed, so no
//                    connection is refused)
import { spawn, type ChildProcess } from 'node:child_process';
import { EV, EventLoop, type Event } from 'evpoll';
import * as net from 'evpoll/net';
import { AcceptMutex, SharedRegion } from 'evpoll/shm';
import { CONTROL_FD, LISTEN_FD, LineReader, MUTEX_OFFSET, SHM_FD, type AcceptMode } from './control.js';
import { Scoreboard, State, epochNow, regionBytes, type ProcessManager } from './scoreboard.js';

/** FPM's process manager settings (its pool directives' names in comments). */
export interface PoolOptions {
  pm: ProcessManager; // pm
  maxChildren: number; // pm.max_children (--workers)
  startServers: number; // pm.start_servers
  minSpareServers: number; // pm.min_spare_servers
  maxSpareServers: number; // pm.max_spare_servers
  maxSpawnRate: number; // pm.max_spawn_rate
  processIdleTimeoutMs: number; // pm.process_idle_timeout
  requestTerminateTimeoutMs: number; // request_terminate_timeout (0: off)
  requestSlowlogTimeoutMs: number; // request_slowlog_timeout (0: off)
}

export interface MasterOptions {
  host: string;
  port: number;
  pool: PoolOptions;
  mechanism?: string;
  /** Default: exclusive where the mechanism has exclusive wake-ups, mutex elsewhere. */
  accept?: AcceptMode;
  statusIntervalMs: number;
  /** How long a gracefully stopping worker may take before it is killed. */
  graceMs: number;
  /** The command line that starts one worker, [script, ...args]; the master adds --mechanism, --accept and --record. */
  workerCommand: string[];
}

/** A worker that dies sooner than this after its start counts as failing; failures back off exponentially. */
const QUICK_DEATH_MS = 5000;
/** FPM's maintenance heartbeat (FPM_IDLE_CHECK_FREQ): one second. */
const MAINTENANCE_MS = 1000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;

interface Worker {
  child: ChildProcess;
  pid: number;
  slot: number;
  /** Its record in the scoreboard. */
  record: number;
  /** ready: accepting; retiring: told to stop, or stopping by itself at max-requests (its exit is expected). */
  state: 'starting' | 'ready' | 'retiring';
  /** Why it is retiring, for the line logged when it exits. */
  why: string;
  /** Killed by the master for running past --request-terminate-timeout: replaced at once, not a crash. */
  terminated: boolean;
  /** The request (the record's requestSeq) already logged as slow. */
  slowLogged: number;
  startedAt: number;
  served: number;
  /** Connections it closed because its loop could not watch them (cumulative, as it reports). */
  refused: number;
  /** Its last `accept accepted=A wakeups=W wasted=X waits=Y` report, printed when it exits. */
  acceptCounts: string;
  control: LineReader;
  controlEvent: Event<Worker> | null;
}

export function runMaster(options: MasterOptions): void {
  const pool = options.pool;
  const loop = new EventLoop({ mechanism: options.mechanism });
  const accept = options.accept ?? (loop.supportExclusive ? 'exclusive' : 'mutex');
  // reuseport: one socket per worker slot, all made here (nginx makes them in its master too).
  // Holding them, the master keeps the port bound whatever its workers do, and a slot's
  // connections queued while its worker is gone (a death, a reload) wait in its socket for the
  // next worker of that slot, which inherits it, instead of being reset when the socket closes.
  // The kernel hashes connections over every socket in the group, so every slot needs a
  // worker: reuseport goes with --pm static only (main.ts refuses the others).
  let listeners: number[] = [net.listen(options.host, options.port, { reusePort: accept === 'reuseport' })];
  const port = net.localPort(listeners[0]);
  if (accept === 'reuseport') {
    for (let slot = 1; slot < pool.maxChildren; slot++) listeners.push(net.listen(options.host, port, { reusePort: true }));
  }
  const listenerOf = (slot: number) => listeners[accept === 'reuseport' ? slot : 0];
  // The scoreboard (and the accept mutex before it), in memory each worker maps (fd 5). Records
  // for max-children workers, and as many again for those finishing beside their successors.
  const records = 2 * pool.maxChildren + 8;
  const region = SharedRegion.create(regionBytes(records), { name: 'evpoll-server' });
  const scoreboard = new Scoreboard(region, records);
  scoreboard.initPool(pool.pm, epochNow());
  const freeRecords = Array.from({ length: records }, (_, i) => records - 1 - i);
  const mutex = accept === 'mutex' ? new AcceptMutex(region, MUTEX_OFFSET) : null;
  const log = (line: string) => console.log(line);
  log(`listening on http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`);
  // static keeps the line it always had (scripts/soak.mjs and users' scripts read it); the others say their pm.
  const poolLine = pool.pm === 'static' ? `${pool.maxChildren} workers`
    : pool.pm === 'dynamic' ? `pm dynamic, ${pool.startServers} workers to start, ${pool.minSpareServers}-${pool.maxSpareServers} spare, at most ${pool.maxChildren}`
    : `pm ondemand, no worker until a connection waits, at most ${pool.maxChildren}, idle ones stopped after ${pool.processIdleTimeoutMs} ms`;
  log(`master ${process.pid}: ${poolLine}, mechanism ${loop.mechanism}`);
  log(`accept: ${accept}${accept === 'exclusive' && !loop.supportExclusive ? ` (${loop.mechanism} has no exclusive wake-ups: every worker wakes per connection, as with none)` : ''}`);

  /** Every worker process alive, retiring ones included. */
  const all = new Set<Worker>();
  /** The worker serving each slot, starting or ready (not a retiring one, nor a reload's successor until it is ready). */
  const slots: (Worker | undefined)[] = new Array(pool.maxChildren).fill(undefined);
  const failures: number[] = new Array(pool.maxChildren).fill(0);
  const respawns: (Event | undefined)[] = new Array(pool.maxChildren).fill(undefined);
  let served = 0;
  let refused = 0;
  let stopping: 'graceful' | 'immediate' | null = null;
  /** The slot being replaced by a reload, or -1. */
  let reloading = -1;
  /** FPM's idle_spawn_rate: how many the next dynamic spawn may start (doubles while the shortage lasts). */
  let spawnRate = 1;
  /** FPM's warn_max_children: this episode of "max children reached" is counted and logged. */
  let warnedMaxChildren = false;

  const spawnWorker = (slot: number): Worker | null => {
    const record = freeRecords.pop();
    if (record === undefined) {
      log(`no scoreboard record free for a worker in slot ${slot} (${all.size} workers finishing or running): not started`);
      return null;
    }
    const [mine, theirs] = net.socketpair();
    // Numbers in `stdio` are the master's fds, dup'ed to their index in the child (which clears
    // close-on-exec there; the master's own copies stay close-on-exec, so no worker inherits
    // another's control socket).
    const stdio: ('ignore' | 'inherit' | number)[] = ['ignore', 'inherit', 'inherit'];
    stdio[LISTEN_FD] = listenerOf(slot);
    stdio[CONTROL_FD] = theirs;
    stdio[SHM_FD] = region.fd;
    const child = spawn(process.execPath, [...options.workerCommand, '--mechanism', loop.mechanism, '--accept', accept, '--record', String(record)], { stdio });
    net.close(theirs);
    const w: Worker = {
      child, pid: child.pid ?? -1, slot, record, state: 'starting', why: '', terminated: false, slowLogged: 0,
      startedAt: performance.now(), served: 0, refused: 0, acceptCounts: '', control: new LineReader(mine), controlEvent: null,
    };
    scoreboard.claim(record, w.pid, epochNow());
    w.controlEvent = loop.event(mine, EV.READ, (_ev, _which, worker) => readControl(worker), w).add();
    child.on('exit', (code, signal) => onExit(w, code, signal));
    child.on('error', (err) => { // it could not be started (or signalled): as good as dead
      log(`worker ${w.pid}: ${err.message}`);
      if (child.pid === undefined) onExit(w, null, null);
    });
    all.add(w);
    return w;
  };

  /** Starts a worker into `slot`, which then counts as the pool's. */
  const fill = (slot: number) => {
    respawns[slot]?.del();
    respawns[slot] = undefined;
    const w = spawnWorker(slot);
    if (w !== null) slots[slot] = w;
  };

  const freeSlot = () => slots.findIndex((w, slot) => w === undefined && respawns[slot] === undefined);

  const readControl = (w: Worker) => {
    const { lines, ended } = w.control.read();
    for (const line of lines) {
      if (line === 'ready') onReady(w);
      else if (line.startsWith('served ')) {
        const count = Number(line.slice(7));
        served += count - w.served;
        w.served = count;
      } else if (line.startsWith('refused ')) {
        // `refused N why`: N cumulative, `why` the last one's reason (an fd beyond FD_SETSIZE).
        const [, count, why] = /^refused (\d+) (.*)$/.exec(line) ?? [];
        const more = Number(count) - w.refused;
        if (more > 0) {
          refused += more;
          w.refused = Number(count);
          log(`worker ${w.pid} refused ${more} connection${more === 1 ? '' : 's'}: ${why}`);
        }
      } else if (line.startsWith('accept ')) {
        w.acceptCounts = line.slice(7);
      } else if (line.startsWith('max-requests ')) {
        onMaxRequests(w, line.slice(13));
      } else if (line.startsWith('drained: ') || line.startsWith('note: ')) {
        // How its graceful stop went (connections closed idle, and cut off at the deadline); a note on its settings.
        log(`worker ${w.pid} ${line}`);
      }
    }
    if (ended && w.controlEvent) {
      w.controlEvent.del();
      w.controlEvent = null;
      net.close(w.control.fd);
    }
  };

  const onReady = (w: Worker) => {
    if (w.state !== 'starting') return;
    w.state = 'ready';
    log(`worker ${w.pid} ready`);
    if (stopping) return void w.child.kill(stopping === 'graceful' ? 'SIGTERM' : 'SIGQUIT');
    const old = slots[w.slot];
    slots[w.slot] = w;
    if (old && old !== w) retire(old, '');
    if (reloading === w.slot) reloadNext(w.slot + 1);
    rearmOndemand();
  };

  const retire = (w: Worker, why: string) => {
    w.state = 'retiring';
    w.why = why;
    if (slots[w.slot] === w) slots[w.slot] = undefined;
    w.child.kill('SIGTERM');
  };

  // FPM's pm.max_requests: the worker has answered its share and is finishing what it holds;
  // its successor starts now, so the pool keeps its size (the listener stays open meanwhile:
  // connections wait in its queue, none is refused). Not a crash: no back-off.
  const onMaxRequests = (w: Worker, count: string) => {
    if (w.state === 'retiring' || stopping) return;
    w.state = 'retiring';
    w.why = `after ${count} requests (max-requests)`;
    if (slots[w.slot] !== w) return;
    slots[w.slot] = undefined;
    failures[w.slot] = 0;
    fill(w.slot);
  };

  const onExit = (w: Worker, code: number | null, signal: NodeJS.Signals | null) => {
    if (!all.has(w)) return;
    if (w.controlEvent) readControl(w); // its last count may still be in the socket
    if (w.controlEvent) {
      w.controlEvent.del();
      net.close(w.control.fd);
      w.controlEvent = null;
    }
    all.delete(w);
    // nginx's ngx_shmtx_force_unlock in ngx_process_get_status: a worker that died (or was
    // killed) between a turn and the end of its wait leaves the lock held, and no other worker
    // would ever accept again.
    if (mutex?.forceUnlock(w.pid)) log(`worker ${w.pid} held the accept mutex when it exited: unlocked`);
    scoreboard.release(w.record);
    freeRecords.push(w.record);
    if (w.acceptCounts) log(`worker ${w.pid} accept: ${w.acceptCounts}`);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (stopping) {
      log(`worker ${w.pid} exited (${how})`);
      if (all.size === 0) finish();
      return;
    }
    rearmOndemand();
    if (w.state === 'retiring') return log(`worker ${w.pid} retired (${how})${w.why ? `: ${w.why}` : ''}`);
    if (w.terminated) {
      // Killed for its request's length: replaced at once, as FPM does, and not a crash.
      log(`worker ${w.pid} exited (${how}) after request-terminate-timeout; replacing it`);
      if (slots[w.slot] === w) {
        slots[w.slot] = undefined;
        fill(w.slot);
      }
      return;
    }
    if (reloading === w.slot && slots[w.slot] !== w) {
      // The replacement died before accepting: keep the old worker, give up this reload (and
      // if the slot is empty meanwhile, respawn into it as below).
      log(`worker ${w.pid} exited before it was ready (${how}); reload abandoned`);
      reloading = -1;
      if (slots[w.slot] !== undefined) return;
    }
    if (slots[w.slot] === w) slots[w.slot] = undefined;
    const lived = performance.now() - w.startedAt;
    failures[w.slot] = lived < QUICK_DEATH_MS ? failures[w.slot] + 1 : 0;
    const delay = failures[w.slot] === 0 ? 0 : Math.min(BACKOFF_FIRST_MS * 2 ** (failures[w.slot] - 1), BACKOFF_MAX_MS);
    log(`worker ${w.pid} died (${how}); respawning in ${delay} ms`);
    respawns[w.slot] = loop.timer(0, (_ev, _which, slot: number) => {
      respawns[slot] = undefined;
      if (!stopping && slots[slot] === undefined) fill(slot);
    }, w.slot).add(delay);
  };

  const reloadNext = (slot: number) => {
    for (; slot < pool.maxChildren && slots[slot] === undefined; slot++); // empty slots (dynamic, ondemand) have nothing to replace
    if (slot >= pool.maxChildren) {
      reloading = -1;
      return log('reload done');
    }
    reloading = slot;
    if (spawnWorker(slot) === null) reloadNext(slot + 1); // becomes slots[slot] in onReady, which retires the old one and moves on
  };

  /** The pool as the process manager counts it: the slots' workers by their scoreboard state (a starting one counts idle, as FPM's new child does). */
  const census = () => {
    let idle = 0, active = 0, total = 0;
    /** The idle worker idle the longest, and since when. */
    let longestIdle: Worker | null = null;
    let idleSince = Infinity;
    for (const w of slots) {
      if (w === undefined) continue;
      total++;
      const r = scoreboard.brief(w.record);
      const state = r.pid === w.pid ? r.state : State.Starting;
      if (state === State.Active) active++;
      else if (state === State.Idle || state === State.Starting) {
        idle++;
        if (state === State.Idle && w.state === 'ready' && r.requestEnd < idleSince) {
          idleSince = r.requestEnd;
          longestIdle = w;
        }
      }
    }
    return { idle, active, total, longestIdle, idleSince };
  };

  const maxChildrenReached = (why: string) => {
    if (warnedMaxChildren) return;
    warnedMaxChildren = true;
    scoreboard.countMaxChildrenReached();
    log(`max children reached: ${why} (pm.max_children ${pool.maxChildren}); consider raising --max-children`);
  };

  const listenQueue = () => {
    let length = 0, limit = 0;
    for (const fd of listeners) {
      const q = net.listenQueue(fd);
      length += q.length;
      limit += q.limit;
    }
    return { length, limit };
  };

  // fpm_pctl_perform_idle_server_maintenance: once a second.
  const maintenance = () => {
    if (stopping) return;
    const c = census();
    scoreboard.noteActive(c.active);
    const queue = listeners.length ? listenQueue() : { length: 0, limit: 0 };
    scoreboard.setListenQueue(queue.length, queue.limit);
    if (pool.pm === 'ondemand') {
      // One idle worker per beat, the one idle the longest, once it passed process-idle-timeout.
      if (c.longestIdle !== null && epochNow() - c.idleSince > pool.processIdleTimeoutMs) {
        retire(c.longestIdle, `idle for more than ${pool.processIdleTimeoutMs} ms (process-idle-timeout)`);
      }
      // A connection waiting with nobody idle, whose edge came and went (the worker it would have
      // gone to died, or a level-triggered backend's event was off): start one now.
      if (queue.length > 0) onListenerReady();
      rearmOndemand();
      return;
    }
    if (pool.pm !== 'dynamic') return;
    if (c.idle > pool.maxSpareServers) {
      // One per beat, the one idle the longest (FPM's last_idle_child), gracefully.
      if (c.longestIdle !== null) retire(c.longestIdle, `as ${c.idle} were idle, more than max-spare-servers ${pool.maxSpareServers}`);
      spawnRate = 1;
      warnedMaxChildren = false;
      return;
    }
    if (c.idle < pool.minSpareServers) {
      if (c.total >= pool.maxChildren) {
        maxChildrenReached(`${c.idle} idle, fewer than min-spare-servers ${pool.minSpareServers}`);
        spawnRate = 1;
        return;
      }
      warnedMaxChildren = false;
      const n = Math.min(spawnRate, pool.minSpareServers - c.idle, pool.maxChildren - c.total);
      if (spawnRate >= 8) log(`seems busy: spawning ${n} workers, ${c.idle} idle, ${c.total} in all`);
      for (let k = 0; k < n; k++) {
        const slot = freeSlot();
        if (slot < 0) break;
        fill(slot);
      }
      spawnRate = Math.min(spawnRate * 2, pool.maxSpawnRate);
      return;
    }
    spawnRate = 1;
    warnedMaxChildren = false;
  };

  // fpm_pctl_on_socket_accept (--pm ondemand): the listener is readable, a connection waits.
  // Start a worker unless one is idle (or starting: it will take it) or the pool is full.
  // epoll: READ | EDGE, one wake-up per new connection, as FPM. poll and select have no edge
  // trigger: level-triggered, the event would fire on every iteration while the connection
  // waits for the worker starting for it; it is deleted after each wake-up instead, and added
  // back when the pool changes (a worker ready or gone) and at each maintenance beat.
  let ondemandEvent: Event | null = null;
  const onListenerReady = () => {
    if (stopping) return;
    if (!loop.supportEdgeTrigger) ondemandEvent?.del();
    const c = census();
    if (c.idle > 0) {
      warnedMaxChildren = false; // the episode is over: a worker is free again
      return;
    }
    if (c.total >= pool.maxChildren) return maxChildrenReached('a connection waits and no worker is idle');
    const slot = freeSlot();
    if (slot < 0) return;
    warnedMaxChildren = false;
    fill(slot);
  };
  const rearmOndemand = () => {
    if (ondemandEvent !== null && !stopping && !ondemandEvent.pending) ondemandEvent.add();
  };
  if (pool.pm === 'ondemand') {
    ondemandEvent = loop.event(listeners[0], EV.READ | EV.EDGE, onListenerReady).add();
  }

  // fpm_pctl_heartbeat: requests running too long, checked at a quarter of the shorter timeout
  // (at most every second, at least every 10 ms).
  const checkRequests = () => {
    const now = epochNow();
    for (const w of all) {
      const b = scoreboard.brief(w.record);
      if (b.pid !== w.pid || b.state !== State.Active || w.terminated) continue;
      const ms = Math.round(now - b.requestStart);
      const slow = pool.requestSlowlogTimeoutMs > 0 && ms >= pool.requestSlowlogTimeoutMs && w.slowLogged !== b.requestSeq;
      const overdue = pool.requestTerminateTimeoutMs > 0 && ms >= pool.requestTerminateTimeoutMs;
      if (!slow && !overdue) continue;
      const r = scoreboard.record(w.record); // its method and URI, for the log
      if (slow) {
        w.slowLogged = b.requestSeq;
        scoreboard.countSlow();
        log(`worker ${w.pid} slow request: ${r.method} ${r.uri} running for ${ms} ms (request-slowlog-timeout ${pool.requestSlowlogTimeoutMs} ms)`);
      }
      if (overdue) {
        // SIGKILL, not FPM's SIGTERM: a worker blocked in a request runs no JS, so it would only
        // note a SIGTERM and act on it when the request ends (evpoll's signals are delivered by
        // its loop), and a SIGTERM here means "stop gracefully", which waits for that very
        // request. Only this worker's connections are lost.
        w.terminated = true;
        log(`worker ${w.pid} request ${r.method} ${r.uri} running for ${ms} ms, past request-terminate-timeout ${pool.requestTerminateTimeoutMs} ms: killing it (SIGKILL)`);
        w.child.kill('SIGKILL');
      }
    }
  };
  const requestTimeouts = [pool.requestSlowlogTimeoutMs, pool.requestTerminateTimeoutMs].filter((t) => t > 0);
  if (requestTimeouts.length) {
    const every = Math.max(10, Math.min(1000, Math.floor(Math.min(...requestTimeouts) / 4)));
    loop.timer(EV.PERSIST, checkRequests).add(every);
  }

  const stop = (how: 'graceful' | 'immediate') => {
    if (stopping === how || stopping === 'immediate') return;
    stopping = how;
    reloading = -1;
    log(`${how} stop: ${all.size} workers`);
    for (const r of respawns) r?.del();
    ondemandEvent?.del();
    for (const fd of listeners) net.close(fd); // the workers' copies keep them open while they finish
    listeners = [];
    for (const w of all) w.child.kill(how === 'graceful' ? 'SIGTERM' : 'SIGQUIT');
    // A worker that does not go in time is killed.
    loop.timer(0, () => { for (const w of all) w.child.kill('SIGKILL'); }).add(how === 'graceful' ? options.graceMs + 2000 : 1000);
    if (all.size === 0) finish();
  };

  const status = () => {
    const c = census();
    // The refusals stay last (`, N connections refused`), where scripts read them.
    log(`status: ${all.size} workers alive, ${served} requests served, mechanism ${loop.mechanism}; ${c.idle} idle, ${c.active} active, ${c.total} total${refused ? `, ${refused} connections refused` : ''}`);
  };

  const finish = () => {
    status();
    loop.close();
    process.exit(0);
  };

  loop.signal('SIGTERM', () => stop('graceful'));
  loop.signal('SIGINT', () => stop('graceful'));
  loop.signal('SIGQUIT', () => stop('immediate'));
  loop.signal('SIGUSR2', () => {
    if (stopping) return;
    if (reloading >= 0) return log('reload already in progress');
    log('reloading');
    reloadNext(0);
  });
  loop.timer(EV.PERSIST, status).add(options.statusIntervalMs);
  loop.timer(EV.PERSIST, maintenance).add(MAINTENANCE_MS);

  const initial = pool.pm === 'static' ? pool.maxChildren : pool.pm === 'dynamic' ? pool.startServers : 0;
  for (let slot = 0; slot < initial; slot++) fill(slot);
  loop.start();
}
