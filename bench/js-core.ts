// The yardstick for the core workload: assembly/'s algorithm — slot table with free and
// retired lists, per-fd watcher lists with generations, a binary heap of timer slots with
// positions ordered by (deadline, sequence), and collect() building the dispatch list — over
// plain JS typed arrays, kept in bench/ only. If the WebAssembly core is not at least as fast
// as this on an operation, the crossing or the layout is costing more than WebAssembly saves.
//
// Layout: one typed array per field (struct of arrays) where the core keeps 48-byte records;
// everything else — order, links stored as slot + 1, doubling growth — is the same.

const KIND_FREE = 0;
const KIND_FD = 1;
const KIND_TIMER = 2;
const EV_TIMEOUT = 1;
const EV_PERSIST = 4;
const EV_ERROR = 32;
const RW = 2 | 16;
const REV_INVALID = 32;
const REV_HUP = 64;

function grow<T extends Int32Array | Float64Array>(a: T, needed: number): T {
  let c = Math.max(a.length, 64);
  while (c < needed) c <<= 1;
  if (c === a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(c);
  b.set(a);
  return b;
}

export class JsCore {
  // slots
  kind = new Int32Array(64);
  fd = new Int32Array(64);
  interest = new Int32Array(64);
  next = new Int32Array(64);
  heapPos = new Int32Array(64);
  deadline = new Float64Array(64);
  frequency = new Float64Array(64);
  sequence = new Float64Array(64);
  used = 0;
  freeHead = 0;
  retiredHead = 0;
  live = 0;
  // fds
  fdHead = new Int32Array(64);
  fdTail = new Int32Array(64);
  fdUnion = new Int32Array(64);
  fdGen = new Int32Array(64);
  fdCap = 0;
  opKind = 0;
  // heap
  heap = new Int32Array(64);
  size = 0;
  nextSequence = 0;
  // batch
  /** Ready records: fd, generation, revents — as the backend writes them into the core's memory. */
  ready = new Int32Array(3 * 64);
  list = new Int32Array(2 * 64);
  listLen = 0;

  #allocSlot(kind: number): number {
    let slot: number;
    if (this.freeHead !== 0) {
      slot = this.freeHead - 1;
      this.freeHead = this.next[slot];
    } else {
      slot = this.used++;
      if (slot >= this.kind.length) {
        const n = slot + 1;
        this.kind = grow(this.kind, n);
        this.fd = grow(this.fd, n);
        this.interest = grow(this.interest, n);
        this.next = grow(this.next, n);
        this.heapPos = grow(this.heapPos, n);
        this.deadline = grow(this.deadline, n);
        this.frequency = grow(this.frequency, n);
        this.sequence = grow(this.sequence, n);
      }
    }
    this.kind[slot] = kind;
    this.fd[slot] = 0;
    this.interest[slot] = 0;
    this.next[slot] = 0;
    this.heapPos[slot] = 0;
    this.deadline[slot] = 0;
    this.frequency[slot] = 0;
    this.sequence[slot] = 0;
    this.live++;
    return slot;
  }

  #retire(slot: number): void {
    this.kind[slot] = KIND_FREE;
    this.next[slot] = this.retiredHead;
    this.retiredHead = slot + 1;
    this.live--;
  }

  #recycleRetired(): void {
    while (this.retiredHead !== 0) {
      const slot = this.retiredHead - 1;
      this.retiredHead = this.next[slot];
      this.next[slot] = this.freeHead;
      this.freeHead = slot + 1;
    }
  }

  #isLive(slot: number): boolean {
    return slot >= 0 && slot < this.used && this.kind[slot] !== KIND_FREE;
  }

  // ---- timers -------------------------------------------------------------------------------

  #earlier(a: number, b: number): boolean {
    const da = this.deadline[a], db = this.deadline[b];
    return da < db || (da === db && this.sequence[a] < this.sequence[b]);
  }

  #put(i: number, slot: number): void {
    this.heap[i] = slot;
    this.heapPos[slot] = i;
  }

  #siftUp(i: number): void {
    const heap = this.heap;
    const slot = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (!this.#earlier(slot, p)) break;
      this.#put(i, p);
      i = parent;
    }
    this.#put(i, slot);
  }

  #siftDown(i: number): void {
    const heap = this.heap;
    const size = this.size;
    const slot = heap[i];
    for (;;) {
      let child = (i << 1) + 1;
      if (child >= size) break;
      let c = heap[child];
      if (child + 1 < size) {
        const r = heap[child + 1];
        if (this.#earlier(r, c)) {
          child++;
          c = r;
        }
      }
      if (!this.#earlier(c, slot)) break;
      this.#put(i, c);
      i = child;
    }
    this.#put(i, slot);
  }

  #schedule(slot: number, now: number, frequency: number): void {
    if (this.size === this.heap.length) this.heap = grow(this.heap, this.size + 1);
    this.frequency[slot] = frequency;
    this.deadline[slot] = now + frequency;
    this.sequence[slot] = this.nextSequence++;
    this.#put(this.size++, slot);
    this.#siftUp(this.size - 1);
  }

  #unschedule(slot: number): void {
    const i = this.heapPos[slot];
    const last = this.heap[--this.size];
    if (i === this.size) return;
    this.#put(i, last);
    if (i > 0 && this.#earlier(last, this.heap[(i - 1) >> 1])) this.#siftUp(i);
    else this.#siftDown(i);
  }

  #popDue(now: number): number {
    if (this.size === 0) return -1;
    const root = this.heap[0];
    if (this.deadline[root] > now) return -1;
    const last = this.heap[--this.size];
    if (this.size > 0) {
      this.#put(0, last);
      this.#siftDown(0);
    }
    return root;
  }

  timerAdd(now: number, frequency: number, flags: number): number {
    const slot = this.#allocSlot(KIND_TIMER);
    this.interest[slot] = flags & (EV_PERSIST | EV_TIMEOUT);
    this.#schedule(slot, now, frequency);
    return slot;
  }

  nextTimeout(now: number): number {
    const d = (this.size === 0 ? Infinity : this.deadline[this.heap[0]]) - now;
    if (d === Infinity) return -1;
    if (d <= 0) return 0;
    return d >= 2147483647 ? 2147483647 : Math.ceil(d);
  }

  release(slot: number): number {
    if (!this.#isLive(slot)) return 0;
    if (this.kind[slot] === KIND_FD) this.#unwatch(slot);
    else {
      this.#unschedule(slot);
      this.#retire(slot);
    }
    return 1;
  }

  // ---- fds ----------------------------------------------------------------------------------

  #unionOf(fd: number): number {
    let rw = 0, allEdge = 8, exclusive = 0;
    for (let link = this.fdHead[fd]; link !== 0; link = this.next[link - 1]) {
      const interest = this.interest[link - 1];
      rw |= interest & RW;
      allEdge &= interest;
      exclusive |= interest & 128;
    }
    return rw | allEdge | exclusive;
  }

  watch(fd: number, interest: number): number {
    if (fd >= this.fdCap) {
      const n = fd + 1;
      this.fdHead = grow(this.fdHead, n);
      this.fdTail = grow(this.fdTail, n);
      this.fdUnion = grow(this.fdUnion, n);
      this.fdGen = grow(this.fdGen, n);
      this.fdCap = this.fdHead.length;
    }
    const slot = this.#allocSlot(KIND_FD);
    this.fd[slot] = fd;
    this.interest[slot] = interest;
    const tail = this.fdTail[fd];
    if (tail === 0) {
      this.fdHead[fd] = slot + 1;
      this.fdGen[fd] = (this.fdGen[fd] + 1) | 0;
    } else {
      this.next[tail - 1] = slot + 1;
    }
    this.fdTail[fd] = slot + 1;
    const before = this.fdUnion[fd];
    const after = this.#unionOf(fd);
    this.fdUnion[fd] = after;
    this.opKind = tail === 0 ? 1 : after !== before ? 2 : 0;
    return slot;
  }

  #unwatch(slot: number): void {
    const fd = this.fd[slot];
    let prev = 0;
    let link = this.fdHead[fd];
    while (link !== 0 && link !== slot + 1) {
      prev = link;
      link = this.next[link - 1];
    }
    const next = this.next[slot];
    if (prev === 0) this.fdHead[fd] = next;
    else this.next[prev - 1] = next;
    if (this.fdTail[fd] === slot + 1) this.fdTail[fd] = prev;
    this.#retire(slot);
    const before = this.fdUnion[fd];
    const after = this.fdHead[fd] === 0 ? 0 : this.#unionOf(fd);
    this.fdUnion[fd] = after;
    this.opKind = after === 0 ? 3 : after !== before ? 2 : 0;
  }

  #forgetFd(fd: number): void {
    let link = this.fdHead[fd];
    while (link !== 0) {
      const next = this.next[link - 1];
      this.#retire(link - 1);
      link = next;
    }
    this.fdHead[fd] = 0;
    this.fdTail[fd] = 0;
    this.fdUnion[fd] = 0;
  }

  /** The generation the backend would report for `fd` (the core's memory holds it for the wasm side). */
  generation(fd: number): number {
    return this.fdGen[fd];
  }

  // ---- batch --------------------------------------------------------------------------------

  ensureReady(count: number): void {
    if (this.ready.length < 3 * count) this.ready = grow(this.ready, 3 * count);
  }

  #append(slot: number, which: number): void {
    if (2 * this.listLen === this.list.length) this.list = grow(this.list, 2 * this.listLen + 2);
    this.list[2 * this.listLen] = slot;
    this.list[2 * this.listLen + 1] = which;
    this.listLen++;
  }

  collect(now: number, count: number): number {
    this.#recycleRetired();
    this.listLen = 0;
    const ready = this.ready;
    const limit = this.fdCap;
    for (let i = 0; i < count; i++) {
      const fd = ready[3 * i];
      if (fd < 0 || fd >= limit || this.fdHead[fd] === 0 || this.fdGen[fd] !== ready[3 * i + 1]) continue;
      const revents = ready[3 * i + 2];
      let mask = revents & RW;
      if (revents & REV_HUP) mask = RW;
      if (revents & REV_INVALID) mask = RW | EV_ERROR;
      for (let link = this.fdHead[fd]; link !== 0; link = this.next[link - 1]) {
        const which = mask & ((this.interest[link - 1] & RW) | EV_ERROR);
        if (which !== 0) this.#append(link - 1, which);
      }
      if (revents & REV_INVALID) this.#forgetFd(fd);
    }
    const firstTimer = this.listLen;
    for (let slot = this.#popDue(now); slot >= 0; slot = this.#popDue(now)) this.#append(slot, EV_TIMEOUT);
    for (let k = firstTimer; k < this.listLen; k++) {
      const slot = this.list[2 * k];
      if (this.interest[slot] & EV_PERSIST) this.#schedule(slot, now, this.frequency[slot]);
      else this.#retire(slot);
    }
    return this.listLen;
  }
}
