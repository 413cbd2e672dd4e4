// The yardstick for the core workload: assembly/'s algorithm — slot table with free and
// retired stacks, per-fd watcher lists with generations, a 4-ary heap of timers whose 16-byte
// entries carry their keys (deadline f64, sequence u32, slot i32) with positions in the slots,
// sentinel-padded groups of four children and Floyd's pop (touching the next level's groups
// ahead), a backlog taken at once (partition, introsort, Floyd's heapify), watch() updating
// the fd's interest union from the new watcher alone, and collect()
// building the dispatch list — over plain JS typed arrays, kept in bench/ only. If the
// WebAssembly core is not at least as fast as this on an operation, the crossing or the layout
// is costing more than WebAssembly saves.
//
// Layout: heap entries as the core's, 16 bytes each in one ArrayBuffer (read through
// Float64Array/Uint32Array/Int32Array views); slot fields in JS's natural way, typed arrays —
// state (kind << 8 | interest), link (next, fd pairs), heap position, frequency — where the
// core keeps a 16-byte record (state, next, fd) per slot beside dense arrays of heap positions
// and frequencies; each field written only where the core writes it. Growth doubles and
// copies where the core adds chunks: the workload grows both sides in an untimed pass first,
// so growth is not timed.

const KIND_FREE = 0;
const KIND_FD = 1;
const KIND_TIMER = 2;
const EV_TIMEOUT = 1;
const EV_PERSIST = 4;
const EV_ERROR = 32;
const RW = 2 | 16;
const REV_INVALID = 32;
const REV_HUP = 64;
/** Heap position of the root; the children of p are 4p - 8 .. 4p - 5, its parent (p >> 2) + 2. */
const ROOT = 3;
const SEQ_SENTINEL = 0xffffffff;
/** collect() pops one by one until this many, or a sixteenth of the heap, then takes the rest at once. */
const BULK_MIN = 1024;

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
  state = new Int32Array(64); // kind << 8 | interest
  link = new Int32Array(2 * 64); // fd events: next watcher (slot + 1) at 2 slot, fd at 2 slot + 1
  heapPos = new Int32Array(64);
  frequency = new Float64Array(64);
  used = 0;
  free = new Int32Array(64);
  freeTop = 0;
  retired = new Int32Array(64);
  retiredTop = 0;
  live = 0;
  // fds
  fdHead = new Int32Array(64);
  fdTail = new Int32Array(64);
  fdUnion = new Int32Array(64);
  fdGen = new Int32Array(64);
  fdCap = 0;
  opKind = 0;
  // heap: entry at position p = deadline hd[2p], sequence hs[4p + 2], slot hslot[4p + 3]
  hd = new Float64Array(2 * 64);
  hs = new Uint32Array(this.hd.buffer);
  hslot = new Int32Array(this.hd.buffer);
  size = 0;
  nextSequence = 0;
  /** The sum of what #popDue reads ahead (keeps the reads). */
  touched = 0;
  // batch
  /** Ready records: fd, generation, revents — as the backend writes them into the core's memory. */
  ready = new Int32Array(3 * 64);
  list = new Int32Array(2 * 64);
  listLen = 0;

  #allocSlot(kind: number, interest: number): number {
    let slot: number;
    if (this.freeTop !== 0) {
      slot = this.free[--this.freeTop];
    } else {
      slot = this.used++;
      if (slot >= this.state.length) {
        const n = slot + 1;
        this.state = grow(this.state, n);
        this.link = grow(this.link, 2 * n);
        this.heapPos = grow(this.heapPos, n);
        this.frequency = grow(this.frequency, n);
        this.free = grow(this.free, n);
        this.retired = grow(this.retired, n);
      }
    }
    this.state[slot] = (kind << 8) | interest;
    this.live++;
    return slot;
  }

  #retire(slot: number): void {
    this.state[slot] = KIND_FREE;
    this.retired[this.retiredTop++] = slot;
    this.live--;
  }

  #recycleRetired(): void {
    const free = this.free, retired = this.retired;
    let top = this.freeTop;
    for (let k = this.retiredTop - 1; k >= 0; k--) free[top++] = retired[k];
    this.freeTop = top;
    this.retiredTop = 0;
  }

  #isLive(slot: number): boolean {
    return slot >= 0 && slot < this.used && this.state[slot] >> 8 !== KIND_FREE;
  }

  // ---- timers -------------------------------------------------------------------------------

  /** Offset 0..3 of the earliest entry of the group of four at position g. */
  #minOfGroup(g: number): number {
    const hd = this.hd, hs = this.hs;
    const d0 = hd[2 * g], d1 = hd[2 * g + 2], d2 = hd[2 * g + 4], d3 = hd[2 * g + 6];
    const s0 = hs[4 * g + 2], s1 = hs[4 * g + 6], s2 = hs[4 * g + 10], s3 = hs[4 * g + 14];
    const a = d1 < d0 || (d1 === d0 && s1 < s0) ? 1 : 0;
    const da = a ? d1 : d0, sa = a ? s1 : s0;
    const b = d3 < d2 || (d3 === d2 && s3 < s2) ? 3 : 2;
    const db = b === 3 ? d3 : d2, sb = b === 3 ? s3 : s2;
    return db < da || (db === da && sb < sa) ? b : a;
  }

  /** Moves the entry at position `from` to position `to` and tells its slot. */
  #move(from: number, to: number): void {
    const hd = this.hd, hs = this.hs, hslot = this.hslot;
    hd[2 * to] = hd[2 * from];
    hs[4 * to + 2] = hs[4 * from + 2];
    const slot = hslot[4 * from + 3];
    hslot[4 * to + 3] = slot;
    this.heapPos[slot] = to;
  }

  #write(p: number, d: number, s: number, slot: number): void {
    this.hd[2 * p] = d;
    this.hs[4 * p + 2] = s;
    this.hslot[4 * p + 3] = slot;
    this.heapPos[slot] = p;
  }

  #sentinel(p: number): void {
    this.hd[2 * p] = Infinity;
    this.hs[4 * p + 2] = SEQ_SENTINEL;
  }

  #siftUp(p: number, d: number, s: number, slot: number): void {
    const hd = this.hd, hs = this.hs;
    while (p > ROOT) {
      const q = (p >> 2) + 2;
      const dq = hd[2 * q];
      if (!(d < dq || (d === dq && s < hs[4 * q + 2]))) break;
      this.#move(q, p);
      p = q;
    }
    this.#write(p, d, s, slot);
  }

  #siftDown(p: number, d: number, s: number, slot: number): void {
    const hd = this.hd, hs = this.hs;
    const last = this.size + 2;
    for (;;) {
      const g = (p << 2) - 8;
      if (g > last) break;
      const c = g + this.#minOfGroup(g);
      const dc = hd[2 * c];
      if (!(dc < d || (dc === d && hs[4 * c + 2] < s))) break;
      this.#move(c, p);
      p = c;
    }
    this.#write(p, d, s, slot);
  }

  /** Before the sequence would wrap: sort the entries (a sorted array is a heap), number them 0.. */
  #renumber(): void {
    const n = this.size;
    this.#sort(ROOT, ROOT + n - 1);
    for (let k = 0; k < n; k++) this.#write(ROOT + k, this.hd[2 * (ROOT + k)], k, this.hslot[4 * (ROOT + k) + 3]);
    this.nextSequence = n;
  }

  #before(p: number, q: number): boolean {
    const dp = this.hd[2 * p], dq = this.hd[2 * q];
    return dp < dq || (dp === dq && this.hs[4 * p + 2] < this.hs[4 * q + 2]);
  }

  #swap(p: number, q: number): void {
    const hd = this.hd, hs = this.hs, hslot = this.hslot;
    const d = hd[2 * p], s = hs[4 * p + 2], slot = hslot[4 * p + 3];
    hd[2 * p] = hd[2 * q];
    hs[4 * p + 2] = hs[4 * q + 2];
    hslot[4 * p + 3] = hslot[4 * q + 3];
    hd[2 * q] = d;
    hs[4 * q + 2] = s;
    hslot[4 * q + 3] = slot;
  }

  /** Positions lo..hi by (deadline, sequence): the core's introsort (timers.ts sortPositions). */
  #sort(lo: number, hi: number): void {
    const hd = this.hd, hs = this.hs;
    let depth = 2 * (32 - Math.clz32(hi - lo + 1));
    while (hi - lo > 16) {
      if (depth-- === 0) {
        this.#heapsort(lo, hi - lo + 1);
        return;
      }
      const mid = lo + ((hi - lo) >> 1);
      if (this.#before(mid, lo)) this.#swap(mid, lo);
      if (this.#before(hi, lo)) this.#swap(hi, lo);
      if (this.#before(hi, mid)) this.#swap(hi, mid);
      const pd = hd[2 * mid], ps = hs[4 * mid + 2];
      let i = lo - 1, j = hi + 1;
      for (;;) {
        do i++; while (hd[2 * i] < pd || (hd[2 * i] === pd && hs[4 * i + 2] < ps));
        do j--; while (pd < hd[2 * j] || (pd === hd[2 * j] && ps < hs[4 * j + 2]));
        if (i >= j) break;
        this.#swap(i, j);
      }
      if (j - lo < hi - j) {
        this.#sort(lo, j);
        lo = j + 1;
      } else {
        this.#sort(j + 1, hi);
        hi = j;
      }
    }
    for (let k = lo + 1; k <= hi; k++) for (let m = k; m > lo && this.#before(m, m - 1); m--) this.#swap(m, m - 1);
  }

  #heapsort(base: number, n: number): void {
    const sift = (i: number, n: number) => {
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && this.#before(base + c, base + c + 1)) c++;
        if (!this.#before(base + i, base + c)) return;
        this.#swap(base + i, base + c);
        i = c;
      }
    };
    for (let start = (n >> 1) - 1; start >= 0; start--) sift(start, n);
    for (let end = n - 1; end > 0; end--) {
      this.#swap(base, base + end);
      sift(0, end);
    }
  }

  /** Every timer due at `now`, at once, in order (timers.ts takeDue): partition, sort, rebuild. */
  #takeDue(now: number): void {
    const hd = this.hd;
    if (this.size === 0 || hd[2 * ROOT] > now) return;
    const last = this.size + 2;
    let i = ROOT, j = last;
    for (;;) {
      while (i <= j && hd[2 * i] > now) i++;
      while (i <= j && hd[2 * j] <= now) j--;
      if (i >= j) break;
      this.#swap(i, j);
      i++;
      j--;
    }
    this.#sort(i, last);
    for (let p = i; p <= last; p++) this.#append(this.hslot[4 * p + 3], EV_TIMEOUT);
    this.size = i - ROOT;
    const nlast = this.size + 2;
    for (let p = nlast + 1; p <= (nlast | 3); p++) this.#sentinel(p);
    for (let p = ROOT; p <= nlast; p++) this.heapPos[this.hslot[4 * p + 3]] = p;
    for (let p = (nlast >> 2) + 2; p >= ROOT; p--) this.#siftDown(p, hd[2 * p], this.hs[4 * p + 2], this.hslot[4 * p + 3]);
  }

  #schedule(slot: number, now: number, frequency: number): void {
    const p = this.size + ROOT;
    if (2 * (p + 4) > this.hd.length) {
      this.hd = grow(this.hd, 2 * (p + 4));
      this.hs = new Uint32Array(this.hd.buffer);
      this.hslot = new Int32Array(this.hd.buffer);
    }
    if (this.nextSequence === SEQ_SENTINEL) this.#renumber();
    if ((p & 3) === 0) {
      this.#sentinel(p + 1);
      this.#sentinel(p + 2);
      this.#sentinel(p + 3);
    }
    this.size++;
    this.#siftUp(p, now + frequency, this.nextSequence++, slot);
  }

  #unschedule(slot: number): void {
    const p = this.heapPos[slot];
    const last = this.size + 2;
    this.size--;
    const d = this.hd[2 * last], s = this.hs[4 * last + 2], moved = this.hslot[4 * last + 3];
    this.#sentinel(last);
    if (p === last) return;
    if (p > ROOT) {
      const q = (p >> 2) + 2;
      const dq = this.hd[2 * q];
      if (d < dq || (d === dq && s < this.hs[4 * q + 2])) {
        this.#siftUp(p, d, s, moved);
        return;
      }
    }
    this.#siftDown(p, d, s, moved);
  }

  #popDue(now: number): number {
    if (this.size === 0) return -1;
    const hd = this.hd;
    if (hd[2 * ROOT] > now) return -1;
    const root = this.hslot[4 * ROOT + 3];
    const last = this.size + 2;
    this.size--;
    if (last !== ROOT) {
      const d = hd[2 * last], s = this.hs[4 * last + 2], moved = this.hslot[4 * last + 3];
      this.#sentinel(last);
      const nlast = last - 1;
      let p = ROOT;
      for (;;) {
        const g = (p << 2) - 8;
        if (g > nlast) break;
        const gg = (g << 2) - 8; // the next level's four candidate groups: touched ahead
        if (gg <= nlast) this.touched += hd[2 * gg] + hd[2 * gg + 8] + hd[2 * gg + 16] + hd[2 * gg + 24];
        const c = g + this.#minOfGroup(g);
        this.#move(c, p);
        p = c;
      }
      this.#siftUp(p, d, s, moved);
    } else {
      this.#sentinel(last);
    }
    return root;
  }

  timerAdd(now: number, frequency: number, flags: number): number {
    const slot = this.#allocSlot(KIND_TIMER, flags & (EV_PERSIST | EV_TIMEOUT));
    if (flags & EV_PERSIST) this.frequency[slot] = frequency;
    this.#schedule(slot, now, frequency);
    return slot;
  }

  nextTimeout(now: number): number {
    const d = (this.size === 0 ? Infinity : this.hd[2 * ROOT]) - now;
    if (d === Infinity) return -1;
    if (d <= 0) return 0;
    return d >= 2147483647 ? 2147483647 : Math.ceil(d);
  }

  release(slot: number): number {
    if (!this.#isLive(slot)) return 0;
    if (this.state[slot] >> 8 === KIND_FD) this.#unwatch(slot);
    else {
      this.#unschedule(slot);
      this.#retire(slot);
    }
    return 1;
  }

  // ---- fds ----------------------------------------------------------------------------------

  #unionOf(fd: number): number {
    let rw = 0, allEdge = 8, exclusive = 0;
    for (let link = this.fdHead[fd]; link !== 0; link = this.link[2 * (link - 1)]) {
      const interest = this.state[link - 1] & 0xff;
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
    const slot = this.#allocSlot(KIND_FD, interest);
    this.link[2 * slot] = 0;
    this.link[2 * slot + 1] = fd;
    const tail = this.fdTail[fd];
    if (tail === 0) {
      this.fdHead[fd] = slot + 1;
      this.fdGen[fd] = (this.fdGen[fd] + 1) | 0;
    } else {
      this.link[2 * (tail - 1)] = slot + 1;
    }
    this.fdTail[fd] = slot + 1;
    // #unionOf() with one more watcher, without walking the list.
    const before = this.fdUnion[fd];
    const after = tail === 0 ? interest & (RW | 8 | 128) : ((before | interest) & (RW | 128)) | (before & interest & 8);
    this.fdUnion[fd] = after;
    this.opKind = tail === 0 ? 1 : after !== before ? 2 : 0;
    return slot;
  }

  #unwatch(slot: number): void {
    const fd = this.link[2 * slot + 1];
    let prev = 0;
    let link = this.fdHead[fd];
    while (link !== 0 && link !== slot + 1) {
      prev = link;
      link = this.link[2 * (link - 1)];
    }
    const next = this.link[2 * slot];
    if (prev === 0) this.fdHead[fd] = next;
    else this.link[2 * (prev - 1)] = next;
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
      const next = this.link[2 * (link - 1)];
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
      for (let link = this.fdHead[fd]; link !== 0; link = this.link[2 * (link - 1)]) {
        const which = mask & ((this.state[link - 1] & RW) | EV_ERROR);
        if (which !== 0) this.#append(link - 1, which);
      }
      if (revents & REV_INVALID) this.#forgetFd(fd);
    }
    const firstTimer = this.listLen;
    const bulkAfter = Math.max(BULK_MIN, this.size >> 4);
    let popped = 0;
    for (let slot = this.#popDue(now); slot >= 0; slot = this.#popDue(now)) {
      this.#append(slot, EV_TIMEOUT);
      if (++popped === bulkAfter) {
        this.#takeDue(now);
        break;
      }
    }
    for (let k = firstTimer; k < this.listLen; k++) {
      const slot = this.list[2 * k];
      if (this.state[slot] & EV_PERSIST) this.#schedule(slot, now, this.frequency[slot]);
      else this.#retire(slot);
    }
    return this.listLen;
  }
}
