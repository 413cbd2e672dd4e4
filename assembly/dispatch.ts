// One batch: ready records from the backend plus due timers -> the dispatch list JS walks.
//
// Order: fd entries first, in the order the backend reported them (and, per fd, in the order
// the Events were added), then due timers by (deadline, sequence). Every due timer is taken
// out of the heap before any callback runs, so a timer re-added with 0 ms by a callback fires
// in the next batch, never in this one.

import { regrow, grownCapacity } from './region';
import { EV_TIMEOUT, EV_ERROR, EV_PERSIST, RW, REV_HUP, REV_INVALID } from './constants';
import { recycleRetired, retireSlot, slotInterest, slotNext } from './slots';
import { fdCapacity, fdGen, fdHead, forgetFd } from './fds';
import { popDue, reschedulePopped } from './timers';

const RECORD: usize = 12; // int32 fd, uint32 generation, int32 revents: written by native
const ENTRY: usize = 8; // int32 slot, int32 which

let ready: usize = 0;
let readyCap: i32 = 0;
let list: usize = 0;
let listCap: i32 = 0;
let listLen: i32 = 0;

// Where the JS side finds the ready area and the dispatch list without a call per iteration:
// three words it reads from memory — dispatch list address, ready area address, ready
// capacity — rewritten whenever either region moves.
const SHARED: usize = memory.data(12);

function publish(): void {
  store<u32>(SHARED, <u32>list);
  store<u32>(SHARED, <u32>ready, 4);
  store<i32>(SHARED, readyCap, 8);
}

/** The address of the three shared words (see SHARED); allocates the ready area first. */
export function sharedPtr(): usize {
  if (readyCap == 0) growReady();
  return SHARED;
}
export function readyPtr(): usize {
  if (readyCap == 0) growReady();
  return ready;
}
export function readyCapacity(): i32 {
  if (readyCap == 0) growReady();
  return readyCap;
}
/** Called when a wait filled the ready area: the next one gets twice the room. */
export function growReady(): void {
  const next = grownCapacity(readyCap, readyCap + 1, 64);
  ready = regrow(ready, 0, <usize>next * RECORD);
  readyCap = next;
  publish();
}

export function dispatchPtr(): usize { return list; }

function append(slot: i32, which: i32): void {
  if (listLen == listCap) {
    const next = grownCapacity(listCap, listLen + 1, 64);
    list = regrow(list, <usize>listLen * ENTRY, <usize>next * ENTRY);
    listCap = next;
    publish();
  }
  const e = list + <usize>listLen * ENTRY;
  store<i32>(e, slot);
  store<i32>(e, which, 4);
  listLen++;
}

/** Builds the dispatch list from `count` ready records and the timers due at `now`. */
export function collect(now: f64, count: i32): i32 {
  recycleRetired(); // the previous list has been walked: its retired slots may be reused
  listLen = 0;
  const limit = fdCapacity();
  for (let i = 0; i < count; i++) {
    const rec = ready + <usize>i * RECORD;
    const fd = load<i32>(rec);
    if (fd < 0 || fd >= limit || fdHead(fd) == 0 || fdGen(fd) != load<u32>(rec, 4)) continue; // stale
    const revents = load<i32>(rec, 8);
    let mask = revents & RW;
    if (revents & REV_HUP) mask = RW;
    if (revents & REV_INVALID) mask = RW | EV_ERROR;
    for (let link = fdHead(fd); link != 0; link = slotNext(link - 1)) {
      const which = mask & ((slotInterest(link - 1) & RW) | EV_ERROR);
      if (which != 0) append(link - 1, which);
    }
    if (revents & REV_INVALID) forgetFd(fd);
  }
  const firstTimer = listLen;
  for (let slot = popDue(now); slot >= 0; slot = popDue(now)) append(slot, EV_TIMEOUT);
  for (let k = firstTimer; k < listLen; k++) {
    const slot = load<i32>(list + <usize>k * ENTRY);
    if (slotInterest(slot) & EV_PERSIST) reschedulePopped(slot, now);
    else retireSlot(slot);
  }
  return listLen;
}
