import { EventEmitter } from 'node:events';
import { fstatSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EV, FD_READINESS, OP_ADD, OP_MODIFY, OP_REMOVE } from './flags.js';
import { EvpollError, errnoName, invalidArg, systemError } from './errors.js';
import { debug, debugging, interestNames } from './debug.js';
import { Event, type EventCallback } from './event.js';
import { mechanisms, resolveMechanism } from './mechanisms.js';
import { addon, type NativeBackend } from './native.js';
import { Core, MAX_TIMEOUT, RETIRED } from './core.js';
import { IntegratedDriver, type Take } from './integrated.js';
import { SignalSet, type SignalCallback, type SignalEvent, type SignalName } from './signals.js';
import { ChildWatchers, type ChildCallback, type ChildEvent } from './child.js';
import { VIRTUAL_FD_BASE, simulated } from './virtual.js';

export interface EventLoopOptions {
  /**
   * 'epoll', 'poll' or 'select', case-insensitive; 'sim' while a Simulation is installed
   * (evpoll/sim). Default: 'sim' while one is installed, else EVPOLL_MECHANISM, else the first
   * available.
   */
  mechanism?: string;
  /** fds at or above this are refused at add() (FPM's max_fd). Default 1048576, at most 2**26. */
  maxFd?: number;
  /**
   * The monotonic clock timers run on, in ms. Default performance.now. A test can pass a
   * clock it advances by hand, to make timer behaviour exact (runOnce(0) then never waits
   * on a timer, only polls). On 'sim' the default is the simulation's virtual clock.
   */
  clock?: () => number;
}

/**
 * What a loop has done since it was made (loop.stats(); libuv's uv_metrics_info is the model).
 * Counts only grow; times are in ms on the loop's clock.
 */
export interface LoopStats {
  /** Iterations: each run()/runOnce() iteration, and each batch in integrated mode. */
  iterations: number;
  /** Calls into the backend for ready records: waits in run()/runOnce(), takes in integrated mode. */
  waits: number;
  /** Ready records the backend reported (one per ready fd per wait, stale ones included). */
  records: number;
  /** Callbacks run (fd events and timers; a signal or child event counts as its loop's callback). */
  callbacks: number;
  /** Of those, timers that fired. */
  timersFired: number;
  /** Integrated mode: times the wait went back to Node's side (libuv's poll or the helper thread). */
  handoffs: number;
  /** run()/runOnce(): time blocked in the backend's wait. */
  waitMs: number;
  /** Time taking the batch apart and running its callbacks, in either mode. */
  dispatchMs: number;
  /** The WebAssembly core's memory (slot, fd and timer tables, dispatch list, ready area), in bytes. */
  coreBytes: number;
}

const DEFAULT_MAX_FD = 1 << 20;
/**
 * The core's fd table takes 16 bytes per fd number up to the highest watched, in a 32-bit
 * linear memory: beyond 2**26 (a GiB of table) its offsets would wrap. No process has that
 * many fds (Linux's default nr_open is 2**20).
 */
const MAX_MAX_FD = 1 << 26;
/**
 * An fd this far above every fd watched so far is checked to be open before the core grows
 * its table to it, so that a bogus number costs an EBADF, not megabytes of table.
 */
const FD_JUMP = 1 << 16;

/** The backend call that made a registration change, for NODE_DEBUG's line. */
const BACKEND_CALLS: Record<number, string> = { [OP_ADD]: 'add', [OP_MODIFY]: 'modify', [OP_REMOVE]: 'remove' };

function isNonNegativeInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

function checkTimeout(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw invalidArg(`${what} must be a finite number of milliseconds >= 0, got ${String(ms)}`);
  }
  return ms;
}

/** A per-iteration hook's callback; it gets its own handle (so it can del() itself). */
export type HookCallback = (hook: LoopHook) => void;

/** A hook made by loop.prepare() or loop.check(): runs every iteration until del(). */
export class LoopHook {
  /** @internal */
  constructor(
    private readonly list: Set<LoopHook>,
    readonly callback: HookCallback,
  ) {}

  /** Whether the hook still runs. */
  get pending(): boolean {
    return this.list.has(this);
  }

