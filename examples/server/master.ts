// The master (FPM's watcher): owns the listening socket (with --accept reuseport, one per
// worker slot) and, with --accept mutex, the shared memory holding the accept mutex; keeps
// `workers` worker processes running, and turns signals into stops and reloads. Its EventLoop
// runs in integrated mode (start()), because it also needs Node's own loop for child_process
// 'exit' events.
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
import { CONTROL_FD, LISTEN_FD, LineReader, MUTEX_OFFSET, SHM_BYTES, SHM_FD, type AcceptMode } from './control.js';

export interface MasterOptions {
  host: string;
  port: number;
  workers: number;
  mechanism?: string;
  /** Default: exclusive where the mechanism has exclusive wake-ups, mutex elsewhere. */
  accept?: AcceptMode;
  statusIntervalMs: number;
  /** How long a gracefully stopping worker may take before it is killed. */
  graceMs: number;
  /** The command line that starts one worker, [script, ...args]; the master adds --mechanism and --accept. */
  workerCommand: string[];
}

/** A worker that dies sooner than this after its start counts as failing; failures back off exponentially. */
const QUICK_DEATH_MS = 5000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;

interface Worker {
  child: ChildProcess;
  pid: number;
  slot: number;
  /** ready: accepting; retiring: told to stop (its exit is expected). */
  state: 'starting' | 'ready' | 'retiring';
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
  const loop = new EventLoop({ mechanism: options.mechanism });
  const accept = options.accept ?? (loop.supportExclusive ? 'exclusive' : 'mutex');
  // reuseport: one socket per worker slot, all made here (nginx makes them in its master too).
  // Holding them, the master keeps the port bound whatever its workers do, and a slot's
  // connections queued while its worker is gone (a death, a reload) wait in its socket for the
  // next worker of that slot, which inherits it, instead of being reset when the socket closes.
  let listeners: number[] = [net.listen(options.host, options.port, { reusePort: accept === 'reuseport' })];
  const port = net.localPort(listeners[0]);
  if (accept === 'reuseport') {
    for (let slot = 1; slot < options.workers; slot++) listeners.push(net.listen(options.host, port, { reusePort: true }));
  }
  const listenerOf = (slot: number) => listeners[accept === 'reuseport' ? slot : 0];
  // The accept mutex, in memory each worker maps (fd 5); the rest of the region is spare.
  const region = accept === 'mutex' ? SharedRegion.create(SHM_BYTES, { name: 'evpoll-server' }) : null;
  const mutex = region === null ? null : new AcceptMutex(region, MUTEX_OFFSET);
  const log = (line: string) => console.log(line);
  log(`listening on http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`);
  log(`master ${process.pid}: ${options.workers} workers, mechanism ${loop.mechanism}`);
  log(`accept: ${accept}${accept === 'exclusive' && !loop.supportExclusive ? ` (${loop.mechanism} has no exclusive wake-ups: every worker wakes per connection, as with none)` : ''}`);

  const all = new Set<Worker>();
  /** The worker serving each slot (undefined while a respawn waits out its back-off). */
  const slots: (Worker | undefined)[] = new Array(options.workers).fill(undefined);
  const failures: number[] = new Array(options.workers).fill(0);
  const respawns: (Event | undefined)[] = new Array(options.workers).fill(undefined);
  let served = 0;
  let refused = 0;
  let stopping: 'graceful' | 'immediate' | null = null;
  /** The slot being replaced by a reload, or -1. */
  let reloading = -1;

  const spawnWorker = (slot: number): Worker => {
    const [mine, theirs] = net.socketpair();
    // Numbers in `stdio` are the master's fds, dup'ed to their index in the child (which clears
    // close-on-exec there; the master's own copies stay close-on-exec, so no worker inherits
    // another's control socket).
    const stdio: ('ignore' | 'inherit' | number)[] = ['ignore', 'inherit', 'inherit'];
    stdio[LISTEN_FD] = listenerOf(slot);
    stdio[CONTROL_FD] = theirs;
    if (region !== null) stdio[SHM_FD] = region.fd;
    const child = spawn(process.execPath, [...options.workerCommand, '--mechanism', loop.mechanism, '--accept', accept], { stdio });
    net.close(theirs);
    const w: Worker = { child, pid: child.pid ?? -1, slot, state: 'starting', startedAt: performance.now(), served: 0, refused: 0, acceptCounts: '', control: new LineReader(mine), controlEvent: null };
    w.controlEvent = loop.event(mine, EV.READ, (_ev, _which, worker) => readControl(worker), w).add();
    child.on('exit', (code, signal) => onExit(w, code, signal));
    child.on('error', (err) => { // it could not be started (or signalled): as good as dead
      log(`worker ${w.pid}: ${err.message}`);
      if (child.pid === undefined) onExit(w, null, null);
    });
    all.add(w);
    return w;
  };

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
    if (old && old !== w) retire(old);
    if (reloading === w.slot) reloadNext(w.slot + 1);
  };

  const retire = (w: Worker) => {
    w.state = 'retiring';
    w.child.kill('SIGTERM');
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
    if (w.acceptCounts) log(`worker ${w.pid} accept: ${w.acceptCounts}`);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (stopping) {
      log(`worker ${w.pid} exited (${how})`);
      if (all.size === 0) finish();
      return;
    }
    if (w.state === 'retiring') return log(`worker ${w.pid} retired (${how})`);
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
      if (!stopping && slots[slot] === undefined) slots[slot] = spawnWorker(slot);
    }, w.slot).add(delay);
  };

  const reloadNext = (slot: number) => {
    if (slot >= options.workers) {
      reloading = -1;
      return log('reload done');
    }
    reloading = slot;
    respawns[slot]?.del();
    respawns[slot] = undefined;
    spawnWorker(slot); // becomes slots[slot] in onReady, which retires the old one and moves on
  };

  const stop = (how: 'graceful' | 'immediate') => {
    if (stopping === how || stopping === 'immediate') return;
    stopping = how;
    reloading = -1;
    log(`${how} stop: ${all.size} workers`);
    for (const r of respawns) r?.del();
    for (const fd of listeners) net.close(fd); // the workers' copies keep them open while they finish
    listeners = [];
    for (const w of all) w.child.kill(how === 'graceful' ? 'SIGTERM' : 'SIGQUIT');
    // A worker that does not go in time is killed.
    loop.timer(0, () => { for (const w of all) w.child.kill('SIGKILL'); }).add(how === 'graceful' ? options.graceMs + 2000 : 1000);
    if (all.size === 0) finish();
  };

  const status = () => log(`status: ${all.size} workers alive, ${served} requests served, mechanism ${loop.mechanism}${refused ? `, ${refused} connections refused` : ''}`);

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

  for (let slot = 0; slot < options.workers; slot++) slots[slot] = spawnWorker(slot);
  loop.start();
}
