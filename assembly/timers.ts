// The timer queue: a 4-ary min-heap whose entries carry their own keys.
//
// Entry (16 bytes): deadline f64 at 0, sequence u32 at 8, slot i32 at 12. A sift compares keys
// in the heap array itself; outside it, it only writes each moved entry's new position into its
// slot's HEAP_POS (a dense array, slots.ts).
//
// Invariants:
// - Ordered by (deadline, sequence): every entry is no earlier than its parent, so the root is
//   the earliest deadline and, of equal deadlines, the one scheduled first (the sequence grows
//   with every schedule): equal deadlines fire FIFO.
// - Positions: the entry of heap index i (0 = root) is at position i + 3, so the root is at 3,
//   the children of position p at 4p - 8 .. 4p - 5 (a group of four starting at a multiple of
//   4: one 64-byte cache line, never split across chunks) and the parent of p at (p >> 2) + 2.
//   `last` = size + 2 is the last entry's position.
// - Positions after `last` in last's group hold SENTINEL keys (+Infinity, 0xFFFFFFFF), later
//   than any entry (sequences stay below 0xFFFFFFFF, see renumber()), so a sift takes the
//   smallest of four children without checking how many there are.
// - The slot of the entry at position p records p as its HEAP_POS, so cancel is O(log n)
//   without a search. A 4-ary heap has half a binary heap's levels: at 1,000,000 timers, ten
//   cache lines down instead of twenty, each holding all four children.
// - Sequences are u32 compared as unsigned numbers: assigned in increasing order, they are
//   renumbered 0..size-1 (order kept) before the counter would wrap, so the order holds
//   forever, not just over the last 2^31 schedules.
// - The shared words (shared.ts) hold the root's deadline, +Infinity when empty, after every
//   schedule and unschedule, and after collect()'s pops.
// - Deadlines are ms on the JS side's monotonic clock (performance.now()); the core never
//   reads a clock itself.
//
// Storage: chunks of CHUNK positions (64-byte aligned) found through a directory, as the slot
// table (slots.ts): the first chunk starts at FIRST positions and doubles, copied, until it is
// full-size; after that, growing adds a chunk and copies nothing. Chunk memory is not assumed
// zero: every position is written before it is read.

import { allocAligned, appendChunk } from './region';
import { setSlotHeapPos, slotFrequency } from './slots';
import { publishEarliestDeadline } from './shared';

const ROOT: i32 = 3;
const CHUNK_SHIFT: i32 = 13; // 8192 entries, 128 KB a chunk
const CHUNK: i32 = 1 << CHUNK_SHIFT;
const CHUNK_MASK: i32 = CHUNK - 1;
const FIRST: i32 = 64; // the first chunk's first capacity: a multiple of 16 (groups of groups)
const SEQ_SENTINEL: u32 = 0xffffffff;

let directory: usize = 0; // usize chunk addresses
let chunks: i32 = 0;
let capacity: i32 = 0; // positions in all chunks
let size: i32 = 0;
let nextSequence: u32 = 0;
let touched: u32 = 0; // the sum of the bytes popDue touches ahead: keeps the loads

// @ts-ignore: decorator
@inline function at(p: i32): usize {
  return load<usize>(directory + (<usize>(p >>> CHUNK_SHIFT) << alignof<usize>())) + (<usize>(p & CHUNK_MASK) << 4);
}
// @ts-ignore: decorator
@inline function deadlineAt(e: usize): f64 { return load<f64>(e); }
// @ts-ignore: decorator
@inline function sequenceAt(e: usize): u32 { return load<u32>(e, 8); }
// @ts-ignore: decorator
@inline function slotAt(e: usize): i32 { return load<i32>(e, 12); }

/** (da, sa) before (db, sb), without branches. */
// @ts-ignore: decorator
@inline function before(da: f64, sa: u32, db: f64, sb: u32): bool {
  return (da < db) | ((da == db) & (sa < sb));
}

// @ts-ignore: decorator
@inline function write(e: usize, d: f64, s: u32, slot: i32): void {
  store<f64>(e, d);
  store<u32>(e, s, 8);
  store<i32>(e, slot, 12);
}