  /** Stops the hook (it does not run again, not even later in the same round): true if it was pending. */
  del(): boolean {
    return this.list.delete(this);
  }
}

/** Runs each hook of `list` that is still there when its turn comes (one may del() another). */
function runHooks(list: Set<LoopHook>): void {
  for (const hook of [...list]) if (list.has(hook)) hook.callback(hook);
}

/**
 * PHP-FPM's event loop (fpm_events.c): fd events and timers over one backend. One iteration is
 * three crossings whatever the number of events: the core's next timeout (read from its
 * memory), the backend's wait (which writes ready records straight into the core's memory),
 * and the core's collect (which turns records and due timers into a dispatch list); then the
 * callbacks run. run()/runOnce() drive it here; start() hands the driving to Node's event loop
 * (src/integrated.ts).
 */
export class EventLoop extends EventEmitter {
  /** The backend's name (fpm_event_machanism_name). */
  readonly mechanism: string;
  /** Whether EV.EDGE is honoured; elsewhere edge events are level-triggered (fpm_event_support_edge_trigger). */
  readonly supportEdgeTrigger: boolean;
  /** Whether EV.EXCLUSIVE is honoured (epoll's EPOLLEXCLUSIVE); elsewhere it is ignored. */
  readonly supportExclusive: boolean;
  readonly maxFd: number;

  #backend: NativeBackend;
  #core: Core;
  #driver: IntegratedDriver;
  /** Pending Events by slot: the only strong references the loop keeps. */
  #events: (Event<any> | undefined)[] = [];
  /** The dispatch list being walked: entries [#next, #length) survive a throwing callback. */
  #next = 0;
  #length = 0;
  #running = false;
  /** #running because integrated mode is dispatching a batch (not run()/runOnce()). */
  #pumping = false;
  #stopRequested = false;
  #closed = false;
  #signals: SignalSet | undefined;
  #children: ChildWatchers | undefined;
  #now: () => number;
  /** fds at or above this are refused: maxFd, or less where the mechanism has a limit of its own. */
  #fdLimit: number;
  /** The highest fd watched so far (see FD_JUMP), as the core numbers it. */
  #fdHigh = 0;
  /**
   * What the core and the backend number fds from: 0, or VIRTUAL_FD_BASE on 'sim', whose fds
   * are virtual (the core's fd table is indexed by fd - #fdBase).
   */
  #fdBase = 0;
  #addSyscall: string;
  #waitSyscall: string;
  #wait: NativeBackend['wait'];
  /**
   * Posted events (ev.activate()): a FIFO per priority, 2 first, with the activation each entry
   * was made for (an event deleted, or deleted and activated again, leaves a stale entry).
   */
  #posted: (Event<any> | undefined)[][] = [[], [], [], [], []];
  #postedSeqs: number[][] = [[], [], [], [], []];
  #postedHeads = [0, 0, 0, 0, 0];
  #postedCount = 0;
  #postSeq = 0;
  #prepares = new Set<LoopHook>();
  #checks = new Set<LoopHook>();
  #stats = { iterations: 0, waits: 0, records: 0, callbacks: 0, timersFired: 0, waitMs: 0, dispatchMs: 0 };

