// The slot table: one slot per pending Event (fd event or timer), addressed by index.
//
// Invariants:
// - A slot is FREE, FD (watching a file descriptor) or TIMER.
// - A slot released while JS may still be walking a dispatch list that names it (a callback
//   deleting another event) must not be handed out again before that walk ends, or a later
//   entry would reach the wrong Event: released slots wait on a "retired" stack, and only
//   collect() — the start of the next batch — moves them to the free stack.
// - Free and retired slots are kept in two stacks of slot numbers (so taking a free slot reads
//   no slot record): allocSlot takes the top of the free stack; collect() moves the retired
//   stack onto it so that the earliest retired is handed out first.
// - Links (an fd's watcher list) store slot + 1, so 0 means "none".
// - The live slot count is kept in the shared words (shared.ts), where JS reads it.
//
// Storage: per slot a 16-byte record — STATE (kind << KIND_SHIFT | interest), NEXT and FD for
// an fd event, and PRIORITY: what an fd operation touches is in one cache line — and, in arrays of their own,
// HEAP_POS (i32, timers: a heap sift writes the positions of the entries it moves, 16 to a
// cache line; a timer's deadline and sequence live in its heap entry, timers.ts) and FREQUENCY
// (f64, PERSIST timers only): 28 bytes a slot. Slots are in chunks of C slots found through a
// directory of chunk addresses; a chunk holds C records, then the C positions, then the C
// frequencies. The free and retired stacks are two plain i32 arrays, each as long as the slot
// capacity (a stack holds at most the slots that exist): they grow with it, by doubling,
// copied — the free stack is empty then, or allocSlot would not be growing. The first chunk
// starts at FIRST slots and doubles, copied, until it holds CHUNK; only then are chunks added,
// each of CHUNK slots, and nothing is copied any more — so all chunks have the same C at any
// time, and the arrays' offsets in a chunk are globals that change only while the first chunk
// grows. No page of a chunk is touched before a field on it is written (memory.grow's pages
// are zero and cost nothing until first written). A chunk's memory is not assumed zero (the
// stub runtime's heap.free of the last block rewinds its bump pointer, so reused memory can be
// dirty): every field is written before it is read — STATE and PRIORITY by allocSlot, NEXT and FD by
// watch(), HEAP_POS by schedule(), FREQUENCY by timerAdd()/timerReschedule() for PERSIST
// timers (the only ones that read it).

import { regrow, grownCapacity, allocAligned, appendChunk } from './region';
import { publishLiveCount } from './shared';

export const KIND_FREE: i32 = 0;
export const KIND_FD: i32 = 1;
export const KIND_TIMER: i32 = 2;
/** STATE holds kind << KIND_SHIFT | interest: the interest bits (EV_*, up to EV_PRI) are below it. */
export const KIND_SHIFT: i32 = 16;
const INTEREST_MASK: i32 = (1 << KIND_SHIFT) - 1;

// The record (bytes): see slotRecord().
export const STATE: usize = 0; // i32 kind << KIND_SHIFT | interest (fd: READ|WRITE|PRI|EDGE|EXCLUSIVE; timer: PERSIST|TIMEOUT)
export const NEXT: usize = 4; // i32 fd: slot + 1 of the next watcher of the same fd
export const FD: usize = 8; // i32 fd: the file descriptor
export const PRIORITY: usize = 12; // i32 -2..2 (ev.priority), 0 unless setSlotPriority() said otherwise

const CHUNK_SHIFT: i32 = 12; // 4096 slots, 112 KB
const CHUNK: i32 = 1 << CHUNK_SHIFT;
const CHUNK_MASK: i32 = CHUNK - 1;
const FIRST: i32 = 64; // the first chunk's first capacity
const SLOT_BYTES: usize = 28; // 16 record + 4 HEAP_POS + 8 FREQUENCY

let directory: usize = 0; // usize chunk addresses
let chunks: i32 = 0;
let capacity: i32 = 0; // slots in all chunks
let used: i32 = 0; // slots ever handed out: [0, used) have been initialised
let freeStack: usize = 0; // i32 slots
let freeTop: i32 = 0;
let retiredStack: usize = 0; // i32 slots, in the order retired
let retiredTop: i32 = 0;
let stackCap: i32 = 0; // of each stack
let liveCount: i32 = 0;
// The arrays' offsets in a chunk of C slots (C = capacity while the first chunk grows, then
// CHUNK); the records are at 0.
let HEAP_POS: usize = 0; // 16 C
let FREQUENCY: usize = 0; // 20 C

// @ts-ignore: decorator
@inline function chunkOf(i: i32): usize {
  return load<usize>(directory + (<usize>(i >>> CHUNK_SHIFT) << alignof<usize>()));
}
// @ts-ignore: decorator
@inline function heapPosAt(slot: i32): usize {
  return chunkOf(slot) + HEAP_POS + (<usize>(slot & CHUNK_MASK) << 2);
}
// @ts-ignore: decorator
@inline function frequencyAt(slot: i32): usize {
  return chunkOf(slot) + FREQUENCY + (<usize>(slot & CHUNK_MASK) << 3);
}

/**
 * The address of `slot`'s record (fields at STATE, NEXT, FD). Valid until the next
 * allocSlot; an operation on one slot computes it once.
 */
