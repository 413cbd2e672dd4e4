// The core's allocation primitives over the stub runtime's bump allocator (heap.alloc, and
// heap.free, which only rewinds the bump pointer when given the last block: see regrow).
//
// Growing may move a block and may call memory.grow, which detaches every ArrayBuffer the
// JS side holds: the JS side re-fetches memory.buffer after every call that can grow.

/**
 * Returns a block of at least `bytes` holding the first `usedBytes` of `ptr`; with `zero`, the
 * bytes after them are zeros (the fd table relies on it), otherwise they are unspecified.
 */
export function regrow(ptr: usize, usedBytes: usize, bytes: usize, zero: bool = true): usize {
  // Not heap.realloc: a block that moves is copied whole there, and first touches of fresh
  // memory are what growing costs (~3 ns a byte on this machine's VM, where a page fault is
  // ~13 µs): an emptied stack or a filled-in-place area would be copied for nothing. Freeing
  // first rewinds the bump pointer if `ptr` is the last block, so the alloc returns `ptr`
  // itself, its bytes untouched, and nothing is copied; otherwise the free does nothing and
  // only the used bytes move.
  let next: usize;
  if (ptr == 0) {
    next = heap.alloc(bytes);
  } else {
    heap.free(ptr);
    next = heap.alloc(bytes);
    if (next != ptr) memory.copy(next, ptr, usedBytes);
  }
  if (zero) memory.fill(next + usedBytes, 0, bytes - usedBytes);
  return next;
}

/** A new block of `bytes` at an `align`-byte boundary (a power of two >= 16); not zeroed. */
export function allocAligned(bytes: usize, align: usize): usize {
  const p = heap.alloc(bytes + align - 16);
  return (p + align - 1) & ~(align - 1);
}

/** The smallest power-of-two multiple of `current` (at least `minimum`) that holds `needed`. */
export function grownCapacity(current: i32, needed: i32, minimum: i32): i32 {
  let c = max(current, minimum);
  while (c < needed) c <<= 1;
  return c;
}

/**
 * Appends a new chunk of `bytes` (64-byte aligned, not zeroed) to a directory of `chunks`
 * chunk addresses at `directory`; returns the directory, which moves when it grows. Its
 * capacity is implied by `chunks`: 16 addresses, doubling when full.
 */
export function appendChunk(directory: usize, chunks: i32, bytes: usize): usize {
  if (chunks == 0 || (chunks >= 16 && (chunks & (chunks - 1)) == 0)) {
    const next = grownCapacity(chunks, chunks + 1, 16);
    directory = regrow(directory, <usize>chunks << alignof<usize>(), <usize>next << alignof<usize>(), false);
  }
  store<usize>(directory + (<usize>chunks << alignof<usize>()), allocAligned(bytes, 64));
  return directory;
}