  constructor(options: EventLoopOptions = {}) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const maxFd = options.maxFd ?? DEFAULT_MAX_FD;
    if (!isNonNegativeInteger(maxFd) || maxFd < 1 || maxFd > MAX_MAX_FD) {
      throw invalidArg(`maxFd must be an integer from 1 to ${MAX_MAX_FD}, got ${String(maxFd)}`);
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') throw invalidArg('clock must be a function returning ms');
    const m = resolveMechanism(options.mechanism);
    const sim = m.name === 'sim' ? simulated! : undefined;
    this.#now = options.clock ?? (sim ? () => sim.now() : () => performance.now());
    this.mechanism = m.name;
    this.supportEdgeTrigger = m.supportEdgeTrigger;
    this.supportExclusive = m.supportExclusive;
    this.maxFd = maxFd;
    this.#fdLimit = m.fdLimit === null ? maxFd : Math.min(maxFd, m.fdLimit);
    this.#addSyscall = m.syscalls.add;
    this.#waitSyscall = m.syscalls.wait;
    this.#core = new Core();
    if (sim) this.#fdBase = VIRTUAL_FD_BASE;
    this.#backend = sim ? sim.backend() : new addon.Backend(m.name, maxFd);
    this.#wait = this.#backend.wait;
    this.#driver = new IntegratedDriver(
      {
        now: this.#now,
        liveCount: () => this.#core.live(),
        timeoutFrom: (now) => this.#core.timeout(now),
        anyTimer: () => this.#core.anyTimer(),
        leftOver: () => this.#next < this.#length || this.#postedCount > 0,
        batch: (take) => this.#batch(take),
        prepare: () => {
          if (this.#prepares.size > 0) runHooks(this.#prepares);
        },
        error: (err) => {
          if (this.listenerCount('error') > 0) this.emit('error', err);
          else throw err;
        },
      },
      this.#backend,
      m.name,
      m.helperThread,
    );
    debug('loop created: mechanism %s, maxFd %d', this.mechanism, maxFd);
  }

  /** fpm_event_set: an fd event watching READ, WRITE and/or PRI (EDGE optional). */
  event<A = any>(fd: number, flags: number, callback: EventCallback<A>, arg?: NoInfer<A>): Event<A> {
    // -1 is how the Event constructor is told "a timer": not an fd this method takes.
    if (fd === -1) throw invalidArg('fd must be an integer >= 0, got -1');
    return new Event<A>(this, fd, flags, callback, arg as A); // checks the arguments
  }

  /** fpm_event_set_timer: a timer (fd -1); EV.PERSIST makes it fire every add() frequency. */
  timer<A = any>(flags: number, callback: EventCallback<A>, arg?: NoInfer<A>): Event<A> {
    return new Event<A>(this, -1, flags, callback, arg as A); // checks the arguments
  }

  /**
   * Watches a signal: FPM's self-pipe, so it works in run() (a blocked loop hears it) and in
   * start(). Returns the SignalEvent already added; its callback gets (ev, EV.READ, name); del()
   * stops watching (the last del() of a signal puts its previous handler back). Every signal
   * sent is seen at least once; the kernel may merge signals sent close together.
   */
  signal(name: SignalName, callback: SignalCallback): SignalEvent {
    this.#checkOpen();
    this.#checkReal('loop.signal()', 'signals');
    this.#signals ??= new SignalSet(this);
    return this.#signals.create(name, callback).add();
  }

  /**
   * Watches a child process's exit through a pidfd (Linux >= 5.3), so a loop blocked in run()
   * learns of it although Node's loop, and so child_process's 'exit', cannot run. Returns the
   * event already added; when the child exits its callback runs once with (ev, EV.READ,
   * { pid, code, signal }) and the pidfd is closed. The child is not reaped: child_process still
   * reports its 'exit'. If child_process reaped it first (possible whenever Node's loop runs
   * before this loop looks: start(), or between runOnce() calls), code and signal are both null. Throws ESRCH (syscall 'pidfd_open') for no such
   * process, ECHILD (syscall 'waitid') for a process that is not this one's child.
   */
  child(pid: number, callback: ChildCallback): ChildEvent {
    this.#checkOpen();
    this.#checkReal('loop.child()', 'processes');
    this.#children ??= new ChildWatchers(this);
    return this.#children.create(pid, callback).add();
  }

  /**
   * libev's prepare watcher: `callback` runs before each wait, early enough that what it adds or
   * deletes, and the timers it sets, count for that wait. run()/runOnce(): before each backend
   * wait (not before an iteration that only finishes the entries a throwing callback left).
   * start(): when start() hands the wait to Node's loop, and after each batch, before the wait
   * goes back (to libuv, the helper thread, or the next turn's poll). Returns its handle (del()).
   */
  prepare(callback: HookCallback): LoopHook {
    return this.#hook(this.#prepares, callback);
  }

  /**
   * libev's check watcher: `callback` runs right after each wait, before the batch's callbacks
   * (the dispatch list is made: what it deletes does not run; timers it sets count from the next
   * iteration on). start(): after each take from the backend, before the batch's callbacks.
   * Returns its handle (del()).
   */
  check(callback: HookCallback): LoopHook {
    return this.#hook(this.#checks, callback);
  }

