// Integrated mode (loop.start()): the loop rides on Node's own event loop instead of blocking
// its thread. This file is the JS half of the hand-off; native/integrate.h is the other half.
//
// The hand-off, once:
//
// 1. start(): the native Watcher begins calling onReady() on the JS thread (through
//    napi_make_callback, so nextTick and microtasks run after each batch as after Node's own
//    callbacks) whenever the backend has, or may have, ready fds:
//    - epoll: libuv polls the epoll fd itself (uv_poll_t), a readable epoll fd is the signal;
//    - poll, select (the mechanism's `helperThread`): a helper thread waits on a snapshot of
//      the registered set and posts the records it found through a uv_async_t; it then waits
//      for rearm() before it waits again, or a level-triggered fd not yet read would spin it.
// 2. onReady() -> one batch: takeBatch() (never blocking: epoll hands out the records the
//    watcher read ahead, or waits with a zero timeout; poll and select hand out the helper's
//    records, or poll the live set now when none are posted), the core's collect (due timers
//    join the ready fds), the callbacks.
// 3. A batch that took records and ran them all returns true: the watcher looks again in the
//    same wake-up (epoll: a non-blocking epoll_wait of its own; poll, select: onReady() again,
//    whose take polls the live set), up to a budget of batches and time per wake-up, so that
//    Node's own I/O, timers and immediates are never starved. At low concurrency that saves a
//    whole turn of Node's loop per event (native/integrate.h).
// 4. Otherwise the wait goes back to Node's side: rearm() (for poll and select it lets the
//    helper wait again, or calls onReady() again at once if records of its batch are still
//    untaken; epoll has nothing to hand back: libuv goes on polling its fd). A batch run
//    outside a wake-up (from the Node timer or an immediate) that took records calls rearm()
//    too, which for poll and select then posts a wake-up of its own for the next turn: a busy
//    loop on a helper thread never pays the two thread switches per batch.
// 5. The nearest evpoll timer drives one Node timer (armed only ever earlier: one that fires
//    with nothing due just re-arms). The watcher, that timer and the continuation keep the
//    process alive only while the loop is ref'd and has something registered.
import { debug, debugging } from './debug.js';
import { errnoName } from './errors.js';
import type { NativeBackend } from './native.js';

/** onReady()'s flags (native/integrate.h's kReadyPosted, kReadyWakeUp). */
const READY_POSTED = 1;
const READY_WAKE_UP = 2;

/** Takes ready records into `buffer` at `offset`: how many, or -errno. */
export type Take = (buffer: ArrayBuffer, offset: number, capacity: number) => number;

/** What the driver asks of its loop. */
export interface IntegratedHost {
  /** The loop's clock, in ms. */
  now(): number;
  /** Registrations that keep the loop alive (the core's live count). */
  liveCount(): number;
  /** Whole ms until the nearest timer at `now`: 0 if due, -1 if none. */
  timeoutFrom(now: number): number;
  /** Whether any timer is scheduled (else there is no need to read the clock). */
  anyTimer(): boolean;
  /** Whether a batch has callbacks to run without a wait: a throw's rest, or activated events. */
  leftOver(): boolean;
  /**
   * One batch, unless the loop is already running one (returns false): the entries a throwing
   * callback left, else `take`, collect and dispatch. Throws what a callback threw.
   */
  batch(take: Take): boolean;
  /** A callback of a batch threw: the loop's 'error' event, or rethrown. */
  error(err: unknown): void;
  /** The loop's prepare hooks: the wait is about to go (back) to Node's side. */
  prepare(): void;
}

