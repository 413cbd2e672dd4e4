// The debug build of the core (dist/core-debug.wasm), which test/core.test.ts and bench/core.ts
// load: the release exports (index.ts) plus calls that only they make. The release build has none
// of these; src/ reads what it needs from the shared words (shared.ts) instead.

import { SHARED, SHARED_LIST, SHARED_READY, SHARED_READY_CAPACITY } from './shared';
import { sharedPtr } from './dispatch';
import { liveSlots } from './slots';
import { earliestDeadline, scheduledCount } from './timers';

export * from './index';
export { setNextSequence } from './timers'; // the sequence wrap, without 2^32 schedules
export { setBulkMin } from './dispatch'; // the backlog path, on small heaps

/** The ready area's address (shared word), allocated first if need be. */
export function readyPtr(): usize { return load<u32>(sharedPtr(), SHARED_READY); }
/** The ready area's capacity in records (shared word), allocated first if need be. */
export function readyCapacity(): i32 { return load<i32>(sharedPtr(), SHARED_READY_CAPACITY); }
/** The dispatch list's address (shared word). */
export function dispatchPtr(): usize { return load<u32>(SHARED, SHARED_LIST); }

/**
 * Whole ms until the nearest timer, rounded up so a wait never ends before it; 0 if due, -1 if
 * none. From the heap itself, not the shared words, so tests can check the two against each other
 * (the JS side computes the same from the shared words).
 */
export function nextTimeout(now: f64): i32 {
  const d = earliestDeadline() - now;
  if (d == Infinity) return -1;
  if (d <= 0) return 0;
  return d >= 2147483647.0 ? 2147483647 : <i32>Math.ceil(d);
}

/** The live slot count, from the slot table rather than the shared words. */
export function pendingCount(): i32 { return liveSlots(); }
/** The timers in the heap. */
export function timerCount(): i32 { return scheduledCount(); }
