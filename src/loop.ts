import { EventEmitter } from 'node:events';
import { fstatSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EV, OP_ADD, OP_MODIFY, OP_REMOVE } from './flags.js';
import { EvpollError, errnoName, invalidArg, systemError } from './errors.js';
import { debug, debugging, interestNames } from './debug.js';
import { Event, type EventCallback } from './event.js';
import { resolveMechanism } from './mechanisms.js';
import { addon, type NativeBackend } from './native.js';
import { instantiateCore, RETIRED, type CoreExports } from './core.js';
import { SignalSet, type SignalEvent, type SignalName } from './signals.js';
import { ChildWatchers, type ChildCallback, type ChildEvent } from './child.js';
import { read } from './net.js';

export interface EventLoopOptions {
  /** 'epoll', 'poll' or 'select', case-insensitive. Default: EVPOLL_MECHANISM, else the first available. */
  mechanism?: string;
  /** fds at or above this are refused at add() (FPM's max_fd). Default 1048576, at most 2**26. */
  maxFd?: number;
  /**
   * The monotonic clock timers run on, in ms. Default performance.now. A test can pass a
   * clock it advances by hand, to make timer behaviour exact (runOnce(0) then never waits
   * on a timer, only polls).
   */
  clock?: () => number;
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
const MAX_TIMEOUT = 0x7fffffff;

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

/**
 * @internal For the tests' iterate() in start mode: `hook(ran)` after each integrated-mode
 * batch. Exported from this module only, not from the package.
 */
export let setAfterBatchHook: (loop: EventLoop, hook: ((ran: number) => void) | undefined) => void;

/**
 * PHP-FPM's event loop (fpm_events.c): fd events and timers over one backend. One iteration is
 * three crossings whatever the number of events: the core's next timeout, the backend's wait
 * (which writes ready records straight into the core's memory), and the core's collect (which
 * turns records and due timers into a dispatch list); then the callbacks run.
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
  #core: CoreExports;
  #buffer: ArrayBuffer;
  #i32: Int32Array;
  #f64: Float64Array;
  /** Pending Events by slot: the only strong references the loop keeps. */
  #events: (Event<any> | undefined)[] = [];
  /** The dispatch list being walked; entries past #next survive a throwing callback. */
  #listBase = 0;
  /** Int32 index of the core's shared words (dispatch list, ready area, ready capacity). */
  #shared: number;
  /** Float64 index of the earliest timer deadline among the shared words. */
  #earliest: number;
  #next = 0;
  #length = 0;
  #running = false;
  /** #running because integrated mode is dispatching a batch (not run()/runOnce()). */
  #pumping = false;
  #stopRequested = false;
  #closed = false;
  /** Integrated mode (start()): riding on Node's event loop. */
  #started = false;
  #refed = true;
  /** Whether the native watcher and the Node timer currently keep the process alive. */
  #keepingAlive = false;
  #timer: NodeJS.Timeout | undefined;
  /** performance.now() at which #timer fires, or Infinity. */
  #timerAt = Infinity;
  #continuation: NodeJS.Immediate | undefined;
  /** An #afterChange() is queued as a microtask (add()/del() outside a batch, while started). */
  #changeQueued = false;
  /**
   * poll and select: integrated mode waits on a helper thread (epoll's own fd is polled by
   * libuv). After a batch that found records the JS thread polls again itself on the next
   * turn, and only hands back to the helper when that finds nothing: a busy loop then never
   * pays the two thread hand-offs per batch.
   */
  readonly #pollsOnHelper: boolean;
  /** Records the last takeBatch() returned. */
  #lastTaken = 0;
  /** integrated mode's take: what #pump gathers from (NODE_DEBUG's version tells of the helper's batches). */
  readonly #take: (buffer: ArrayBuffer, offset: number, capacity: number) => number;
  /** NODE_DEBUG only (poll, select): the helper thread has the wait / has posted a batch not yet taken. */
  #helperWaits = false;
  #helperPosted = false;
  /** Test hook (setAfterBatchHook): called after each batch dispatched in integrated mode. */
  #afterBatchHook: ((ran: number) => void) | undefined;
  #signals: SignalSet | undefined;
  #children: ChildWatchers | undefined;
  #now: () => number;
  #fdLimit: number;
  /** The highest fd watched so far (see FD_JUMP). */
  #fdHigh = 0;
  #addSyscall: string;
  #waitSyscall: string;

  static {
    setAfterBatchHook = (loop, hook) => {
      loop.#afterBatchHook = hook;
    };
  }