export class IntegratedDriver {
  #started = false;
  #refed = true;
  /** Whether the native watcher and the Node timer currently keep the process alive. */
  #keepingAlive = false;
  #timer: NodeJS.Timeout | undefined;
  /** The loop's clock time at which #timer fires, or Infinity. */
  #timerAt = Infinity;
  #continuation: NodeJS.Immediate | undefined;
  /** A #afterChange() is queued as a microtask (add()/del() outside a batch). */
  #changeQueued = false;
  /** Records the last batch's take returned. */
  #lastTaken = 0;
  /**
   * The wait was handed back to Node's side this many times: once per wake-up of the watcher
   * (however many batches it ran), once per batch run from the Node timer or an immediate.
   */
  handoffs = 0;
  /** NODE_DEBUG only (helper thread): the helper has the wait / has posted a batch not yet taken. */
  #helperWaits = false;
  #helperPosted = false;
  readonly #take: Take;

  constructor(
    private readonly host: IntegratedHost,
    private readonly backend: NativeBackend,
    private readonly mechanism: string,
    /** The mechanism waits on a helper thread in this mode (poll, select). */
    private readonly helperThread: boolean,
  ) {
    const takeBatch = backend.takeBatch;
    this.#take = debugging && helperThread ? this.#takeLogged : (buffer, offset, capacity) => (this.#lastTaken = takeBatch(buffer, offset, capacity));
  }

  get started(): boolean {
    return this.#started;
  }

