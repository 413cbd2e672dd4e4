// The slot table: one slot per pending Event (fd event or timer), addressed by index.
//
// Invariants:
// - A slot is FREE, FD (watching a file descriptor) or TIMER.
// - A slot released while JS may still be walking a dispatch list that names it (a callback
//   deleting another event) must not be handed out again before that walk ends, or a later
//   entry would reach the wrong Event: released slots wait on a "retired" list, and only
//   collect() — the start of the next batch — moves them to the free list.
// - Links (free list, retired list, an fd's watcher list) store slot + 1, so 0 means "none"
//   and freshly zeroed memory is a valid empty state.

import { regrow, grownCapacity } from './region';

export const KIND_FREE: i32 = 0;
export const KIND_FD: i32 = 1;
export const KIND_TIMER: i32 = 2;

// Slot record layout (bytes).
const KIND = 0;
const FD = 4;
const INTEREST = 8; // fd: READ|WRITE|EDGE|EXCLUSIVE; timer: PERSIST or 0
const NEXT = 12; // slot + 1: next watcher of the same fd, or next in the free/retired list
const HEAP_POS = 16; // timer: index in the heap
const DEADLINE = 24; // timer: ms on the JS side's monotonic clock
const FREQUENCY = 32; // timer: ms
const SEQUENCE = 40; // timer: insertion order, so equal deadlines keep FIFO order
const STRIDE: usize = 48;

let table: usize = 0;
let capacity: i32 = 0;
let used: i32 = 0; // slots ever handed out: [0, used) have been initialised
let freeHead: i32 = 0; // slot + 1
let retiredHead: i32 = 0; // slot + 1
let liveCount: i32 = 0;

// @ts-ignore: decorator
@inline function at(slot: i32): usize { return table + <usize>slot * STRIDE; }

export function allocSlot(kind: i32): i32 {
  let slot: i32;
  if (freeHead != 0) {
    slot = freeHead - 1;
    freeHead = load<i32>(at(slot) + NEXT);
  } else {
    if (used == capacity) {
      const next = grownCapacity(capacity, used + 1, 64);
      table = regrow(table, <usize>capacity * STRIDE, <usize>next * STRIDE);
      capacity = next;
    }
    slot = used++;
  }
  memory.fill(at(slot), 0, STRIDE);
  store<i32>(at(slot) + KIND, kind);
  liveCount++;
  return slot;
}

/** Releases a live slot; it becomes reusable at the next collect(). */
export function retireSlot(slot: i32): void {
  store<i32>(at(slot) + KIND, KIND_FREE);
  store<i32>(at(slot) + NEXT, retiredHead);
  retiredHead = slot + 1;
  liveCount--;
}

/** Called at the start of a batch: the previous dispatch list is no longer being walked. */
export function recycleRetired(): void {
  while (retiredHead != 0) {
    const slot = retiredHead - 1;
    retiredHead = load<i32>(at(slot) + NEXT);
    store<i32>(at(slot) + NEXT, freeHead);
    freeHead = slot + 1;
  }
}

export function isLive(slot: i32): bool {
  return slot >= 0 && slot < used && load<i32>(at(slot) + KIND) != KIND_FREE;
}

export function liveSlots(): i32 { return liveCount; }

// @ts-ignore: decorator
@inline export function slotKind(slot: i32): i32 { return load<i32>(at(slot) + KIND); }
// @ts-ignore: decorator
@inline export function slotFd(slot: i32): i32 { return load<i32>(at(slot) + FD); }
// @ts-ignore: decorator
@inline export function setSlotFd(slot: i32, fd: i32): void { store<i32>(at(slot) + FD, fd); }
// @ts-ignore: decorator
@inline export function slotInterest(slot: i32): i32 { return load<i32>(at(slot) + INTEREST); }
// @ts-ignore: decorator
@inline export function setSlotInterest(slot: i32, v: i32): void { store<i32>(at(slot) + INTEREST, v); }
// @ts-ignore: decorator
@inline export function slotNext(slot: i32): i32 { return load<i32>(at(slot) + NEXT); }
// @ts-ignore: decorator
@inline export function setSlotNext(slot: i32, v: i32): void { store<i32>(at(slot) + NEXT, v); }
// @ts-ignore: decorator
@inline export function slotHeapPos(slot: i32): i32 { return load<i32>(at(slot) + HEAP_POS); }
// @ts-ignore: decorator
@inline export function setSlotHeapPos(slot: i32, v: i32): void { store<i32>(at(slot) + HEAP_POS, v); }
// @ts-ignore: decorator
@inline export function slotDeadline(slot: i32): f64 { return load<f64>(at(slot) + DEADLINE); }
// @ts-ignore: decorator
@inline export function setSlotDeadline(slot: i32, v: f64): void { store<f64>(at(slot) + DEADLINE, v); }
// @ts-ignore: decorator
@inline export function slotFrequency(slot: i32): f64 { return load<f64>(at(slot) + FREQUENCY); }
// @ts-ignore: decorator
@inline export function setSlotFrequency(slot: i32, v: f64): void { store<f64>(at(slot) + FREQUENCY, v); }
// @ts-ignore: decorator
@inline export function slotSequence(slot: i32): f64 { return load<f64>(at(slot) + SEQUENCE); }
// @ts-ignore: decorator
@inline export function setSlotSequence(slot: i32, v: f64): void { store<f64>(at(slot) + SEQUENCE, v); }