  constructor(options: EventLoopOptions = {}) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const maxFd = options.maxFd ?? DEFAULT_MAX_FD;
    if (!isNonNegativeInteger(maxFd) || maxFd < 1 || maxFd > MAX_MAX_FD) {
      throw invalidArg(`maxFd must be an integer from 1 to ${MAX_MAX_FD}, got ${String(maxFd)}`);
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') throw invalidArg('clock must be a function returning ms');
    this.#now = options.clock ?? (() => performance.now());
    const m = resolveMechanism(options.mechanism);
    this.mechanism = m.name;
    this.supportEdgeTrigger = m.supportEdgeTrigger;
    this.supportExclusive = m.name === 'epoll';
    this.maxFd = maxFd;
    this.#fdLimit = m.name === 'select' ? Math.min(maxFd, addon.FD_SETSIZE) : maxFd;
    this.#addSyscall = m.name === 'epoll' ? 'epoll_ctl' : 'fcntl';
    this.#waitSyscall = m.name === 'epoll' ? 'epoll_wait' : m.name;
    this.#pollsOnHelper = m.name !== 'epoll';
    this.#take = debugging && this.#pollsOnHelper ? this.#takeLogged : (buffer, offset, capacity) => this.#backend.takeBatch(buffer, offset, capacity);
    this.#core = instantiateCore();
    this.#backend = new addon.Backend(m.name, maxFd);
    const shared = this.#core.sharedPtr();
    this.#shared = shared >> 2;
    this.#earliest = (shared + 16) >> 3;
    this.#buffer = this.#core.memory.buffer;
    this.#i32 = new Int32Array(this.#buffer);
    this.#f64 = new Float64Array(this.#buffer);
    debug('loop created: mechanism %s, maxFd %d', this.mechanism, maxFd);
  }