// @ts-ignore: decorator
@inline export function slotRecord(slot: i32): usize {
  return chunkOf(slot) + (<usize>(slot & CHUNK_MASK) << 4);
}

function setOffsets(c: usize): void {
  HEAP_POS = c << 4;
  FREQUENCY = HEAP_POS + (c << 2);
}

function grow(): void {
  growSlots();
  if (stackCap < capacity) {
    const next = grownCapacity(stackCap, capacity, 64);
    freeStack = regrow(freeStack, 0, <usize>next << 2, false); // empty: see allocSlot
    retiredStack = regrow(retiredStack, <usize>retiredTop << 2, <usize>next << 2, false);
    stackCap = next;
  }
}

function growSlots(): void {
  if (chunks > 0 && capacity < CHUNK) {
    // The first chunk, not yet full-size: twice the slots, each array copied to its new place.
    const c = <usize>capacity;
    const first = load<usize>(directory);
    const bigger = allocAligned((c << 1) * SLOT_BYTES, 64);
    const heapPos = HEAP_POS, frequency = FREQUENCY;
    setOffsets(c << 1);
    memory.copy(bigger, first, c << 4);
    memory.copy(bigger + HEAP_POS, first + heapPos, c << 2);
    memory.copy(bigger + FREQUENCY, first + frequency, c << 3);
    store<usize>(directory, bigger);
    capacity <<= 1;
    return;
  }
  const slots = chunks == 0 ? FIRST : CHUNK;
  if (chunks == 0) setOffsets(<usize>FIRST);
  directory = appendChunk(directory, chunks++, <usize>slots * SLOT_BYTES);
  capacity += slots;
}

/** A new live slot of `kind`; returns it. Only STATE is written (see the storage note). */
// @ts-ignore: decorator
@inline export function allocSlot(kind: i32, interest: i32): i32 {
  let slot: i32;
  if (freeTop != 0) {
    freeTop--;
    slot = load<i32>(freeStack + (<usize>freeTop << 2));
  } else {
    if (used == capacity) grow();
    slot = used++;
  }
  const record = slotRecord(slot);
  store<i32>(record + STATE, kind << KIND_SHIFT | interest);
  store<i32>(record + PRIORITY, 0);
  publishLiveCount(++liveCount);
  return slot;
}

/** Releases a live slot (its record at `record`); it becomes reusable at the next collect(). */
// @ts-ignore: decorator
@inline export function retireRecord(slot: i32, record: usize): void {
  // PRIORITY is left as it is: collect() may still order this slot's last entry by it.
  if (load<i32>(record + PRIORITY) != 0) prioritized--;
  store<i32>(record + STATE, KIND_FREE);
  store<i32>(retiredStack + (<usize>retiredTop << 2), slot);
  retiredTop++;
  publishLiveCount(--liveCount);
}

/** Releases a live slot; it becomes reusable at the next collect(). */
export function retireSlot(slot: i32): void {
  retireRecord(slot, slotRecord(slot));
}

/** Called at the start of a batch: the previous dispatch list is no longer being walked. */
export function recycleRetired(): void {
  // The last retired goes deepest, the first retired on top.
  let top = freeTop;
  for (let k = retiredTop - 1; k >= 0; k--) {
    store<i32>(freeStack + (<usize>top << 2), load<i32>(retiredStack + (<usize>k << 2)));
    top++;
  }
  freeTop = top;
  retiredTop = 0;
}

/** Whether `slot` (any number) has been handed out, so that slotRecord(slot) is valid. */
// @ts-ignore: decorator
@inline export function slotExists(slot: i32): bool {
  return <u32>slot < <u32>used;
}

export function liveSlots(): i32 { return liveCount; }

/** Live slots whose priority is not 0: while there are none, collect() does not reorder. */
export let prioritized: i32 = 0;

/** Sets a live slot's priority (-2..2, checked by the caller). */
export function setSlotPriority(slot: i32, priority: i32): void {
  const record = slotRecord(slot);
  const was = load<i32>(record + PRIORITY);
  if ((was != 0) != (priority != 0)) prioritized += priority != 0 ? 1 : -1;
  store<i32>(record + PRIORITY, priority);
}

// @ts-ignore: decorator
@inline export function slotPriority(slot: i32): i32 { return load<i32>(slotRecord(slot) + PRIORITY); }

// @ts-ignore: decorator
@inline export function slotInterest(slot: i32): i32 { return load<i32>(slotRecord(slot) + STATE) & INTEREST_MASK; }
// @ts-ignore: decorator
@inline export function slotNext(slot: i32): i32 { return load<i32>(slotRecord(slot) + NEXT); }
// @ts-ignore: decorator
@inline export function setSlotNext(slot: i32, v: i32): void { store<i32>(slotRecord(slot) + NEXT, v); }
// @ts-ignore: decorator
@inline export function slotHeapPos(slot: i32): i32 { return load<i32>(heapPosAt(slot)); }
// @ts-ignore: decorator
@inline export function setSlotHeapPos(slot: i32, v: i32): void { store<i32>(heapPosAt(slot), v); }
// @ts-ignore: decorator
@inline export function slotFrequency(slot: i32): f64 { return load<f64>(frequencyAt(slot)); }
// @ts-ignore: decorator
@inline export function setSlotFrequency(slot: i32, v: f64): void { store<f64>(frequencyAt(slot), v); }