  #hook(list: Set<LoopHook>, callback: HookCallback): LoopHook {
    this.#checkOpen();
    if (typeof callback !== 'function') throw invalidArg('callback must be a function');
    const hook = new LoopHook(list, callback);
    list.add(hook);
    return hook;
  }

  /** One iteration: wait at most `timeoutMs` (default: until the nearest timer), dispatch; returns callbacks run. */
  runOnce(timeoutMs?: number): number {
    this.#checkOpen();
    if (timeoutMs !== undefined) checkTimeout(timeoutMs, 'timeoutMs');
    this.#checkIdle('runOnce()');
    this.#running = true;
    try {
      return this.#iterate(timeoutMs);
    } finally {
      this.#running = false;
    }
  }

  /** fpm_event_loop: iterate until stop() is called or nothing is registered. */
  run(): void {
    this.#checkOpen();
    this.#checkIdle('run()');
    this.#running = true;
    this.#stopRequested = false;
    try {
      while (!this.#stopRequested && !this.#closed && (this.#core.live() > 0 || this.#next < this.#length || this.#postedCount > 0)) {
        this.#iterate(undefined);
      }
    } finally {
      this.#running = false;
      this.#stopRequested = false;
    }
  }

  /**
   * run(): makes it return once the current iteration's callbacks have run. start(): detaches
   * the loop from Node's event loop (registrations stay; start() or run() again later).
   */
  stop(): void {
    this.#checkOpen();
    this.#stopRequested = true;
    if (this.#driver.started) this.#driver.stop();
  }

  /**
   * Integrated mode: the loop rides on Node's own event loop, so Node's timers, I/O,
   * child_process and signal handlers keep working while evpoll dispatches. epoll's own fd is
   * watched by libuv; poll and select wait on a helper thread that hands each batch over and
   * waits for it to be handled before polling again. The nearest evpoll timer drives one Node
   * timer. A callback that throws is emitted as 'error' if the loop has listeners, else it is
   * an uncaught exception.
   */
  start(): this {
    this.#checkOpen();
    if (this.#driver.started) return this;
    this.#checkReal('start()', "Node's own event loop, which runs on real time");
    // From a callback of a started loop's batch (stop() then start()) it simply re-attaches.
    if (this.#running && !this.#pumping) throw new EvpollError('ERR_EVPOLL_BUSY', 'start() called while run()/runOnce() is driving the loop');
    this.#driver.start();
    return this;
  }

  /** Whether start() is in effect. */
  get started(): boolean {
    return this.#driver.started;
  }

  /** As Node's handles: a ref'd started loop with something registered keeps the process alive (the default). */
  ref(): this {
    this.#driver.setRef(true);
    return this;
  }

  /** An unref'd loop does not keep the process alive on its own. */
  unref(): this {
    this.#driver.setRef(false);
    return this;
  }

  /** What the loop has done since it was made: a fresh object each call (LoopStats). */
  stats(): LoopStats {
    return { ...this.#stats, handoffs: this.#driver.handoffs, coreBytes: this.#closed ? 0 : this.#core.memoryBytes };
  }

  /** FPM's clean: releases the backend (its fd) and every registration; the loop is unusable after. */
  close(): void {
    if (this.#closed) return;
    if (this.#driver.started) this.#driver.stop();
    this.#signals?.close();
    this.#children?.close();
    this.#prepares.clear();
    this.#checks.clear();
    this.#closed = true;
    for (const ev of this.#events) if (ev) ev._slot = -1;
    this.#events = [];
    this.#length = this.#next = 0;
    for (const q of this.#posted) for (const ev of q) if (ev) ev._posted = 0;
    this.#posted = [[], [], [], [], []];
    this.#postedSeqs = [[], [], [], [], []];
    this.#postedHeads = [0, 0, 0, 0, 0];
    this.#postedCount = 0;
    this.#backend.close();
    debug('loop closed');
  }

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new EvpollError('ERR_EVPOLL_CLOSED', 'the event loop is closed');
  }

  /** @internal */
  _checkOpen(): void {
    this.#checkOpen();
  }

  /** Refuses on 'sim' what only the kernel has. */
  #checkReal(what: string, needs: string): void {
    if (this.#fdBase !== 0) {
      throw new EvpollError('ERR_EVPOLL_SIM_UNSUPPORTED', `${what} is not offered on the 'sim' mechanism: it needs ${needs}, which the simulation does not have`);
    }
  }

  #checkIdle(what: string): void {
    if (this.#running) throw new EvpollError('ERR_EVPOLL_REENTRANT', `${what} called from inside a callback of the same loop`);
    if (this.#driver.started) throw new EvpollError('ERR_EVPOLL_BUSY', `${what} called while the loop is started (integrated mode); stop() it first`);
  }

  /** Integrated mode's batch (IntegratedHost.batch): false if run()/runOnce() or a batch is running. */
  #batch(take: Take): boolean {
    if (this.#running) return false;
    this.#running = this.#pumping = true;
    try {
      if (this.#next < this.#length) this.#dispatch(this.#now());
      else this.#gather(take, 0); // `before` serves waitMs, which integrated mode does not keep
    } finally {
      this.#running = this.#pumping = false;
    }
    return true;
  }

  #iterate(timeoutMs: number | undefined): number {
    let now = this.#now();
    // Entries left by a callback that threw: finish them before waiting again (libevent's
    // active queue), so no readiness of an edge-triggered fd or due timer is lost.
    if (this.#next < this.#length) return this.#dispatch(now);
    if (this.#prepares.size > 0) {
      runHooks(this.#prepares);
      if (this.#closed) return 0;
      now = this.#now();
    }
    let timeout = this.#postedCount > 0 ? 0 : this.#core.timeout(now);
    if (timeoutMs !== undefined) {
      const cap = Math.min(Math.ceil(timeoutMs), MAX_TIMEOUT);
      timeout = timeout < 0 ? cap : Math.min(timeout, cap);
    } else if (timeout < 0 && this.#core.live() === 0) {
      return 0; // nothing registered: waiting forever would never end
    }
    if (debugging) return this.#gather((buffer, offset, capacity) => this.#waitLogged(timeout, buffer, offset, capacity), now);
    const wait = this.#wait;
    return this.#gather((buffer, offset, capacity) => wait(timeout, buffer, offset, capacity), now);
  }

  /**
   * NODE_DEBUG's wait. The backends fold EINTR into 0 records (backend.h); the kernel never ends
   * an epoll_wait, poll or select before its timeout otherwise, so no records before the
   * timeout is how an interrupted wait is told (a 0 ms wait cannot be told from one).
   */
  #waitLogged(timeout: number, buffer: ArrayBuffer, offset: number, capacity: number): number {
    const started = performance.now();
    const count = this.#wait(timeout, buffer, offset, capacity);
    if (count === 0 && timeout !== 0) {
      const ms = performance.now() - started;
      if (timeout < 0) debug('%s wait -> EINTR (no records, no timeout)', this.mechanism);
      else if (ms < timeout) debug('%s wait -> EINTR (no records after %s of %d ms)', this.mechanism, ms.toFixed(1), timeout);
    }
    return count;
  }

  /**
   * Takes ready records from the backend into the core's memory, collects, dispatches.
   * `before`: the clock when the iteration began (for waitMs).
   */
  #gather(take: Take, before: number): number {
    const core = this.#core;
    // Where the ready area is: read from the words the core keeps current, not asked for.
    const offset = core.readyOffset();
    const capacity = core.readyCapacity();
    const count = take(core.buffer, offset, capacity);
    const stats = this.#stats;
    stats.waits++;
    if (count < 0) {
      if (debugging) debug('%s %s -> %s', this.mechanism, this.#pumping ? 'takeBatch' : 'wait', errnoName(count));
      throw systemError(count, this.#waitSyscall);
    }
    stats.records += count;
    const now = this.#now();
    if (!this.#pumping) stats.waitMs += now - before;
    this.#length = core.collect(now, count, capacity);
    this.#next = 0;
    // A check hook that throws leaves the whole list to run next time, as a callback would.
    if (this.#checks.size > 0) runHooks(this.#checks);
    return this.#dispatch(now);
  }

  /** Runs the dispatch list from #next; `since`: the clock when this batch began (for dispatchMs). */
  #dispatch(since: number): number {
    const core = this.#core;
    const events = this.#events;
    const stats = this.#stats;
    stats.iterations++;
    let ran = 0;
    try {
      while (this.#next < this.#length && !this.#closed) {
        // A callback's add() may have grown the memory: a detached view has length 0.
        if (core.i32.length === 0) core.views();
        const at = core.listBase + 2 * this.#next++;
        const slot = core.i32[at];
        let which = core.i32[at + 1];
        const ev = events[slot];
        if (ev === undefined) continue; // deleted by an earlier callback of this batch
        if (which & RETIRED) {
          // The core has released it (invalid fd, one-shot timer): it may be added again.
          which &= ~RETIRED;
          events[slot] = undefined;
          ev._slot = -1;
        }
        ran++;
        if (which & EV.TIMEOUT) stats.timersFired++;
        ev.callback(ev, which, ev.arg);
      }
      // nginx's posted queue, after the batch: what the callbacks (or anything since the last
      // iteration) activated, highest priority first, then in activation order.
      while (this.#postedCount > 0 && !this.#closed) {
        const ev = this.#takePosted();
        if (ev === undefined) continue;
        const which = ev._posted;
        ev._posted = 0;
        ran++;
        ev.callback(ev, which, ev.arg);
      }
    } finally {
      stats.callbacks += ran;
      stats.dispatchMs += this.#now() - since;
    }
    return ran;
  }

  /** The next posted entry (highest priority, oldest); undefined if it is stale. */
  #takePosted(): Event<any> | undefined {
    let level = 0;
    while (this.#postedHeads[level] === this.#posted[level].length) level++;
    const queue = this.#posted[level];
    const seqs = this.#postedSeqs[level];
    const at = this.#postedHeads[level]++;
    const ev = queue[at]!;
    const seq = seqs[at];
    queue[at] = undefined;
    if (at + 1 === queue.length) {
      queue.length = seqs.length = 0;
      this.#postedHeads[level] = 0;
    }
    this.#postedCount--;
    return ev._postSeq === seq && ev._posted !== 0 ? ev : undefined;
  }

  /** @internal Event.activate (`which` checked) */
  _activate(ev: Event<any>, which: number): void {
    this.#checkOpen();
    if (ev._posted !== 0) {
      ev._posted |= which;
      return;
    }
    ev._posted = which;
    ev._postSeq = ++this.#postSeq;
    const level = 2 - ev._priority;
    this.#posted[level].push(ev);
    this.#postedSeqs[level].push(ev._postSeq);
    this.#postedCount++;
    if (!this.#running) this.#driver.changed();
  }

  /** @internal Event's priority setter (checked): a pending event's slot takes it at once. */
  _setPriority(ev: Event<any>): void {
    if (ev._slot >= 0 && !this.#closed) this.#core.setPriority(ev._slot, ev._priority);
  }

  /** @internal Event.add */
  _add(ev: Event<any>, timeoutMs: unknown): void {
    this.#checkOpen();
    const ms = checkTimeout(timeoutMs, 'timeoutMs');
    const core = this.#core;
    if (ev.fd < 0) {
      const now = this.#now();
      if (ev._slot >= 0 && core.timerReschedule(ev._slot, now, ms)) {
        if (!this.#running) this.#driver.changed();
        return;
      }
      if (ev._slot >= 0) this.#events[ev._slot] = undefined; // fired one-shot, callback not yet run
      ev._slot = core.timerAdd(now, ms, ev.flags);
      if (ev._priority !== 0) core.setPriority(ev._slot, ev._priority);
      this.#events[ev._slot] = ev;
      if (!this.#running) this.#driver.changed();
      return;
    }
    if (ev._slot >= 0) return; // a pending fd event stays as it is
    const fd = ev.fd - this.#fdBase;
    if (fd >= this.#fdLimit || fd < 0) throw this.#fdLimitError(ev.fd);
    if (fd > this.#fdHigh + FD_JUMP && !(this.#fdBase === 0 ? isOpen(fd) : simulated?.isOpen(ev.fd) === true)) throw systemError(-9, this.#addSyscall);
    const slot = core.watch(fd, ev.flags & (FD_READINESS | EV.EDGE | EV.EXCLUSIVE));
    const op = core.op;
    if (op === OP_ADD || op === OP_MODIFY) {
      const interest = core.opInterest;
      const rc = op === OP_ADD ? this.#backend.add(fd, interest, core.opGen) : this.#backend.modify(fd, interest, core.opGen);
      if (debugging) this.#debugRegistration(op, fd, interest, rc);
      if (rc < 0) {
        core.release(slot, this.#walked()); // the backend refused: leave the core as it was
        throw systemError(rc, this.#addSyscall);
      }
    }
    ev._slot = slot;
    if (ev._priority !== 0) core.setPriority(slot, ev._priority);
    this.#events[slot] = ev;
    if (fd > this.#fdHigh) this.#fdHigh = fd;
    if (!this.#running) this.#driver.changed();
  }

  /** @internal Event.del */
  _del(ev: Event<any>): boolean {
    this.#checkOpen();
    ev._posted = 0; // its activation, if any, is dropped
    const slot = ev._slot;
    if (slot < 0) return false;
    ev._slot = -1;
    this.#events[slot] = undefined;
    const core = this.#core;
    if (core.release(slot, this.#walked()) && ev.fd >= 0) {
      const op = core.op;
      // Errors are ignored: an fd closed behind the loop's back has left the backend already.
      if (op === OP_REMOVE) {
        const rc = this.#backend.remove(ev.fd - this.#fdBase);
        if (debugging) this.#debugRegistration(op, ev.fd, 0, rc);
      } else if (op === OP_MODIFY) {
        const rc = this.#backend.modify(ev.fd - this.#fdBase, core.opInterest, core.opGen);
        if (debugging) this.#debugRegistration(op, ev.fd, core.opInterest, rc);
      }
    }
    if (!this.#running) this.#driver.changed();
    return true;
  }

  /** NODE_DEBUG's line for a registration change: `epoll add fd 5 READ|EDGE -> 0`. */
  #debugRegistration(op: number, fd: number, interest: number, rc: number): void {
    const what = op === OP_REMOVE ? '' : ` ${interestNames(interest)}`;
    debug('%s %s fd %d%s -> %s', this.mechanism, BACKEND_CALLS[op], fd, what, rc < 0 ? errnoName(rc) : String(rc));
  }

  /**
   * Whether no later entry of the dispatch list will be read (its last callback may be running):
   * a released slot can then be reused at once without an entry reaching the wrong Event.
   */
  #walked(): boolean {
    return this.#next >= this.#length;
  }

  #fdLimitError(fd: number): EvpollError {
    if (this.#fdBase !== 0 && fd < this.#fdBase) {
      return new EvpollError('ERR_EVPOLL_SIM_UNSUPPORTED', `fd ${fd} is a real fd: a loop on the 'sim' mechanism watches only the simulation's virtual fds`);
    }
    if (this.#fdBase === 0 && fd >= VIRTUAL_FD_BASE && simulated?.isOpen(fd)) {
      return new EvpollError('ERR_EVPOLL_SIM_UNSUPPORTED', `fd ${fd} is a virtual fd (evpoll/sim): only a loop on the 'sim' mechanism can watch it`);
    }
    fd -= this.#fdBase;
    if (fd < this.maxFd) {
      // The mechanism's own limit (select's FD_SETSIZE): name the ones without one.
      const others = mechanisms().filter((m) => m.available && m.fdLimit === null).map((m) => `'${m.name}'`);
      return new EvpollError(
        'ERR_EVPOLL_FD_LIMIT',
        `fd ${fd} is beyond ${this.mechanism}'s FD_SETSIZE (${this.#fdLimit}); use the ${others.join(' or ')} mechanism for fds this high`,
      );
    }
    return new EvpollError('ERR_EVPOLL_FD_LIMIT', `fd ${fd} is beyond this loop's maxFd (${this.maxFd})`);
  }
}