// @ts-ignore: decorator
@inline function sentinel(e: usize): void {
  store<f64>(e, Infinity);
  store<u32>(e, SEQ_SENTINEL, 8);
}

/** Moves the entry at `from` to position `to` (at address `dst`) and tells its slot. */
// @ts-ignore: decorator
@inline function move(from: usize, dst: usize, to: i32): void {
  store<f64>(dst, load<f64>(from));
  const tail = load<i64>(from, 8); // sequence | slot << 32
  store<i64>(dst, tail, 8);
  setSlotHeapPos(<i32>(tail >>> 32), to);
}

/** The earliest of the group of four at `g` (a multiple of 4): its offset 0..3 from g. */
// @ts-ignore: decorator
@inline function minOfGroup(e: usize): i32 {
  const d0 = deadlineAt(e), d1 = deadlineAt(e + 16), d2 = deadlineAt(e + 32), d3 = deadlineAt(e + 48);
  const s0 = sequenceAt(e), s1 = sequenceAt(e + 16), s2 = sequenceAt(e + 32), s3 = sequenceAt(e + 48);
  const a = <i32>before(d1, s1, d0, s0);
  const da = select<f64>(d1, d0, a), sa = select<u32>(s1, s0, a);
  const b = <i32>before(d3, s3, d2, s2);
  const db = select<f64>(d3, d2, b), sb = select<u32>(s3, s2, b);
  return select<i32>(2 + b, a, before(db, sb, da, sa));
}

function grow(): void {
  if (chunks > 0 && capacity < CHUNK) {
    // The first chunk, not yet full-size: twice the positions, copied.
    const bigger = allocAligned(<usize>(capacity << 1) << 4, 64);
    memory.copy(bigger, load<usize>(directory), <usize>capacity << 4);
    store<usize>(directory, bigger);
    capacity <<= 1;
    return;
  }
  const positions = chunks == 0 ? FIRST : CHUNK;
  directory = appendChunk(directory, chunks++, <usize>positions << 4);
  capacity += positions;
}

// @ts-ignore: decorator
@inline function publishEarliest(): void {
  publishEarliestDeadline(size == 0 ? Infinity : deadlineAt(at(ROOT)));
}

/** Places (d, s, slot) at or above position p, whose entry has been moved out; returns where. */
// @ts-ignore: decorator
@inline function siftUp(p: i32, d: f64, s: u32, slot: i32): i32 {
  while (p > ROOT) {
    const q = (p >> 2) + 2;
    const e = at(q);
    if (!before(d, s, deadlineAt(e), sequenceAt(e))) break;
    move(e, at(p), p);
    p = q;
  }
  write(at(p), d, s, slot);
  setSlotHeapPos(slot, p);
  return p;
}

/** Places (d, s, slot) at or below position p, whose entry has been moved out. */
function siftDown(p: i32, d: f64, s: u32, slot: i32): void {
  const last = size + 2;
  while (true) {
    const g = (p << 2) - 8;
    if (g > last) break;
    const ge = at(g);
    const c = minOfGroup(ge);
    const ce = ge + (<usize>c << 4);
    if (!before(deadlineAt(ce), sequenceAt(ce), d, s)) break;
    move(ce, at(p), p);
    p = g + c;
  }
  write(at(p), d, s, slot);
  setSlotHeapPos(slot, p);
}

/**
 * Before the sequence counter would reach SEQ_SENTINEL (after 2^32 - 1 schedules): sorts the
 * entries by (deadline, sequence) — a sorted array is a valid heap — and numbers them 0..size-1
 * in that order, which keeps every comparison's outcome. Once per ~4 billion schedules.
 */
function renumber(): void {
  const n = size;
  sortPositions(ROOT, ROOT + n - 1);
  for (let k = 0; k < n; k++) {
    const e = at(ROOT + k);
    store<u32>(e, <u32>k, 8);
    setSlotHeapPos(slotAt(e), ROOT + k);
  }
  nextSequence = <u32>n;
}

function swap(p: i32, q: i32): void {
  const a = at(p), b = at(q);
  const ad = load<f64>(a), at8 = load<i64>(a, 8);
  store<f64>(a, load<f64>(b));
  store<i64>(a, load<i64>(b, 8), 8);
  store<f64>(b, ad);
  store<i64>(b, at8, 8);
}

