import type { EventLoop } from './loop.js';

/** `which`: EV.TIMEOUT for a timer; for an fd event, the ready subset of its READ|WRITE, plus EV.ERROR if the fd became invalid. */
export type EventCallback<A = any> = (ev: Event<A>, which: number, arg: A) => void;

/**
 * One registration: an fd event (fpm_event_set) or a timer (fpm_event_set_timer, fd -1).
 * Created by loop.event() / loop.timer(); nothing happens until add().
 */
export class Event<A = any> {
  /** @internal The core's slot while pending, else -1. */
  _slot = -1;

  /** @internal */
  constructor(
    readonly loop: EventLoop,
    /** The watched file descriptor; -1 for a timer. */
    readonly fd: number,
    readonly flags: number,
    readonly callback: EventCallback<A>,
    readonly arg: A,
  ) {}

  /** Whether the event is registered (fpm_event_add'ed and not yet deleted or fired once). */
  get pending(): boolean {
    return this._slot >= 0;
  }

  /**
   * fpm_event_add. An fd event is registered with the backend and stays until del(); adding it
   * again while pending changes nothing. A timer fires after `timeoutMs` (its frequency, if
   * PERSIST); adding a pending timer again reschedules it.
   */
  add(timeoutMs = 0): this {
    this.loop._add(this, timeoutMs);
    return this;
  }

  /** fpm_event_del: returns true if the event was pending. Its callback will not run after this. */
  del(): boolean {
    return this.loop._del(this);
  }
}
