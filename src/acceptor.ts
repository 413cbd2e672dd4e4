// Accepting connections on a listening fd the way busy servers do: a batch per readiness
// (lighttpd), a cap on the connections open at once (lighttpd's max_conns, nginx's
// worker_connections), nginx's accept_disabled, which makes a worker near its cap leave new
// connections to the other workers sharing the listener, nginx's accept mutex, which lets one
// worker at a time watch the listener, and nginx's back-off when the process runs out of fds.
//
// Whenever the Acceptor must not accept (full, yielding, locked out, out of fds, paused) it
// deletes the listener's event rather than ignore its readiness: a listener stays readable while
// its backlog is non-empty, so a level-triggered loop that does not accept would wake at once,
// forever, at 100% CPU.
import { EV } from './flags.js';
import { EvpollError, invalidArg, systemError, type SystemError } from './errors.js';
import type { Event } from './event.js';
import type { EventLoop, LoopHook } from './loop.js';
import { mechanisms } from './mechanisms.js';
import * as net from './net.js';
import { AcceptMutex } from './shm.js';
import { VIRTUAL_FD_BASE, isVirtualFd } from './virtual.js';

export interface AcceptorOptions {
  /** Connections taken per readiness (lighttpd's batch). Default 100. */
  batch?: number;
  /**
   * Watch the listener with EV.EXCLUSIVE, so that of several processes sharing it only one is
   * woken per connection (epoll's EPOLLEXCLUSIVE; ignored where !loop.supportExclusive).
   */
  exclusive?: boolean;
  /**
   * Connections open at once (lighttpd's max_conns, nginx's worker_connections): the listener
   * is not watched while `connections` is at it, and a batch takes no more than the room left.
   * The owner reports each closed connection with release(). Past 7/8 of it the Acceptor
   * yields accept turns (acceptDisabled). Default Infinity.
   */
  maxConnections?: number;
  /**
   * Past 7/8 of maxConnections, yield accept turns (acceptDisabled), so that the other
   * processes sharing the listener take the new connections. Default true. false for a
   * listener no other process accepts on: yielding would only keep connections waiting (nginx
   * too leaves accept_disabled alone with a single worker).
   */
  yieldNearCap?: boolean;
  /**
   * While yielding, the longest an accept turn lasts: a timer bounds the loop's wait by it, so
   * that a worker with nothing else to do still counts its turns (nginx's accept_mutex_delay
   * plays this part). Default 50.
   */
  turnMs?: number;
  /**
   * nginx's accept mutex (evpoll/shm's AcceptMutex, on a region every process sharing the
   * listener maps): only the process holding it watches the listener. Each turn (an iteration
   * of the loop, before its wait) the Acceptor tries the lock, unless it is yielding; holding
   * it, it watches the listener for that wait; not, it deletes the listener from the loop and
   * tries again at the next turn, its wait bounded by mutexDelayMs. The lock is given back
   * after each wait; the accept itself runs at priority 2 (first in its batch), taking the lock
   * again for just the accept (nginx's posted-accept queue, run before the other events, with
   * the mutex released before those). Default: none.
   */
  mutex?: AcceptMutex;
  /**
   * The listener event's priority (EventLoop priorities, -2..2). Default: 2 with a mutex (the
   * accept runs first in its batch, as above), 0 otherwise. Lower than the connections' (-1,
   * say) makes a process serve the requests it has read before it takes a new connection: one
   * about to block in a long request then does not take a connection first that would wait
   * behind it, where another process could serve it (PHP-FPM's children accept only when idle).
   */
  priority?: number;
  /**
   * With `mutex`: the longest wait of a process that did not get the lock before it tries
   * again (nginx's accept_mutex_delay), in ms. Default 500.
   */
  mutexDelayMs?: number;
  /** How long the listener is ignored after EMFILE/ENFILE, in ms. Default 100. */
  backoffMs?: number;
  /** Told each time the process ran out of fds (`errno` is net.EMFILE or net.ENFILE) and the back-off started. */
  onBackoff?: (errno: number) => void;
  /**
   * Told of each accepted connection the loop could not watch (`err.code` ERR_EVPOLL_FD_LIMIT:
   * its fd is at or beyond select's FD_SETSIZE or the loop's maxFd). The Acceptor has closed it
   * already, and counted it in `refused`; it was never handed to onConnection.
   */
  onRefused?: (err: EvpollError) => void;
  /** An accept failure other than EAGAIN/EMFILE/ENFILE (EBADF, EINVAL: the listener is gone). Default: throw it. */
  onError?: (err: SystemError) => void;
}