/** The entry at position p is before the one at q. */
// @ts-ignore: decorator
@inline function positionBefore(p: i32, q: i32): bool {
  const a = at(p), b = at(q);
  return before(deadlineAt(a), sequenceAt(a), deadlineAt(b), sequenceAt(b));
}

/**
 * Sorts positions lo..hi (inclusive) by (deadline, sequence), in place, without heap positions:
 * introsort — quicksort on a median of three, insertion sort below 16 entries, heapsort when
 * the partitions go bad (more than 2 log2 n deep). Keys are unique (sequences are), so no
 * stability is needed. Each partition pass reads its range in order: a large sort stays in the
 * cache lines it has loaded, where popping one by one misses a line a heap level.
 */
function sortPositions(lo: i32, hi: i32): void {
  let depth = 2 * (32 - clz<i32>(hi - lo + 1));
  while (hi - lo > 16) {
    if (depth-- == 0) {
      heapsortPositions(lo, hi - lo + 1);
      return;
    }
    const mid = lo + ((hi - lo) >> 1);
    if (positionBefore(mid, lo)) swap(mid, lo);
    if (positionBefore(hi, lo)) swap(hi, lo);
    if (positionBefore(hi, mid)) swap(hi, mid);
    const pe = at(mid);
    const pd = deadlineAt(pe), ps = sequenceAt(pe);
    // Hoare's partition around the median's key: lo..j before or equal, j+1..hi after or equal.
    let i = lo - 1, j = hi + 1;
    while (true) {
      do { i++; } while (before(deadlineAt(at(i)), sequenceAt(at(i)), pd, ps));
      do { j--; } while (before(pd, ps, deadlineAt(at(j)), sequenceAt(at(j))));
      if (i >= j) break;
      swap(i, j);
    }
    // Recurse into the smaller side, loop on the larger: O(log n) stack.
    if (j - lo < hi - j) {
      sortPositions(lo, j);
      lo = j + 1;
    } else {
      sortPositions(j + 1, hi);
      hi = j;
    }
  }
  for (let k = lo + 1; k <= hi; k++) {
    for (let m = k; m > lo && positionBefore(m, m - 1); m--) swap(m, m - 1);
  }
}

/** Heapsort of the n positions from `base`, as a binary max-heap over indexes 0..n-1. */
function heapsortPositions(base: i32, n: i32): void {
  for (let start = (n >> 1) - 1; start >= 0; start--) sortSift(base, start, n);
  for (let end = n - 1; end > 0; end--) {
    swap(base, base + end);
    sortSift(base, 0, end);
  }
}

function sortSift(base: i32, i: i32, n: i32): void {
  while (true) {
    let c = 2 * i + 1;
    if (c >= n) return;
    if (c + 1 < n && positionBefore(base + c, base + c + 1)) c++;
    if (!positionBefore(base + i, base + c)) return;
    swap(base + i, base + c);
    i = c;
  }
}

/** Testing only: sets the sequence counter, to exercise renumber() without 2^32 schedules. */
export function setNextSequence(v: u32): void {
  nextSequence = v;
}

/** Schedules `slot` (not in the heap) at now + frequency. */
// @ts-ignore: decorator
@inline export function schedule(slot: i32, now: f64, frequency: f64): void {
  const p = size + ROOT;
  if (p >= capacity) grow();
  if (nextSequence == SEQ_SENTINEL) renumber();
  if ((p & 3) == 0) {
    // A new group: the positions after p in it hold sentinels.
    const e = at(p);
    sentinel(e + 16);
    sentinel(e + 32);
    sentinel(e + 48);
  }
  size++;
  const d = now + frequency;
  if (siftUp(p, d, nextSequence++, slot) == ROOT) publishEarliestDeadline(d);
}

/** Re-arms a PERSIST timer that was just popped: now + its frequency. */
export function reschedulePopped(slot: i32, now: f64): void {
  schedule(slot, now, slotFrequency(slot));
}

