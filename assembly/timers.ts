// The timer queue: a binary min-heap of timer slots.
//
// Invariants:
// - Ordered by (deadline, sequence): the root is the earliest deadline, and of equal deadlines
//   the one scheduled first (sequence grows with every schedule), so equal deadlines fire FIFO.
// - heap[i]'s slot records i as its HEAP_POS, so cancel is O(log n) without a search.
// - Deadlines are ms on the JS side's monotonic clock (performance.now()); the core never
//   reads a clock itself.

import { regrow, grownCapacity } from './region';
import {
  slotDeadline, setSlotDeadline, slotSequence, setSlotSequence, slotHeapPos, setSlotHeapPos,
  setSlotFrequency, slotFrequency,
} from './slots';

let heap: usize = 0; // i32 slots
let size: i32 = 0;
let capacity: i32 = 0;
let nextSequence: f64 = 0;

// @ts-ignore: decorator
@inline function get(i: i32): i32 { return load<i32>(heap + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function put(i: i32, slot: i32): void {
  store<i32>(heap + (<usize>i << 2), slot);
  setSlotHeapPos(slot, i);
}

// @ts-ignore: decorator
@inline function earlier(a: i32, b: i32): bool {
  const da = slotDeadline(a), db = slotDeadline(b);
  return da < db || (da == db && slotSequence(a) < slotSequence(b));
}

function siftUp(i: i32): void {
  const slot = get(i);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = get(parent);
    if (!earlier(slot, p)) break;
    put(i, p);
    i = parent;
  }
  put(i, slot);
}

function siftDown(i: i32): void {
  const slot = get(i);
  while (true) {
    let child = (i << 1) + 1;
    if (child >= size) break;
    let c = get(child);
    if (child + 1 < size) {
      const r = get(child + 1);
      if (earlier(r, c)) { child++; c = r; }
    }
    if (!earlier(c, slot)) break;
    put(i, c);
    i = child;
  }
  put(i, slot);
}

/** Schedules `slot` (not in the heap) at now + frequency. */
export function schedule(slot: i32, now: f64, frequency: f64): void {
  if (size == capacity) {
    const next = grownCapacity(capacity, size + 1, 64);
    heap = regrow(heap, <usize>capacity << 2, <usize>next << 2);
    capacity = next;
  }
  setSlotFrequency(slot, frequency);
  setSlotDeadline(slot, now + frequency);
  setSlotSequence(slot, nextSequence++);
  put(size++, slot);
  siftUp(size - 1);
}

/** Re-arms a slot that was just popped, for PERSIST timers: now + its frequency. */
export function reschedulePopped(slot: i32, now: f64): void {
  schedule(slot, now, slotFrequency(slot));
}

/** Removes `slot` from wherever it is in the heap. */
export function unschedule(slot: i32): void {
  const i = slotHeapPos(slot);
  const last = get(--size);
  if (i == size) return;
  put(i, last);
  // The moved element may belong above or below its new place.
  if (i > 0 && earlier(last, get((i - 1) >> 1))) siftUp(i);
  else siftDown(i);
}

/** The earliest deadline, or +Infinity when no timer is scheduled. */
export function earliestDeadline(): f64 {
  return size == 0 ? Infinity : slotDeadline(get(0));
}

/** Removes and returns the root if it is due at `now`; -1 otherwise. */
export function popDue(now: f64): i32 {
  if (size == 0) return -1;
  const root = get(0);
  if (slotDeadline(root) > now) return -1;
  const last = get(--size);
  if (size > 0) {
    put(0, last);
    siftDown(0);
  }
  return root;
}

export function scheduledCount(): i32 { return size; }
