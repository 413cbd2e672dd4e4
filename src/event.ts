import { EventLoop } from './loop.js';
import { FD_EVENT_FLAGS, FD_READINESS, TIMER_FLAGS } from './flags.js';
import { invalidArg } from './errors.js';

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

  /** fpm_event_del: returns true if the event was pending. Its callback will not run after this. */
  del(): boolean {
    return this.loop._del(this);
  }
}