/** Removes a timer from the heap: the entry at position `p`, its slot's HEAP_POS. */
export function unscheduleAt(p: i32): void {
  const last = size + 2;
  size--;
  const le = at(last);
  const d = deadlineAt(le), s = sequenceAt(le), moved = slotAt(le);
  sentinel(le); // before sifting: last's group is read as the children of its parent
  if (p != last) {
    // The moved entry may belong above or below its new place (never above the root, which
    // stays where it is unless it is the one removed).
    if (p > ROOT) {
      const qe = at((p >> 2) + 2);
      if (before(d, s, deadlineAt(qe), sequenceAt(qe))) {
        siftUp(p, d, s, moved);
        return;
      }
    }
    siftDown(p, d, s, moved);
  }
  if (p == ROOT) publishEarliest();
}

/** The earliest deadline, or +Infinity when no timer is scheduled. */
export function earliestDeadline(): f64 {
  return size == 0 ? Infinity : deadlineAt(at(ROOT));
}

/**
 * Removes and returns the root if it is due at `now`; -1 otherwise. The shared words are not
 * updated: the caller (collect) calls publishTimers() when it has popped all it will.
 */
export function popDue(now: f64): i32 {
  if (size == 0) return -1;
  const re = at(ROOT);
  if (deadlineAt(re) > now) return -1;
  const root = slotAt(re);
  const last = size + 2;
  size--;
  const le = at(last);
  if (last != ROOT) {
    const d = deadlineAt(le), s = sequenceAt(le), moved = slotAt(le);
    sentinel(le);
    // Floyd's pop: walk the hole down to a leaf along the smallest children (three comparisons
    // a level, no comparison with the moved entry), then sift the moved entry up from there —
    // it came from the bottom, so it rarely rises far.
    const nlast = last - 1;
    let p = ROOT;
    let pe = re;
    while (true) {
      const g = (p << 2) - 8;
      if (g > nlast) break;
      const ge = at(g);
      // The hole's next group is one of the four at 4g - 8 .. 4g + 7 (contiguous, 4 cache
      // lines): touch them while this level is compared, so two levels' misses overlap.
      const gg = (g << 2) - 8;
      if (gg <= nlast) {
        const gge = at(gg);
        touched += load<u8>(gge) + load<u8>(gge, 64) + load<u8>(gge, 128) + load<u8>(gge, 192);
      }
      const c = minOfGroup(ge);
      const ce = ge + (<usize>c << 4);
      move(ce, pe, p);
      p = g + c;
      pe = ce;
    }
    siftUp(p, d, s, moved);
  } else {
    sentinel(le);
  }
  return root;
}

/**
 * Takes every timer due at `now` out of the heap at once, passing their slots to `each` in
 * (deadline, sequence) order — the order popDue would give — for a backlog too large to pop
 * one by one: a pop walks ten levels of a million-timer heap, a cache miss a level, ~500 ns.
 * Instead: partition the positions (not due first, due after), sort the due ones, and rebuild
 * the rest into a heap bottom-up (Floyd). O(n + d log d), in place, reading the heap in order.
 * As with popDue, the taken slots keep a stale HEAP_POS until collect re-arms or retires them.
 */
export function takeDue(now: f64, each: (slot: i32) => void): void {
  if (size == 0 || deadlineAt(at(ROOT)) > now) return;
  const last = size + 2;
  let i = ROOT, j = last;
  while (true) {
    while (i <= j && deadlineAt(at(i)) > now) i++;
    while (i <= j && deadlineAt(at(j)) <= now) j--;
    if (i >= j) break;
    swap(i, j);
    i++;
    j--;
  }
  // ROOT..i-1 are not due; i..last are.
  sortPositions(i, last);
  for (let p = i; p <= last; p++) each(slotAt(at(p)));
  size = i - ROOT;
  const nlast = size + 2;
  for (let p = nlast + 1; p <= (nlast | 3); p++) sentinel(at(p));
  for (let p = ROOT; p <= nlast; p++) setSlotHeapPos(slotAt(at(p)), p);
  for (let p = (nlast >> 2) + 2; p >= ROOT; p--) {
    const e = at(p);
    siftDown(p, deadlineAt(e), sequenceAt(e), slotAt(e));
  }
}

/** Writes the earliest deadline into the shared words (after popDue calls). */
export function publishTimers(): void {
  publishEarliest();
}

export function scheduledCount(): i32 { return size; }