  /** fpm_event_set: an fd event watching READ and/or WRITE (EDGE optional). */
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
   * start(). Returns the Event already added; its callback gets (ev, EV.READ, name); del()
   * stops watching (the last del() of a signal puts its previous handler back). Every signal
   * sent is seen at least once; the kernel may merge signals sent close together.
   */
  signal(name: SignalName, callback: EventCallback<SignalName>): SignalEvent {
    this.#checkOpen();
    this.#signals ??= new SignalSet(this, read);
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
    this.#children ??= new ChildWatchers(this);
    return this.#children.create(pid, callback).add();
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
      while (!this.#stopRequested && !this.#closed && (this.#liveCount() > 0 || this.#next < this.#length)) {
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
    if (this.#started) this.#detach();
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
    if (this.#started) return this;
    // From a callback of a started loop's batch (stop() then start()) it simply re-attaches.
    if (this.#running && !this.#pumping) throw new EvpollError('ERR_EVPOLL_BUSY', 'start() called while run()/runOnce() is driving the loop');
    this.#started = true;
    this.#backend.startWatching(debugging && this.#pollsOnHelper ? this.#onHelperBatch : () => this.#pump());
    if (debugging) {
      this.#helperWaits = this.#pollsOnHelper;
      debug(this.#pollsOnHelper ? `started (integrated mode): ${this.mechanism}'s wait handed to a helper thread` : `started (integrated mode): libuv polls ${this.mechanism}'s fd`);
    }
    this.#keepingAlive = true; // the watcher starts ref'd
    this.#afterChange();
    // Entries left by a callback that threw while detached, or timers already due.
    this.#scheduleContinuation();
    return this;
  }

  /** Whether start() is in effect. */
  get started(): boolean {
    return this.#started;
  }

  /** As Node's handles: a ref'd started loop with something registered keeps the process alive (the default). */
  ref(): this {
    this.#refed = true;
    this.#afterChange();
    return this;
  }

  /** An unref'd loop does not keep the process alive on its own. */
  unref(): this {
    this.#refed = false;
    this.#afterChange();
    return this;
  }

  /** FPM's clean: releases the backend (its fd) and every registration; the loop is unusable after. */
  close(): void {
    if (this.#closed) return;
    if (this.#started) this.#detach();
    this.#signals?.close();
    this.#children?.close();
    this.#closed = true;
    for (const ev of this.#events) if (ev) ev._slot = -1;
    this.#events = [];
    this.#length = this.#next = 0;
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

  #checkIdle(what: string): void {
    if (this.#running) throw new EvpollError('ERR_EVPOLL_REENTRANT', `${what} called from inside a callback of the same loop`);
    if (this.#started) throw new EvpollError('ERR_EVPOLL_BUSY', `${what} called while the loop is started (integrated mode); stop() it first`);
  }

  #detach(): void {
    this.#started = false;
    this.#backend.stopWatching();
    this.#keepingAlive = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#continuation) clearImmediate(this.#continuation);
    this.#continuation = undefined;
    this.#helperWaits = this.#helperPosted = false;
    debug('stopped (integrated mode)');
  }

  /**
   * Integrated mode, after anything that may change the nearest deadline or whether the loop
   * has anything registered: arm the Node timer (only ever earlier: a timer that fires with
   * nothing due just re-arms) and keep the process alive only while ref'd with work.
   */
  #afterChange(): void {
    if (!this.#started) return;
    const alive = this.#refed && this.#liveCount() > 0;
    if (alive !== this.#keepingAlive) {
      this.#keepingAlive = alive;
      if (alive) this.#backend.ref();
      else this.#backend.unref();
    }
    const now = this.#now();
    const timeout = this.#timeoutFrom(now);
    if (timeout >= 0 && now + timeout < this.#timerAt) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timerAt = now + timeout;
      // libuv's clock is cached per turn in whole ms: this may fire a little early, and then
      // collect() finds nothing due and the timer is simply armed again.
      this.#timer = setTimeout(this.#onTimer, timeout);
    }
    if (this.#timer) {
      if (alive) this.#timer.ref();
      else this.#timer.unref();
    }
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#pump();
  };

  /**
   * add()/del() outside a batch while started: the Node timer and keep-alive state follow once
   * per tick, not once per call (a program adding 1M timers would otherwise make 1M clock
   * reads and core calls more). Nothing can fire before the microtask runs.
   */
  #changed(): void {
    if (this.#changeQueued) return;
    this.#changeQueued = true;
    queueMicrotask(this.#flushChange);
  }

  #flushChange = (): void => {
    this.#changeQueued = false;
    this.#afterChange();
  };

  #scheduleContinuation(): void {
    if (this.#continuation || !this.#started) return;
    this.#continuation = setImmediate(() => {
      this.#continuation = undefined;
      this.#pump();
    });
    // An unref'd loop (or one with nothing registered) must not keep the process alive
    // through its own continuation, as it would not through its watcher.
    if (!this.#keepingAlive) this.#continuation.unref();
  }

  /** Integrated mode: one batch — whatever is ready now (never blocking) plus due timers. */
  #pump(): void {
    if (!this.#started || this.#running) return;
    this.#running = this.#pumping = true;
    let ran = 0;
    this.#lastTaken = 0;
    try {
      if (this.#next < this.#length) {
        ran = this.#dispatch();
      } else {
        ran = this.#gather(this.#take);
      }
    } catch (err) {
      // The rest of the batch stays queued (as after a throw in runOnce()) and runs on the
      // next turn of Node's loop.
      this.#running = this.#pumping = false;
      this.#scheduleContinuation();
      this.#afterBatch(ran);
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else throw err;
      return;
    }
    this.#running = this.#pumping = false;
    this.#afterBatch(ran);
  }

  #afterBatch(ran: number): void {
    if (this.#started && !this.#closed) {
      if (this.#pollsOnHelper && this.#lastTaken > 0) this.#scheduleContinuation();
      else {
        this.#backend.rearm();
        // A posted batch not yet taken is posted again instead (integrate.h): no hand-off then.
        if (debugging && this.#pollsOnHelper && !this.#helperWaits && !this.#helperPosted) {
          this.#helperWaits = true;
          debug('%s: wait handed back to the helper thread', this.mechanism);
        }
      }
      this.#afterChange();
    }
    this.#afterBatchHook?.(ran);
  }

  /** NODE_DEBUG's onReady (poll, select): the helper thread has posted a batch. */
  #onHelperBatch = (): void => {
    this.#helperWaits = false;
    this.#helperPosted = true;
    this.#pump();
  };

  /** NODE_DEBUG's takeBatch (poll, select): one line per batch the helper hands back, not per record. */
  #takeLogged = (buffer: ArrayBuffer, offset: number, capacity: number): number => {
    const n = this.#backend.takeBatch(buffer, offset, capacity);
    if (this.#helperPosted) {
      this.#helperPosted = false;
      debug('%s: batch back from the helper thread (%s)', this.mechanism, n < 0 ? errnoName(n) : n === 1 ? '1 record' : `${n} records`);
    }
    // Records taken on this thread send a waiting helper back to wait for rearm() (integrate.h).
    if (n > 0) this.#helperWaits = false;
    return n;
  };

  /**
   * Before reading the core's memory after anything that may have grown it (memory.grow
   * detaches the old buffer and every view of it). add() and del() do not call this: asking
   * for memory.buffer costs more than the rest of a timer add(); the readers check instead.
   */
  #refreshViews(): void {
    const buffer = this.#core.memory.buffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.#i32 = new Int32Array(buffer);
      this.#f64 = new Float64Array(buffer);
    }
  }

  /** Live registrations (the core's pendingCount()), read from the shared words. */
  #liveCount(): number {
    if (this.#i32.length === 0) this.#refreshViews();
    return this.#i32[this.#shared + 3];
  }

  /**
   * The core's nextTimeout(now), from the earliest deadline in the shared words: whole ms until
   * the nearest timer, rounded up so a wait never ends before it; 0 if due; -1 if none.
   */
  #timeoutFrom(now: number): number {
    if (this.#i32.length === 0) this.#refreshViews();
    const d = this.#f64[this.#earliest] - now;
    if (d === Infinity) return -1;
    if (d <= 0) return 0;
    return d >= MAX_TIMEOUT ? MAX_TIMEOUT : Math.ceil(d);
  }

  #iterate(timeoutMs: number | undefined): number {
    // Entries left by a callback that threw: finish them before waiting again (libevent's
    // active queue), so no readiness of an edge-triggered fd or due timer is lost.
    if (this.#next < this.#length) return this.#dispatch();
    let timeout = this.#timeoutFrom(this.#now());
    if (timeoutMs !== undefined) {
      const cap = Math.min(Math.ceil(timeoutMs), MAX_TIMEOUT);
      timeout = timeout < 0 ? cap : Math.min(timeout, cap);
    } else if (timeout < 0 && this.#liveCount() === 0) {
      return 0; // nothing registered: waiting forever would never end
    }
    if (debugging) return this.#gather((buffer, offset, capacity) => this.#waitLogged(timeout, buffer, offset, capacity));
    return this.#gather((buffer, offset, capacity) => this.#backend.wait(timeout, buffer, offset, capacity));
  }

  /**
   * NODE_DEBUG's wait. The backends fold EINTR into 0 records (backend.h); the kernel never ends
   * an epoll_wait, poll or select before its timeout otherwise, so no records before the
   * timeout is how an interrupted wait is told (a 0 ms wait cannot be told from one).
   */
  #waitLogged(timeout: number, buffer: ArrayBuffer, offset: number, capacity: number): number {
    const started = performance.now();
    const count = this.#backend.wait(timeout, buffer, offset, capacity);
    if (count === 0 && timeout !== 0) {
      const ms = performance.now() - started;
      if (timeout < 0) debug('%s wait -> EINTR (no records, no timeout)', this.mechanism);
      else if (ms < timeout) debug('%s wait -> EINTR (no records after %s of %d ms)', this.mechanism, ms.toFixed(1), timeout);
    }
    return count;
  }

  /** Takes ready records from the backend into the core's memory, collects, dispatches. */
  #gather(take: (buffer: ArrayBuffer, offset: number, capacity: number) => number): number {
    const core = this.#core;
    // Where the ready area is: read from the words the core keeps current, not asked for. The
    // memory.buffer getter is asked only when the view is detached (length 0): memory grew.
    if (this.#i32.length === 0) this.#refreshViews();
    const shared = this.#shared;
    const readyPtr = this.#i32[shared + 1];
    const capacity = this.#i32[shared + 2];
    const count = take(this.#buffer, readyPtr, capacity);
    if (count < 0) {
      if (debugging) debug('%s %s -> %s', this.mechanism, this.#pumping ? 'takeBatch' : 'wait', errnoName(count));
      throw systemError(count, this.#waitSyscall);
    }
    this.#lastTaken = count;
    this.#length = core.collect(this.#now(), count);
    if (count === capacity) core.growReady(); // a full wait may have left fds unreported
    if (this.#i32.length === 0) this.#refreshViews();
    this.#listBase = this.#i32[shared] >> 2;
    this.#next = 0;
    return this.#dispatch();
  }

  #dispatch(): number {
    let ran = 0;
    while (this.#next < this.#length && !this.#closed) {
      // A callback's add() may have grown the memory: a detached view has length 0.
      if (this.#i32.length === 0) this.#refreshViews();
      const at = this.#listBase + 2 * this.#next++;
      const slot = this.#i32[at];
      const which = this.#i32[at + 1];
      const ev = this.#events[slot];
      if (ev === undefined) continue; // deleted by an earlier callback of this batch
      if (which & RETIRED) {
        // The core has already removed it (invalid fd, one-shot timer): it may be added again.
        this.#events[slot] = undefined;
        ev._slot = -1;
      }
      ran++;
      ev.callback(ev, which & ~RETIRED, ev.arg);
    }
    return ran;
  }

  /** @internal Event.add */
  _add(ev: Event<any>, timeoutMs: unknown): void {
    this.#checkOpen();
    const ms = checkTimeout(timeoutMs, 'timeoutMs');
    const core = this.#core;
    if (ev.fd < 0) {
      const now = this.#now();
      if (ev._slot >= 0 && core.timerReschedule(ev._slot, now, ms)) {
        if (this.#started && !this.#running) this.#changed();
        return;
      }
      if (ev._slot >= 0) this.#events[ev._slot] = undefined; // fired one-shot, callback not yet run
      ev._slot = core.timerAdd(now, ms, ev.flags);
      this.#events[ev._slot] = ev;
      if (this.#started && !this.#running) this.#changed();
      return;
    }
    if (ev._slot >= 0) return; // a pending fd event stays as it is
    const fd = ev.fd;
    if (fd >= this.#fdLimit) throw this.#fdLimitError(fd);
    if (fd > this.#fdHigh + FD_JUMP && !isOpen(fd)) throw systemError(-9, this.#addSyscall);
    const slot = core.watch(fd, ev.flags & (EV.READ | EV.WRITE | EV.EDGE | EV.EXCLUSIVE));
    const op = core.lastOpKind();
    if (op === OP_ADD || op === OP_MODIFY) {
      const interest = core.lastOpInterest();
      const gen = core.lastOpGen() >>> 0;
      const rc = op === OP_ADD ? this.#backend.add(fd, interest, gen) : this.#backend.modify(fd, interest, gen);
      if (debugging) this.#debugRegistration(op, fd, interest, rc);
      if (rc < 0) {
        core.release(slot, this.#walked()); // the backend refused: leave the core as it was
        throw systemError(rc, this.#addSyscall);
      }
    }
    ev._slot = slot;
    this.#events[slot] = ev;
    if (fd > this.#fdHigh) this.#fdHigh = fd;
    if (this.#started && !this.#running) this.#changed();
  }

  /** @internal Event.del */
  _del(ev: Event<any>): boolean {
    this.#checkOpen();
    const slot = ev._slot;
    if (slot < 0) return false;
    ev._slot = -1;
    this.#events[slot] = undefined;
    if (this.#core.release(slot, this.#walked()) && ev.fd >= 0) {
      const core = this.#core;
      const op = core.lastOpKind();
      // Errors are ignored: an fd closed behind the loop's back has left the backend already.
      if (op === OP_REMOVE) {
        const rc = this.#backend.remove(ev.fd);
        if (debugging) this.#debugRegistration(op, ev.fd, 0, rc);
      } else if (op === OP_MODIFY) {
        const interest = core.lastOpInterest();
        const rc = this.#backend.modify(ev.fd, interest, core.lastOpGen() >>> 0);
        if (debugging) this.#debugRegistration(op, ev.fd, interest, rc);
      }
    }
    if (this.#started && !this.#running) this.#changed();
    return true;
  }

  /** NODE_DEBUG's line for a registration change: `epoll add fd 5 READ|EDGE -> 0`. */
  #debugRegistration(op: number, fd: number, interest: number, rc: number): void {
    const what = op === OP_REMOVE ? '' : ` ${interestNames(interest)}`;
    debug('%s %s fd %d%s -> %s', this.mechanism, BACKEND_CALLS[op], fd, what, rc < 0 ? errnoName(rc) : String(rc));
  }

  /**
   * 1 when no later entry of the dispatch list will be read (its last callback may be running):
   * a released slot can then be reused at once without an entry reaching the wrong Event.
   */
  #walked(): number {
    return this.#next >= this.#length ? 1 : 0;
  }

  #fdLimitError(fd: number): EvpollError {
    if (this.mechanism === 'select' && fd >= addon.FD_SETSIZE) {
      return new EvpollError(
        'ERR_EVPOLL_FD_LIMIT',
        `fd ${fd} is beyond select's FD_SETSIZE (${addon.FD_SETSIZE}); use the 'epoll' or 'poll' mechanism for fds this high`,
      );
    }
    return new EvpollError('ERR_EVPOLL_FD_LIMIT', `fd ${fd} is beyond this loop's maxFd (${this.maxFd})`);
  }
}