/**
 * watching: the listener is watched (with a mutex: this process got the lock at this turn).
 * full: `connections` is at maxConnections. yielding: turns left to skip (acceptDisabled > 0).
 * locked-out: with a mutex, this process does not hold the lock (another does, or the next turn
 * tries it). backing-off: out of fds, a timer brings the listener back. paused: by pause().
 * closed: by close(). In every state but watching the listener's event is deleted from the
 * loop.
 */
export type AcceptorState = 'watching' | 'full' | 'yielding' | 'locked-out' | 'backing-off' | 'paused' | 'closed';

/**
 * Watches `listenFd` on `loop` and hands each accepted (nonblocking, close-on-exec) fd to
 * `onConnection`, which owns it from then on. The listener itself stays the caller's: close()
 * stops watching it but does not close it.
 */
export class Acceptor {
  readonly listenFd: number;
  readonly maxConnections: number;
  /** Times the process ran out of fds and backed off. */
  backoffs = 0;
  /** Accepted connections closed at once because the loop could not watch their fd (onRefused). */
  refused = 0;
  /** Connections accepted: handed to onConnection, or refused (acceptPending()'s too). */
  accepted = 0;
  /** Times the listener's readiness ran the Acceptor (its event's callbacks). */
  wakeups = 0;
  /**
   * Wake-ups that accepted nothing: another process took the connection first (EAGAIN; the
   * thundering herd), or took the accept mutex in the moment since this wait ended, or the
   * process was out of fds.
   */
  wasted = 0;
  /** What #settle() last put in place ('paused' only until the constructor's first settle). */
  #state: AcceptorState = 'paused';
  /** By pause(), until resume(). */
  #paused = false;
  #closed = false;
  #connections = 0;
  #acceptDisabled = 0;
  #batch: number;
  #backoffMs: number;
  #turnMs: number;
  #mutexDelayMs: number;
  #yieldNearCap: boolean;
  #mutex: AcceptMutex | null;
  /**
   * With a mutex: this turn's tryLock() succeeded (nginx's ngx_accept_mutex_held). It stays set
   * after the lock is given back at the end of the wait, so that the listener stays in the loop
   * (no syscall) while the next turn's tryLock() succeeds again.
   */
  #holding = false;
  /** The first fd the loop refuses to watch. */
  #fdLimit: number;
  #loop: EventLoop;
  #readable: Event<Acceptor>;
  #retry: Event<Acceptor>;
  #turnTimer: Event<Acceptor>;
  /** The interval #turnTimer was added with (turnMs or mutexDelayMs). */
  #turnTimerMs = 0;
  #turnHook: LoopHook | null = null;
  #waitEndHook: LoopHook | null = null;
  #onConnection: (fd: number) => void;
  #onBackoff: ((errno: number) => void) | undefined;
  #onRefused: ((err: EvpollError) => void) | undefined;
  #onError: ((err: SystemError) => void) | undefined;

