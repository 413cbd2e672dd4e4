// The fd table: for each file descriptor, the Events watching it, the union of their
// interests (what the backend is asked for) and a generation.
//
// Invariants:
// - An fd with no watcher is not registered with the backend; its first watcher registers it
//   with a new generation. Ready records carry the generation they were registered with, so
//   a record about an earlier registration of the same number (the fd was deleted, closed and
//   the number reused within one batch) is recognised and dropped: libev's trick.
// - Watchers of one fd are kept in the order they were added; each receives only its own
//   interest.
// - The backend interest (UNION) is READ/WRITE/PRI of any watcher; EDGE only if every watcher asked
//   for it (a level-triggered watcher must not miss readiness because another wants edges);
//   EXCLUSIVE if any asked. watch() updates it from the new watcher alone; unwatchRecord() walks
//   the remaining watchers (unionOf).

import { regrow, grownCapacity } from './region';
import { EV_EDGE, EV_EXCLUSIVE, RWP, OP_NONE, OP_ADD, OP_MODIFY, OP_REMOVE } from './constants';
import {
  allocSlot, retireSlot, retireRecord, slotRecord, KIND_FD, slotInterest, slotNext, setSlotNext, NEXT, FD,
} from './slots';

// fd record layout (bytes)
const HEAD = 0; // slot + 1
const TAIL = 4; // slot + 1
const UNION = 8;
const GEN = 12;
const STRIDE: usize = 16;

let table: usize = 0;
let capacity: i32 = 0;

/** The registration change the last watch()/unwatchRecord() requires of the backend. */
export let opKind: i32 = OP_NONE;
export let opInterest: i32 = 0;
export let opGen: u32 = 0;

// @ts-ignore: decorator
@inline function at(fd: i32): usize { return table + <usize>fd * STRIDE; }

export function fdCapacity(): i32 { return capacity; }
// @ts-ignore: decorator
@inline export function fdHead(fd: i32): i32 { return load<i32>(at(fd) + HEAD); }
// @ts-ignore: decorator
@inline export function fdGen(fd: i32): u32 { return load<u32>(at(fd) + GEN); }

function unionOf(fd: i32): i32 {
  let rwp = 0, allEdge = EV_EDGE, exclusive = 0;
  for (let link = fdHead(fd); link != 0; link = slotNext(link - 1)) {
    const interest = slotInterest(link - 1);
    rwp |= interest & RWP;
    allEdge &= interest;
    exclusive |= interest & EV_EXCLUSIVE;
  }
  return rwp | allEdge | exclusive;
}

function setOp(kind: i32, fd: i32): void {
  opKind = kind;
  opInterest = load<i32>(at(fd) + UNION);
  opGen = fdGen(fd);
}

/** A new pending fd event; returns its slot. The backend change to make is in op*. */
export function watch(fd: i32, interest: i32): i32 {
  if (fd >= capacity) {
    const next = grownCapacity(capacity, fd + 1, 64);
    table = regrow(table, <usize>capacity * STRIDE, <usize>next * STRIDE);
    capacity = next;
  }
  const slot = allocSlot(KIND_FD, interest);
  const record = slotRecord(slot);
  store<i32>(record + NEXT, 0);
  store<i32>(record + FD, fd);
  const rec = at(fd);
  const tail = load<i32>(rec + TAIL);
  if (tail == 0) {
    store<i32>(rec + HEAD, slot + 1);
    store<u32>(rec + GEN, load<u32>(rec + GEN) + 1);
  } else {
    setSlotNext(tail - 1, slot + 1);
  }
  store<i32>(rec + TAIL, slot + 1);
  // unionOf() with one more watcher, without walking the list (or reading slots just written).
  const before = load<i32>(rec + UNION);
  const after = tail == 0
    ? interest & (RWP | EV_EDGE | EV_EXCLUSIVE)
    : ((before | interest) & (RWP | EV_EXCLUSIVE)) | (before & interest & EV_EDGE);
  store<i32>(rec + UNION, after);
  setOp(tail == 0 ? OP_ADD : (after != before ? OP_MODIFY : OP_NONE), fd);
  return slot;
}

/** Ends the pending fd event `slot`, whose record is at `record`. The backend change to make is in op*. */
// @ts-ignore: decorator
@inline export function unwatchRecord(slot: i32, record: usize): void {
  const fd = load<i32>(record + FD);
  const rec = at(fd);
  // Unlink: watcher lists are short (one or two Events per fd), a scan is cheapest.
  let prev = 0;
  let link = load<i32>(rec + HEAD);
  while (link != 0 && link != slot + 1) { prev = link; link = slotNext(link - 1); }
  const next = load<i32>(record + NEXT);
  if (prev == 0) store<i32>(rec + HEAD, next); else setSlotNext(prev - 1, next);
  if (load<i32>(rec + TAIL) == slot + 1) store<i32>(rec + TAIL, prev);
  retireRecord(slot, record);
  const before = load<i32>(rec + UNION);
  const after = load<i32>(rec + HEAD) == 0 ? 0 : unionOf(fd);
  store<i32>(rec + UNION, after);
  setOp(after == 0 ? OP_REMOVE : (after != before ? OP_MODIFY : OP_NONE), fd);
}

/** The backend reported the fd invalid and dropped it: end every watcher of it. */
export function forgetFd(fd: i32): void {
  const rec = at(fd);
  let link = load<i32>(rec + HEAD);
  while (link != 0) {
    const next = slotNext(link - 1);
    retireSlot(link - 1);
    link = next;
  }
  store<i32>(rec + HEAD, 0);
  store<i32>(rec + TAIL, 0);
  store<i32>(rec + UNION, 0);
}
