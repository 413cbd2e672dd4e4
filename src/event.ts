import { EventLoop } from './loop.js';
import { EV, FD_EVENT_FLAGS, FD_READINESS, TIMER_FLAGS } from './flags.js';
import { invalidArg } from './errors.js';

/** Bits a callback can be handed in `which`, and so what activate() accepts. */
const DELIVERED = EV.TIMEOUT | EV.READ | EV.WRITE | EV.PRI | EV.ERROR;
/** Interest bits of an fd event's flags that are also delivered (activate()'s default). */
const INTEREST_DELIVERED = FD_READINESS;

function isNonNegativeInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

/** What loop.event() (fd >= 0) and loop.timer() (fd -1) accept; `new Event(...)` is held to the same. */
function checkArgs(loop: unknown, fd: unknown, flags: unknown, callback: unknown): void {
  if (!(loop instanceof EventLoop)) throw invalidArg('loop must be an EventLoop');
  loop._checkOpen();
  if (fd === -1) {
    if (!isNonNegativeInteger(flags) || (flags & ~TIMER_FLAGS) !== 0) {
      throw invalidArg(`flags ${String(flags)} has bits a timer cannot ask for (allowed: PERSIST, TIMEOUT)`);
    }
  } else {
    if (!isNonNegativeInteger(fd)) throw invalidArg(`fd must be an integer >= 0, got ${String(fd)}`);
    if (!isNonNegativeInteger(flags) || (flags & ~FD_EVENT_FLAGS) !== 0) {
      throw invalidArg(`flags ${String(flags)} has bits an fd event cannot ask for (allowed: READ, WRITE, PRI, PERSIST, EDGE, EXCLUSIVE)`);
    }
    if ((flags & FD_READINESS) === 0) throw invalidArg('an fd event needs EV.READ, EV.WRITE or EV.PRI');
  }
  if (typeof callback !== 'function') throw invalidArg('callback must be a function');
}

/** `which`: EV.TIMEOUT for a timer; for an fd event, the ready subset of its READ|WRITE|PRI, plus EV.ERROR if the fd became invalid. */
export type EventCallback<A = any> = (ev: Event<A>, which: number, arg: A) => void;

/**
 * One registration: an fd event (fpm_event_set) or a timer (fpm_event_set_timer, fd -1).
 * Created by loop.event() / loop.timer() (or `new Event(loop, fd, flags, callback, arg)`, held
 * to the same checks); nothing happens until add().
 */
export class Event<A = any> {
  /** @internal The core's slot while pending, else -1. */
  _slot = -1;
  /** @internal -2..2; the loop reads it at add(). */
  _priority = 0;
  /** @internal activate()'s `which` bits not yet delivered; 0 when not posted. */
  _posted = 0;
  /** @internal Which activation of the loop's posted queue is this event's current one. */
  _postSeq = 0;

  constructor(
    readonly loop: EventLoop,
    /** The watched file descriptor; -1 for a timer. */
    readonly fd: number,
    readonly flags: number,
    readonly callback: EventCallback<A>,
    readonly arg: A,
  ) {
    checkArgs(loop, fd, flags, callback);
  }

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

  /**
   * fpm_event_del: returns true if the event was pending. Its callback will not run after this
   * (an activation not yet run is dropped too).
   */
  del(): boolean {
    return this.loop._del(this);
  }

  /**
   * libev's priority, an integer from -2 to 2 (default 0): in one iteration everything ready runs
   * highest priority first (fd events in backend order, then due timers by deadline, within a
   * priority); nothing of a lower priority waits for a later iteration. Settable while pending.
   */
  get priority(): number {
    return this._priority;
  }

  set priority(priority: number) {
    if (!Number.isInteger(priority) || priority < -2 || priority > 2) {
      throw invalidArg(`priority must be an integer from -2 to 2, got ${String(priority)}`);
    }
    this._priority = priority;
    this.loop._setPriority(this);
  }

  /**
   * Posts the event (libev's ev_feed_event, libevent's event_active, nginx's ngx_post_event): its
   * callback runs as if ready, with `which` (default: its READ/WRITE/PRI interest; EV.TIMEOUT for a
   * timer), pending or not. From a callback: in the same iteration, after every callback already
   * in its dispatch list, activated events by priority and then in activation order. From
   * outside one: in the next iteration, which then does not wait. Activated again before it
   * runs: it runs once, with the `which` bits combined. del() drops the activation. A timer is
   * not made pending or rescheduled.
   */
  activate(which?: number): this {
    if (which === undefined) {
      which = this.fd < 0 ? EV.TIMEOUT : this.flags & INTEREST_DELIVERED;
    } else if (!isNonNegativeInteger(which) || which === 0 || (which & ~DELIVERED) !== 0) {
      throw invalidArg(`which ${String(which)} must be a nonzero combination of EV.TIMEOUT, READ, WRITE, PRI and ERROR`);
    }
    this.loop._activate(this, which);
    return this;
  }
}
