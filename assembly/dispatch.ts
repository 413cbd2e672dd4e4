// One batch: ready records from the backend plus due timers -> the dispatch list JS walks.
//
// Order: by priority, 2 first (libev's model: everything ready this batch runs, the higher
// priorities first; nothing waits for a later batch). Within a priority, fd entries first, in
// the order the backend reported them (and, per fd, in the order the Events were added), then
// due timers by (deadline, sequence): a stable counting sort by priority of that list, done
// only while some live slot has a priority other than 0. Every due timer is taken
// out of the heap before any callback runs, so a timer re-added with 0 ms by a callback fires
// in the next batch, never in this one.
//
// A slot collect() releases — a one-shot timer it pops, every Event on an fd the backend reports
// invalid — has its last entry in the list (its only one: a backend reports an fd at most once a
// wait) marked ENTRY_RETIRED (shared.ts), and no other entry is: the JS side forgets the Event
// there rather than repeating this rule.

import { regrow, grownCapacity } from './region';
import { EV_TIMEOUT, EV_ERROR, EV_PERSIST, EV_PRI, RW, RWP, REV_HUP, REV_INVALID, REV_PRI } from './constants';
import { ENTRY, ENTRY_RETIRED, SHARED, publishDispatchList, publishReadyArea } from './shared';
import { prioritized, recycleRetired, retireRecord, slotRecord, slotInterest, slotNext, slotPriority, STATE } from './slots';
import { fdCapacity, fdGen, fdHead, forgetFd } from './fds';
import { popDue, reschedulePopped, publishTimers, scheduledCount, takeDue } from './timers';

const RECORD: usize = 12; // int32 fd, uint32 generation, int32 revents: written by native

let ready: usize = 0;
let readyCap: i32 = 0;
let list: usize = 0;
let listCap: i32 = 0;
let listLen: i32 = 0;
/** Where the priority sort writes, as long as the list; the two swap after a sort. */
let spare: usize = 0;
let spareCap: i32 = 0;

/** The address of the shared words (shared.ts); allocates the ready area first. */
export function sharedPtr(): usize {
  if (readyCap == 0) growReady();
  return SHARED;
}
/** Called when a wait filled the ready area: the next one gets twice the room. */
export function growReady(): void {
  const next = grownCapacity(readyCap, readyCap + 1, 64);
  ready = regrow(ready, 0, <usize>next * RECORD, false); // written by the backend before read
  readyCap = next;
  publishReadyArea(ready, readyCap);
}

function append(slot: i32, which: i32): void {
  if (listLen == listCap) {
    const next = grownCapacity(listCap, listLen + 1, 64);
    list = regrow(list, <usize>listLen * ENTRY, <usize>next * ENTRY, false);
    listCap = next;
    publishDispatchList(list);
  }
  const e = list + <usize>listLen * ENTRY;
  store<i32>(e, slot);
  store<i32>(e, which, 4);
  listLen++;
}

let bulkMin: i32 = 1024;

/** Testing only (default 1,024): how few due timers collect() pops before it may take the rest at once. */
export function setBulkMin(n: i32): void {
  bulkMin = max(n, 1);
}

function appendTimer(slot: i32): void {
  append(slot, EV_TIMEOUT);
}

/** Builds the dispatch list from `count` ready records and the timers due at `now`. */
export function collect(now: f64, count: i32): i32 {
  const ordered = prioritized != 0; // before this batch retires any slot
  recycleRetired(); // the previous list has been walked: its retired slots may be reused
  listLen = 0;
  const limit = fdCapacity();
  for (let i = 0; i < count; i++) {
    const rec = ready + <usize>i * RECORD;
    const fd = load<i32>(rec);
    if (fd < 0 || fd >= limit || fdHead(fd) == 0 || fdGen(fd) != load<u32>(rec, 4)) continue; // stale
    const revents = load<i32>(rec, 8);
    if (revents & REV_INVALID) {
      // Every watcher gets ERROR, so each has an entry, and forgetFd() retires each one.
      for (let link = fdHead(fd); link != 0; link = slotNext(link - 1)) {
        append(link - 1, (slotInterest(link - 1) & RWP) | EV_ERROR | ENTRY_RETIRED);
      }
      forgetFd(fd);
      continue;
    }
    // Error or hang-up is readiness for the watched READ/WRITE (the read or write then meets
    // it); PRI only when the kernel said PRI, except for a watcher of PRI alone, which gets PRI:
    // left untold, a level-triggered HUP would wake every wait with nothing to run.
    const hup = revents & REV_HUP;
    const mask = hup ? RW | (revents & REV_PRI) : revents & RWP;
    for (let link = fdHead(fd); link != 0; link = slotNext(link - 1)) {
      const interest = slotInterest(link - 1);
      let which = mask & interest;
      if (which == 0 && hup) which = interest & EV_PRI;
      if (which != 0) append(link - 1, which);
    }
  }
  const firstTimer = listLen;
  // Pop one by one; once the due timers are seen to be a sixteenth of the heap (and at least
  // bulkMin), take the rest in one pass (timers.ts, takeDue), which costs O(heap) once instead
  // of a walk down the heap per timer: a backlog after a stall drains at the speed of a sort.
  const bulkAfter = max(bulkMin, scheduledCount() >> 4);
  let popped = 0;
  for (let slot = popDue(now); slot >= 0; slot = popDue(now)) {
    append(slot, EV_TIMEOUT);
    if (++popped == bulkAfter) {
      takeDue(now, appendTimer);
      break;
    }
  }
  for (let k = firstTimer; k < listLen; k++) {
    const e = list + <usize>k * ENTRY;
    const slot = load<i32>(e);
    const record = slotRecord(slot);
    if (load<i32>(record + STATE) & EV_PERSIST) {
      reschedulePopped(slot, now);
    } else {
      retireRecord(slot, record);
      store<i32>(e, EV_TIMEOUT | ENTRY_RETIRED, 4);
    }
  }
  publishTimers();
  if (ordered && listLen > 1) orderByPriority();
  return listLen;
}

const LEVELS: i32 = 5; // priorities 2, 1, 0, -1, -2
const levelStart = memory.data(LEVELS * 4, 4);

/** The stable counting sort: entries of priority 2 first, each level in list order. */
function orderByPriority(): void {
  for (let l = 0; l < LEVELS; l++) store<i32>(levelStart + (<usize>l << 2), 0);
  let mixed = false;
  const first = 2 - slotPriority(load<i32>(list));
  for (let k = 0; k < listLen; k++) {
    const level = 2 - slotPriority(load<i32>(list + <usize>k * ENTRY));
    if (level != first) mixed = true;
    const at = levelStart + (<usize>level << 2);
    store<i32>(at, load<i32>(at) + 1);
  }
  if (!mixed) return;
  let start = 0;
  for (let l = 0; l < LEVELS; l++) {
    const at = levelStart + (<usize>l << 2);
    const n = load<i32>(at);
    store<i32>(at, start);
    start += n;
  }
  if (spareCap < listCap) {
    spare = regrow(spare, 0, <usize>listCap * ENTRY, false);
    spareCap = listCap;
  }
  for (let k = 0; k < listLen; k++) {
    const e = list + <usize>k * ENTRY;
    const at = levelStart + (<usize>(2 - slotPriority(load<i32>(e))) << 2);
    const to = load<i32>(at);
    store<i32>(at, to + 1);
    store<u64>(spare + <usize>to * ENTRY, load<u64>(e));
  }
  const old = list;
  const oldCap = listCap;
  list = spare;
  listCap = spareCap;
  spare = old;
  spareCap = oldCap;
  publishDispatchList(list);
}
