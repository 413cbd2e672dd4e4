// evpoll's WebAssembly core: the policy half of the event loop. Everything crossing this
// boundary is a number; every call that can grow memory may detach the JS side's views.

import { EV_PERSIST, EV_TIMEOUT } from './constants';
import { allocSlot, isLive, liveSlots, slotKind, KIND_TIMER, KIND_FD, setSlotInterest, retireSlot, recycleRetired } from './slots';
import { schedule, unschedule, earliestDeadline, scheduledCount } from './timers';
import { watch, unwatch, opKind, opFd, opInterest, opGen } from './fds';

export { watch, unwatch } from './fds';
export { collect, readyPtr, readyCapacity, growReady, dispatchPtr, sharedPtr } from './dispatch';

export function lastOpKind(): i32 { return opKind; }
export function lastOpFd(): i32 { return opFd; }
export function lastOpInterest(): i32 { return opInterest; }
export function lastOpGen(): u32 { return opGen; }

/** A new pending timer firing at now + frequency; PERSIST re-arms it after each firing. */
export function timerAdd(now: f64, frequency: f64, flags: i32): i32 {
  const slot = allocSlot(KIND_TIMER);
  setSlotInterest(slot, flags & (EV_PERSIST | EV_TIMEOUT));
  schedule(slot, now, frequency);
  return slot;
}

/**
 * Adding a pending timer again reschedules it (fpm_event_add on a pending timer). Returns 0,
 * changing nothing, if the slot is no longer a scheduled timer (a one-shot timer taken out by
 * collect() whose callback has not run yet): the caller then adds it as a new timer.
 */
export function timerReschedule(slot: i32, now: f64, frequency: f64): i32 {
  if (!isLive(slot) || slotKind(slot) != KIND_TIMER) return 0;
  unschedule(slot);
  schedule(slot, now, frequency);
  return 1;
}

/**
 * Ends a pending event of either kind; for an fd event the backend change is in lastOp*.
 * Returns 0 if the slot was already released (by collect(): a one-shot timer that fired, or an
 * fd the backend reported invalid), 1 otherwise.
 *
 * `walked`: nonzero when the caller is not walking a dispatch list (none left, or its last
 * entry reached), so released slots may be reused at once. Otherwise they wait for the next
 * collect(); without this, a program that adds and deletes events between iterations would
 * grow the slot table by one slot per cycle until the loop turns.
 */
export function release(slot: i32, walked: i32): i32 {
  if (!isLive(slot)) return 0;
  if (slotKind(slot) == KIND_FD) {
    unwatch(slot);
  } else {
    unschedule(slot);
    retireSlot(slot);
  }
  if (walked) recycleRetired();
  return 1;
}

/** Whole ms until the nearest timer, rounded up so a wait never ends before it; -1: none. */
export function nextTimeout(now: f64): i32 {
  const d = earliestDeadline() - now;
  if (d == Infinity) return -1;
  if (d <= 0) return 0;
  return d >= 2147483647.0 ? 2147483647 : <i32>Math.ceil(d);
}

export function pendingCount(): i32 { return liveSlots(); }
export function timerCount(): i32 { return scheduledCount(); }
