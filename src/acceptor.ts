// Accepting connections on a listening fd the way busy servers do: a batch per readiness
// (lighttpd), and nginx's back-off when the process runs out of fds. A listener stays readable
// while its backlog is non-empty, so a level-triggered loop that cannot accept (EMFILE) would
// wake at once, forever, at 100% CPU; instead the listener's event is switched off and a
// one-shot timer switches it back on.
import { EV } from './flags.js';
import { invalidArg, systemError, type SystemError } from './errors.js';
import type { Event } from './event.js';
import type { EventLoop } from './loop.js';
import * as net from './net.js';

export interface AcceptorOptions {
  /** Connections taken per readiness (lighttpd's batch). Default 100. */
  batch?: number;
  /**
   * Watch the listener with EV.EXCLUSIVE, so that of several processes sharing it only one is
   * woken per connection (epoll's EPOLLEXCLUSIVE; ignored where !loop.supportExclusive).
   */
  exclusive?: boolean;
  /** How long the listener is ignored after EMFILE/ENFILE, in ms. Default 100. */
  backoffMs?: number;
  /** Told each time the process ran out of fds (`errno` is net.EMFILE or net.ENFILE) and the back-off started. */
  onBackoff?: (errno: number) => void;
  /** An accept failure other than EAGAIN/EMFILE/ENFILE (EBADF, EINVAL: the listener is gone). Default: throw it. */
  onError?: (err: SystemError) => void;
}

export type AcceptorState = 'watching' | 'backing-off' | 'paused' | 'closed';

/**
 * Watches `listenFd` on `loop` and hands each accepted (nonblocking, close-on-exec) fd to
 * `onConnection`, which owns it from then on. The listener itself stays the caller's: close()
 * stops watching it but does not close it.
 */
export class Acceptor {
  readonly listenFd: number;
  /** Times the process ran out of fds and backed off. */
  backoffs = 0;
  #state: AcceptorState = 'paused';
  #batch: number;
  #backoffMs: number;
  #readable: Event<Acceptor>;
  #retry: Event<Acceptor>;
  #onConnection: (fd: number) => void;
  #onBackoff: ((errno: number) => void) | undefined;
  #onError: ((err: SystemError) => void) | undefined;

  constructor(loop: EventLoop, listenFd: number, onConnection: (fd: number) => void, options: AcceptorOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const batch = options.batch ?? 100;
    const backoffMs = options.backoffMs ?? 100;
    if (!Number.isInteger(batch) || batch < 1) throw invalidArg(`batch must be an integer >= 1, got ${String(batch)}`);
    // Finite: the back-off timer is armed from inside a callback, where a refusal would leave
    // the listener switched off for good.
    if (typeof backoffMs !== 'number' || !Number.isFinite(backoffMs) || backoffMs < 0) {
      throw invalidArg(`backoffMs must be a finite number >= 0, got ${String(backoffMs)}`);
    }
    if (typeof onConnection !== 'function') throw invalidArg('onConnection must be a function');
    for (const name of ['onBackoff', 'onError'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw invalidArg(`${name} must be a function`);
    }
    this.listenFd = listenFd;
    this.#batch = batch;
    this.#backoffMs = backoffMs;
    this.#onConnection = onConnection;
    this.#onBackoff = options.onBackoff;
    this.#onError = options.onError;
    const flags = EV.READ | (options.exclusive && loop.supportExclusive ? EV.EXCLUSIVE : 0);
    this.#readable = loop.event(listenFd, flags, (_ev, _which, self) => self.#onReadable(), this);
    this.#retry = loop.timer(0, (_ev, _which, self) => self.#endBackoff(), this);
    this.resume();
  }

  get state(): AcceptorState {
    return this.#state;
  }

  /** Stops watching the listener: new connections wait in its backlog (or go to another process sharing it). */
  pause(): void {
    if (this.#state === 'closed') return;
    this.#readable.del();
    this.#retry.del();
    this.#state = 'paused';
  }

  /** Watches the listener again (a pending back-off is cut short). */
  resume(): void {
    if (this.#state === 'closed') return;
    this.#retry.del();
    this.#readable.add();
    this.#state = 'watching';
  }

  /**
   * Takes one batch of queued connections now, whatever the state (not after close()); returns
   * how many. For a process leaving a listener it shares: call it after pause(), because with
   * EV.EXCLUSIVE a connection whose wake-up went to this process wakes no one else.
   */
  acceptPending(): number {
    if (this.#state === 'closed') return 0;
    const fds = net.accept(this.listenFd, this.#batch);
    if (typeof fds === 'number') return 0; // EAGAIN or out of fds: nothing to hand over
    for (const fd of fds) this.#onConnection(fd);
    return fds.length;
  }

  /**
   * Stops watching for good. The listening fd is left open: it belongs to the caller. After
   * loop.close() there is nothing left to stop: it only marks the Acceptor closed.
   */
  close(): void {
    if (!this.#readable.loop.closed) this.pause();
    this.#state = 'closed';
  }

  #onReadable(): void {
    const fds = net.accept(this.listenFd, this.#batch);
    if (typeof fds !== 'number') {
      for (const fd of fds) this.#onConnection(fd);
      return;
    }
    if (fds === net.EAGAIN) return; // another process (or an aborted connection) got there first
    if (fds === net.EMFILE || fds === net.ENFILE) {
      // nginx's ngx_disable_accept_events: the queued connections wait in the backlog until
      // fds are freed; no accept is retried before the timer, so no CPU is burnt meanwhile.
      this.#readable.del();
      this.#retry.add(this.#backoffMs);
      this.#state = 'backing-off';
      this.backoffs++;
      this.#onBackoff?.(fds);
      return;
    }
    const err = systemError(fds, 'accept4');
    if (this.#onError) this.#onError(err);
    else throw err;
  }

  #endBackoff(): void {
    if (this.#state !== 'backing-off') return;
    this.#readable.add();
    this.#state = 'watching';
  }
}
