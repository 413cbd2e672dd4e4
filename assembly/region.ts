// A growable block of linear memory: the core's only allocation primitive.
//
// Growing may move the block and may call memory.grow, which detaches every ArrayBuffer the
// JS side holds: the JS side re-fetches memory.buffer after every call that can grow.

/** Returns a block of at least `bytes`, holding the first `usedBytes` of `ptr` and zeros after. */
export function regrow(ptr: usize, usedBytes: usize, bytes: usize): usize {
  const next = ptr == 0 ? heap.alloc(bytes) : heap.realloc(ptr, bytes);
  memory.fill(next + usedBytes, 0, bytes - usedBytes);
  return next;
}

/** The smallest power-of-two multiple of `current` (at least `minimum`) that holds `needed`. */
export function grownCapacity(current: i32, needed: i32, minimum: i32): i32 {
  let c = max(current, minimum);
  while (c < needed) c <<= 1;
  return c;
}
