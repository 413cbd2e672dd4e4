// The shared words: what the JS side reads from the core's memory instead of calling in
// (src/core.ts), 24 bytes at sharedPtr(), 8-aligned, at one address for the instance's life:
//
//   byte  0  u32  dispatch list address         dispatch.ts, whenever the list moves (collect)
//   byte  4  u32  ready area address            dispatch.ts, whenever the area moves (growReady)
//   byte  8  i32  ready area capacity, records  dispatch.ts, growReady
//   byte 12  i32  live slot count               slots.ts, at every allocSlot/retireRecord
//   byte 16  f64  earliest timer deadline, +Infinity when none is scheduled
//                                               timers.ts, after every schedule and unschedule,
//                                               and at the end of collect()'s pops
//
// Every exported call leaves them current. They are in the data segment, so memory.grow moves
// nothing (views of memory.buffer must still be made again after it).
//
// The dispatch list (at byte 0's address, collect()'s result entries long): ENTRY bytes an
// entry, int32 slot then int32 which — the EV bits for the callback, plus ENTRY_RETIRED.
//
// A leaf: the modules that write these words import it, it imports none of them.

export const SHARED: usize = memory.data(24, 8);
export const SHARED_LIST: usize = 0;
export const SHARED_READY: usize = 4;
export const SHARED_READY_CAPACITY: usize = 8;
export const SHARED_LIVE: usize = 12;
export const SHARED_EARLIEST: usize = 16;

export const ENTRY: usize = 8;
/**
 * In an entry's `which`: collect() released this entry's slot (a one-shot timer that fired, or
 * an Event on an fd the backend reported invalid), so the JS side forgets it before the callback
 * and may add the Event again. Above every EV bit (constants.ts).
 */
export const ENTRY_RETIRED: i32 = 1 << 30;

store<f64>(SHARED, Infinity, SHARED_EARLIEST);

// @ts-ignore: decorator
@inline export function publishDispatchList(address: usize): void {
  store<u32>(SHARED, <u32>address, SHARED_LIST);
}

// @ts-ignore: decorator
@inline export function publishReadyArea(address: usize, capacity: i32): void {
  store<u32>(SHARED, <u32>address, SHARED_READY);
  store<i32>(SHARED, capacity, SHARED_READY_CAPACITY);
}

// @ts-ignore: decorator
@inline export function publishLiveCount(count: i32): void {
  store<i32>(SHARED, count, SHARED_LIVE);
}

// @ts-ignore: decorator
@inline export function publishEarliestDeadline(deadline: f64): void {
  store<f64>(SHARED, deadline, SHARED_EARLIEST);
}
