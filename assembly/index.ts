// evpoll's WebAssembly core: the policy half of the event loop. Everything crossing this
// boundary is a number; every call that can grow memory may detach the JS side's views.
//
// These are the release build's exports (dist/core.wasm), exactly what src/ calls; the rest
// of what JS needs it reads from the shared words (shared.ts). debug.ts adds what only tests and
// benchmarks call (dist/core-debug.wasm).

import { EV_PERSIST, EV_TIMEOUT } from './constants';
import {
  allocSlot, slotExists, slotRecord, slotHeapPos, STATE, KIND_SHIFT, KIND_TIMER, KIND_FD, KIND_FREE, setSlotFrequency, retireRecord,
  recycleRetired, setSlotPriority,
} from './slots';
import { schedule, unscheduleAt } from './timers';
import { unwatchRecord, opKind, opInterest, opGen } from './fds';

export { watch } from './fds';
export { collect, growReady, sharedPtr } from './dispatch';

/**
 * ev.priority (-2..2, checked by the caller) of a live slot: collect() runs the higher first.
 * Returns 0, changing nothing, if the slot is not live (collect() released it).
 */
export function setPriority(slot: i32, priority: i32): i32 {
  if (!slotExists(slot) || load<i32>(slotRecord(slot) + STATE) >> KIND_SHIFT == KIND_FREE) return 0;
  setSlotPriority(slot, priority);
  return 1;
}

export function lastOpKind(): i32 { return opKind; }
export function lastOpInterest(): i32 { return opInterest; }
export function lastOpGen(): u32 { return opGen; }

/** A new pending timer firing at now + frequency; PERSIST re-arms it after each firing. */
export function timerAdd(now: f64, frequency: f64, flags: i32): i32 {
  const slot = allocSlot(KIND_TIMER, flags & (EV_PERSIST | EV_TIMEOUT));
  if (flags & EV_PERSIST) setSlotFrequency(slot, frequency); // read only to re-arm
  schedule(slot, now, frequency);
  return slot;
}

/**
 * Adding a pending timer again reschedules it (fpm_event_add on a pending timer). Returns 0,
 * changing nothing, if the slot is no longer a scheduled timer (a one-shot timer taken out by
 * collect() whose callback has not run yet): the caller then adds it as a new timer.
 */
export function timerReschedule(slot: i32, now: f64, frequency: f64): i32 {
  if (!slotExists(slot)) return 0;
  const record = slotRecord(slot);
  const state = load<i32>(record + STATE);
  if (state >> KIND_SHIFT != KIND_TIMER) return 0;
  if (state & EV_PERSIST) setSlotFrequency(slot, frequency);
  unscheduleAt(slotHeapPos(slot));
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
  if (!slotExists(slot)) return 0;
  const record = slotRecord(slot);
  const kind = load<i32>(record + STATE) >> KIND_SHIFT;
  if (kind == KIND_FREE) return 0;
  if (kind == KIND_FD) {
    unwatchRecord(slot, record);
  } else {
    unscheduleAt(slotHeapPos(slot));
    retireRecord(slot, record);
  }
  if (walked) recycleRetired();
  return 1;
}