  start(): void {
    this.host.prepare(); // a hook that throws leaves the loop as it was
    this.#started = true;
    this.backend.startWatching(debugging && this.helperThread ? this.#onHelperBatch : this.#onReady);
    if (debugging) {
      this.#helperWaits = this.helperThread;
      debug(this.helperThread ? `started (integrated mode): ${this.mechanism}'s wait handed to a helper thread` : `started (integrated mode): libuv polls ${this.mechanism}'s fd`);
    }
    this.#keepingAlive = true; // the watcher starts ref'd
    this.afterChange();
    // Entries left by a callback that threw while detached, or timers already due; with a
    // helper thread, what is ready now too, before its first wait. (epoll's fd is polled by
    // libuv from its next turn on: a cold setImmediate here costs more than that.)
    if (this.helperThread || this.host.leftOver() || this.#timerAt <= this.host.now()) this.#scheduleContinuation();
  }

  stop(): void {
    this.#started = false;
    this.backend.stopWatching();
    this.#keepingAlive = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#continuation) clearImmediate(this.#continuation);
    this.#continuation = undefined;
    this.#helperWaits = this.#helperPosted = false;
    debug('stopped (integrated mode)');
  }

  setRef(refed: boolean): void {
    this.#refed = refed;
    this.afterChange();
  }

  /**
   * After anything that may change the nearest deadline or whether the loop has anything
   * registered: arm the Node timer and keep the process alive only while ref'd with work.
   */
  afterChange(): void {
    if (!this.#started) return;
    const host = this.host;
    const leftOver = host.leftOver(); // a throw's rest, or events activated from outside a batch
    const alive = this.#refed && (host.liveCount() > 0 || leftOver);
    if (alive !== this.#keepingAlive) {
      this.#keepingAlive = alive;
      if (alive) this.backend.ref();
      else this.backend.unref();
    }
    // No timer scheduled: nothing to arm, no clock to read (this runs after every batch).
    if (host.anyTimer()) {
      const now = host.now();
      const timeout = host.timeoutFrom(now);
      if (timeout >= 0 && now + timeout < this.#timerAt) {
        if (this.#timer) clearTimeout(this.#timer);
        this.#timerAt = now + timeout;
        // libuv's clock is cached per turn in whole ms: this may fire a little early, and then
        // collect() finds nothing due and the timer is simply armed again.
        this.#timer = setTimeout(this.#onTimer, timeout);
      }
    }
    if (leftOver) this.#scheduleContinuation();
    if (this.#timer) {
      if (alive) this.#timer.ref();
      else this.#timer.unref();
    }
  }

  /**
   * add()/del() outside a batch: the Node timer and keep-alive state follow once per tick, not
   * once per call (a program adding 1M timers would otherwise make 1M clock reads and core
   * calls more). Nothing can fire before the microtask runs.
   */
  changed(): void {
    if (!this.#started || this.#changeQueued) return;
    this.#changeQueued = true;
    queueMicrotask(this.#flushChange);
  }

  #flushChange = (): void => {
    this.#changeQueued = false;
    this.afterChange();
  };

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#pump(false);
  };

  #scheduleContinuation(): void {
    if (this.#continuation || !this.#started) return;
    this.#continuation = setImmediate(() => {
      this.#continuation = undefined;
      this.#pump(false);
    });
    // An unref'd loop (or one with nothing registered) must not keep the process alive
    // through its own continuation, as it would not through its watcher.
    if (!this.#keepingAlive) this.#continuation.unref();
  }

  /** The watcher's onReady (native/integrate.h): one batch; true to have it look again at once. */
  #onReady = (flags: number): boolean => {
    if (flags & READY_WAKE_UP) this.handoffs++; // a wake-up ends with the wait back on Node's side
    return this.#pump(true);
  };

  /**
   * One batch: whatever is ready now (never blocking) plus due timers. `native`: run by the
   * watcher's wake-up loop; returns true when the batch took records and ran them all, so that
   * the watcher looks again (only the wake-up loop asks).
   */
  #pump(native: boolean): boolean {
    if (!this.#started) return false;
    if (!native) this.handoffs++; // back to Node's side after it (a wake-up counts in #onReady)
    this.#lastTaken = 0;
    let failed = false;
    let failure: unknown;
    try {
      if (!this.host.batch(this.#take)) return false;
    } catch (err) {
      // The rest of the batch stays queued (as after a throw in runOnce()) and runs on the
      // next turn of Node's loop.
      failed = true;
      failure = err;
      this.#scheduleContinuation();
    }
    try {
      this.#afterBatch(native && !failed);
    } catch (err) {
      // A prepare hook threw (the wait went back all the same).
      if (!failed) {
        failed = true;
        failure = err;
      }
    }
    if (failed) {
      this.host.error(failure);
      return false;
    }
    return native && this.#started && this.#lastTaken > 0;
  }

  /** `wakeUp`: the watcher's wake-up loop looks again itself after a batch that took records. */
  #afterBatch(wakeUp: boolean): void {
    if (!this.#started) return;
    try {
      this.host.prepare();
    } finally {
      if (this.#started) this.#handBack(wakeUp);
    }
  }

  #handBack(wakeUp: boolean): void {
    if (this.helperThread && this.#lastTaken > 0) {
      // Look again before handing the wait back to the helper: the wake-up loop does when it
      // ran this batch; otherwise rearm() posts a wake-up of its own for the next turn.
      if (!wakeUp) this.backend.rearm();
    } else if (this.helperThread) {
      this.backend.rearm();
      // A posted batch not yet taken is posted again instead (integrate.h): no hand-off then.
      if (debugging && !this.#helperWaits && !this.#helperPosted) {
        this.#helperWaits = true;
        debug('%s: wait handed back to the helper thread', this.mechanism);
      }
    }
    this.afterChange();
  }

  /** NODE_DEBUG's onReady (helper thread): READY_POSTED when the helper has posted a batch. */
  #onHelperBatch = (flags: number): boolean => {
    if (flags & READY_POSTED) {
      this.#helperWaits = false;
      this.#helperPosted = true;
    }
    return this.#onReady(flags);
  };

  /** NODE_DEBUG's take (helper thread): one line per batch the helper hands back, not per record. */
  #takeLogged = (buffer: ArrayBuffer, offset: number, capacity: number): number => {
    const n = this.backend.takeBatch(buffer, offset, capacity);
    this.#lastTaken = n;
    if (this.#helperPosted) {
      this.#helperPosted = false;
      debug('%s: batch back from the helper thread (%s)', this.mechanism, n < 0 ? errnoName(n) : n === 1 ? '1 record' : `${n} records`);
    }
    // Records taken on this thread send a waiting helper back to wait for rearm() (integrate.h).
    if (n > 0) this.#helperWaits = false;
    return n;
  };
}