  constructor(loop: EventLoop, listenFd: number, onConnection: (fd: number) => void, options: AcceptorOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const batch = options.batch ?? 100;
    const backoffMs = options.backoffMs ?? 100;
    const turnMs = options.turnMs ?? 50;
    const mutexDelayMs = options.mutexDelayMs ?? 500;
    const maxConnections = options.maxConnections ?? Infinity;
    if (!Number.isInteger(batch) || batch < 1) throw invalidArg(`batch must be an integer >= 1, got ${String(batch)}`);
    if (!(Number.isInteger(maxConnections) && maxConnections >= 1) && maxConnections !== Infinity) {
      throw invalidArg(`maxConnections must be an integer >= 1 or Infinity, got ${String(maxConnections)}`);
    }
    // Finite: these timers are armed from inside callbacks, where a refusal would leave the
    // listener switched off for good.
    if (typeof backoffMs !== 'number' || !Number.isFinite(backoffMs) || backoffMs < 0) {
      throw invalidArg(`backoffMs must be a finite number >= 0, got ${String(backoffMs)}`);
    }
    // Not 0 either: a PERSIST timer of 0 ms would make every yielded turn a wait that returns at once.
    if (typeof turnMs !== 'number' || !Number.isFinite(turnMs) || turnMs <= 0) {
      throw invalidArg(`turnMs must be a finite number > 0, got ${String(turnMs)}`);
    }
    if (typeof mutexDelayMs !== 'number' || !Number.isFinite(mutexDelayMs) || mutexDelayMs <= 0) {
      throw invalidArg(`mutexDelayMs must be a finite number > 0, got ${String(mutexDelayMs)}`);
    }
    const mutex = options.mutex ?? null;
    if (mutex !== null && !(mutex instanceof AcceptMutex)) throw invalidArg('mutex must be an AcceptMutex (evpoll/shm)');
    if (mutex?.region.closed) throw new EvpollError('ERR_EVPOLL_CLOSED', "the mutex's SharedRegion is closed");
    if (typeof onConnection !== 'function') throw invalidArg('onConnection must be a function');
    if (options.yieldNearCap !== undefined && typeof options.yieldNearCap !== 'boolean') throw invalidArg('yieldNearCap must be a boolean');
    for (const name of ['onBackoff', 'onRefused', 'onError'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw invalidArg(`${name} must be a function`);
    }
    this.listenFd = listenFd;
    this.maxConnections = maxConnections;
    this.#batch = batch;
    this.#backoffMs = backoffMs;
    this.#turnMs = turnMs;
    this.#mutexDelayMs = mutexDelayMs;
    this.#mutex = mutex;
    this.#yieldNearCap = options.yieldNearCap ?? true;
    this.#onConnection = onConnection;
    this.#onBackoff = options.onBackoff;
    this.#onRefused = options.onRefused;
    this.#onError = options.onError;
    this.#loop = loop;
    const ownLimit = mechanisms().find((m) => m.name === loop.mechanism)?.fdLimit ?? null;
    this.#fdLimit = ownLimit === null ? loop.maxFd : Math.min(loop.maxFd, ownLimit);
    const flags = EV.READ | (options.exclusive && loop.supportExclusive ? EV.EXCLUSIVE : 0);
    this.#readable = loop.event(listenFd, flags, (_ev, _which, self) => self.#onReadable(), this);
    // With a mutex, the accept runs first in its batch and gives the lock back before the
    // other callbacks (nginx's ngx_posted_accept_events, processed before ngx_posted_events).
    this.#readable.priority = options.priority ?? (mutex !== null ? 2 : 0);
    this.#retry = loop.timer(0, (_ev, _which, self) => self.#settle(), this);
    // It only has to end the wait: the turn is counted by the prepare hook that follows.
    this.#turnTimer = loop.timer(EV.PERSIST, () => {}, this);
    this.#settle();
  }

  get state(): AcceptorState {
    return this.#state;
  }

  /** Connections handed to onConnection and not yet reported closed with release(). */
  get connections(): number {
    return this.#connections;
  }

  /**
   * nginx's ngx_accept_disabled: maxConnections/8 − (maxConnections − connections), set as each
   * connection is taken (and lowered by release()). While it is > 0 the Acceptor is yielding:
   * each turn (an iteration of the loop) takes one off, and the listener is watched again once
   * it is 0. Always 0 when maxConnections is Infinity or yieldNearCap is false.
   */
  get acceptDisabled(): number {
    return this.#acceptDisabled;
  }

  /**
   * Reports `n` connections handed out by this Acceptor as closed, making room under
   * maxConnections. Call it once per connection, when its fd is closed (after close() too: the
   * count stays right). More than `connections` throws ERR_EVPOLL_INVALID_ARG.
   */
  release(n = 1): void {
    if (!Number.isInteger(n) || n < 0 || n > this.#connections) {
      throw invalidArg(`release(n): n must be an integer from 0 to connections (${this.#connections}), got ${String(n)}`);
    }
    this.#connections -= n;
    // Lowered, not recomputed: a worker that has room again needs no further turns, but one
    // still near its cap keeps yielding the turns it has left.
    this.#acceptDisabled = Math.min(this.#acceptDisabled, this.#disabledNow());
    this.#settle();
  }

  /**
   * Stops watching the listener: new connections wait in its backlog (or go to another process
   * sharing it). Gives the accept mutex back if this process holds it.
   */
  pause(): void {
    if (this.#closed) return;
    this.#paused = true;
    this.#retry.del();
    this.#settle();
  }

  /**
   * Watches the listener again, unless full or yielding (a pending back-off is cut short); with
   * a mutex, from the next turn that gets the lock.
   */
  resume(): void {
    if (this.#closed) return;
    this.#paused = false;
    this.#retry.del();
    this.#settle();
  }

  /**
   * Takes one batch of queued connections now (no more than maxConnections leaves room for),
   * whatever the state (not after close()); returns how many were handed over. For a process
   * leaving a listener it shares: call it after pause(), because with EV.EXCLUSIVE a connection
   * whose wake-up went to this process wakes no one else. It does not take the accept mutex.
   */
  acceptPending(): number {
    if (this.#closed) return 0;
    const room = this.maxConnections - this.#connections;
    if (room <= 0) return 0;
    const fds = net.accept(this.listenFd, Math.min(this.#batch, room));
    if (typeof fds === 'number') return 0; // EAGAIN or out of fds: nothing to hand over
    this.accepted += fds.length;
    const handed = this.#handOver(fds);
    this.#settle();
    return handed;
  }

  /**
   * Stops watching for good, and gives the accept mutex back if this process holds it. The
   * listening fd is left open: it belongs to the caller. After loop.close() there is nothing
   * left to stop: it only marks the Acceptor closed.
   */
  close(): void {
    this.#closed = true;
    this.#settle();
  }

  #onReadable(): void {
    this.wakeups++;
    const mutex = this.#mutex;
    // The lock went back when the wait ended (#waitEnded); taken again for just this accept. If
    // another process took it meanwhile, the connection is that one's: it watches the listener
    // now.
    if (mutex !== null && !mutex.tryLock()) {
      this.wasted++;
      return;
    }
    const room = this.maxConnections - this.#connections;
    const fds = room > 0 ? net.accept(this.listenFd, Math.min(this.#batch, room)) : net.EAGAIN;
    // Right after the accept, before the connections' handlers and the rest of the batch run.
    mutex?.unlock();
    if (typeof fds !== 'number') {
      this.accepted += fds.length;
      this.#handOver(fds);
      return this.#settle();
    }
    this.wasted++;
    if (room <= 0) return this.#settle(); // a readiness already collected when the cap was reached
    if (fds === net.EAGAIN) return; // another process (or an aborted connection) got there first
    if (fds === net.EMFILE || fds === net.ENFILE) {
      // nginx's ngx_disable_accept_events: the queued connections wait in the backlog until
      // fds are freed; no accept is retried before the timer, so no CPU is burnt meanwhile.
      this.#retry.add(this.#backoffMs);
      this.backoffs++;
      this.#settle();
      this.#onBackoff?.(fds);
      return;
    }
    const err = systemError(fds, 'accept4');
    if (this.#onError) this.#onError(err);
    else throw err;
  }

  /** Counts and hands over each of `fds`, or refuses it (closed, counted) if the loop could not watch it; returns how many were handed over. */
  #handOver(fds: number[]): number {
    let handed = 0;
    for (const fd of fds) {
      // A virtual fd (evpoll/sim) is numbered from VIRTUAL_FD_BASE, and so is the loop's limit.
      if ((isVirtualFd(fd) ? fd - VIRTUAL_FD_BASE : fd) >= this.#fdLimit) {
        // The lowest free fd is past what the loop can watch (select's FD_SETSIZE): every fd
        // below is taken. Refused rather than handed over, where registering it would throw
        // out of the owner's callback and out of the loop; the rest of the backlog goes on.
        net.close(fd);
        this.refused++;
        this.#onRefused?.(this.#fdLimitError(fd));
        continue;
      }
      this.#connections++;
      // nginx sets it as each connection is taken, before its handler runs.
      this.#acceptDisabled = this.#disabledNow();
      handed++;
      this.#onConnection(fd);
    }
    return handed;
  }

  /** ngx_accept_disabled's formula: connection_n / 8 − free_connection_n (0 without a cap, or not yielding). */
  #disabledNow(): number {
    const max = this.maxConnections;
    if (max === Infinity || !this.#yieldNearCap) return 0;
    return Math.floor(max / 8) - (max - this.#connections);
  }

  /**
   * One accept turn: an iteration of the loop, counted by a prepare hook (so before the wait,
   * where what it switches on counts for that wait). nginx's ngx_process_events_and_timers:
   * `if (ngx_accept_disabled > 0) ngx_accept_disabled--; else ngx_trylock_accept_mutex()`.
   * Installed while yielding, and with a mutex for as long as the Acceptor may accept.
   */
  #turn(): void {
    if (this.#acceptDisabled > 0) {
      // Only yielded turns count (with a mutex the hook runs while full or backing off too).
      if (this.#state === 'yielding') this.#acceptDisabled--;
      return;
    }
    const mutex = this.#mutex;
    if (mutex !== null) {
      // Tried only when a won lock would be used: a full or paused process leaves it to others.
      const mayAccept = !this.#closed && !this.#paused && !this.#retry.pending && this.#connections < this.maxConnections;
      this.#holding = mayAccept && mutex.tryLock();
    }
    this.#settle();
  }

  /**
   * Right after each wait (a check hook), with a mutex: nginx gives the lock back after every
   * wait, whether or not a connection came, so that while this process runs its batch another
   * one can take the lock at its own turn. The listener stays in the loop until a turn's
   * tryLock() fails.
   */
  #waitEnded(): void {
    if (this.#holding) this.#mutex!.unlock();
  }

  /** Puts the loop's registrations in line with what the Acceptor may do now. */
  #settle(): void {
    const next: AcceptorState = this.#closed
      ? 'closed'
      : this.#paused
        ? 'paused'
        : this.#retry.pending
          ? 'backing-off'
          : this.#connections >= this.maxConnections
            ? 'full'
            : this.#acceptDisabled > 0
              ? 'yielding'
              : this.#mutex !== null && !this.#holding
                ? 'locked-out'
                : 'watching';
    if (next !== 'watching' && this.#holding) {
      // Not accepting at this wait: the lock is the others' (pause() or close() between a turn
      // and its wait; in start() mode, code of Node's between them).
      this.#holding = false;
      const mutex = this.#mutex!;
      if (!mutex.region.closed && mutex.held) mutex.unlock();
    }
    if (next === this.#state) return;
    if (this.#loop.closed) {
      this.#state = next; // its registrations are gone with it
      return;
    }
    if (next === 'watching') this.#readable.add(); // may throw (EBADF: the listener was closed): nothing changed then
    else this.#readable.del();
    this.#state = next;
    // Turns are counted while yielding, and with a mutex for as long as a turn may take the lock.
    const counting = next === 'yielding' || (this.#mutex !== null && next !== 'closed' && next !== 'paused');
    if (counting && this.#turnHook === null) {
      this.#turnHook = this.#loop.prepare(() => this.#turn());
      if (this.#mutex !== null) this.#waitEndHook = this.#loop.check(() => this.#waitEnded());
    } else if (!counting && this.#turnHook !== null) {
      this.#turnHook.del();
      this.#waitEndHook?.del();
      this.#turnHook = this.#waitEndHook = null;
    }
    // A timer bounds the wait of a turn that does not watch the listener, so that a process with
    // nothing else to do still takes its turns. Yielding without a mutex (EV.EXCLUSIVE, or
    // none): the listener's event is deleted for the turns skipped, so that level-triggered poll
    // and select do not wake for it, and a connection wakes the other processes sharing the
    // listener instead (with EPOLLEXCLUSIVE this one leaves the listener's wait queue, and
    // re-enters at its tail, as nginx's ngx_reorder_accept_events does on purpose). Locked out:
    // nginx's accept_mutex_delay.
    const turnMs = next === 'yielding' ? this.#turnMs : next === 'locked-out' ? this.#mutexDelayMs : 0;
    if (turnMs === 0) this.#turnTimer.del();
    else if (!this.#turnTimer.pending || this.#turnTimerMs !== turnMs) {
      this.#turnTimer.add(turnMs);
      this.#turnTimerMs = turnMs;
    }
    if (next === 'closed') this.#retry.del();
  }

  #fdLimitError(fd: number): EvpollError {
    const what = this.#fdLimit < this.#loop.maxFd ? `${this.#loop.mechanism}'s FD_SETSIZE` : "the loop's maxFd";
    return new EvpollError('ERR_EVPOLL_FD_LIMIT', `accepted fd ${fd} is beyond ${what} (${this.#fdLimit})`);
  }
}
