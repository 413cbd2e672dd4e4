// The WebAssembly core on its own: the timer heap's order and the dispatch list's shape. Tests
// load the debug build (dist/core-debug.wasm: the release exports plus test-only calls).
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core as CoreWrapper, instantiateCore, RETIRED, type DebugCoreExports } from '../src/core.js';

type Core = DebugCoreExports;
const debugCore = (): Core => instantiateCore('dist/core-debug.wasm');

const TIMEOUT = 1, PERSIST = 4, READ = 2, WRITE = 16, ERROR = 32, PRI = 256;
const REV_HUP = 64, REV_INVALID = 32, REV_PRI = 256;

function entries(core: Core, n: number): [number, number][] {
  const v = new Int32Array(core.memory.buffer, core.dispatchPtr(), n * 2);
  return Array.from({ length: n }, (_, i) => [v[2 * i], v[2 * i + 1]]);
}

function putRecords(core: Core, records: [number, number, number][]) {
  const v = new Int32Array(core.memory.buffer, core.readyPtr(), records.length * 3);
  records.forEach(([fd, gen, rev], i) => v.set([fd, gen, rev], i * 3));
}

test('equal deadlines pop in insertion order; others by deadline', () => {
  const core = debugCore();
  const slots = [5, 3, 5, 1, 5, 3].map((ms) => core.timerAdd(100, ms, 0));
  assert.is(core.nextTimeout(100), 1);
  const n = core.collect(200, 0);
  assert.equal(entries(core, n).map(([s]) => s), [slots[3], slots[1], slots[5], slots[0], slots[2], slots[4]]);
  assert.is(core.timerCount(), 0);
});

test('the heap agrees with a sorted model over random schedules and cancels', () => {
  const core = debugCore();
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const model = new Map<number, [number, number]>(); // slot -> [deadline, seq]
  let seq = 0;
  for (let round = 0; round < 2000; round++) {
    if (rand() < 0.6 || model.size === 0) {
      const ms = Math.floor(rand() * 50);
      const slot = core.timerAdd(0, ms, 0);
      model.set(slot, [ms, seq++]);
    } else {
      const keys = [...model.keys()];
      const slot = keys[Math.floor(rand() * keys.length)];
      assert.is(core.release(slot), 1);
      model.delete(slot);
    }
  }
  const expected = [...model.entries()].sort((a, b) => a[1][0] - b[1][0] || a[1][1] - b[1][1]).map(([s]) => s);
  const n = core.collect(1000, 0);
  assert.equal(entries(core, n).map(([s]) => s), expected);
});

test('PERSIST timers are re-armed at now + frequency after being collected', () => {
  const core = debugCore();
  const p = core.timerAdd(0, 10, PERSIST);
  core.timerAdd(0, 10, 0);
  assert.is(core.collect(15, 0), 2);
  assert.is(core.timerCount(), 1);
  assert.is(core.nextTimeout(15), 10, 're-armed at 15 + 10');
  assert.is(core.collect(24.9, 0), 0);
  assert.equal(entries(core, core.collect(25, 0)), [[p, TIMEOUT]]);
});

test('readiness fans out per watcher interest; stale generations are dropped; HUP and INVALID', () => {
  const core = debugCore();
  const r = core.watch(7, READ);
  assert.is(core.lastOpKind(), 1, 'ADD');
  const gen = core.lastOpGen();
  const w = core.watch(7, WRITE);
  assert.is(core.lastOpKind(), 2, 'MODIFY');
  assert.is(core.lastOpInterest(), READ | WRITE);
  assert.is(core.lastOpGen(), gen);
  putRecords(core, [[7, gen, READ], [7, gen + 1, WRITE], [99, 1, READ]]);
  assert.equal(entries(core, core.collect(0, 3)), [[r, READ]]);
  putRecords(core, [[7, gen, REV_HUP]]);
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ], [w, WRITE]]);
  putRecords(core, [[7, gen, REV_INVALID]]);
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ | ERROR | RETIRED], [w, WRITE | ERROR | RETIRED]]);
  assert.is(core.pendingCount(), 0, 'an invalid fd ends its watchers');
  assert.is(core.release(r), 0);
  // Re-registering the number starts a new generation: old records are stale.
  core.watch(7, READ);
  assert.is(core.lastOpKind(), 1);
  assert.is(core.lastOpGen(), gen + 1);
  putRecords(core, [[7, gen, READ]]);
  assert.is(core.collect(0, 1), 0);
});

test('PRI: asked in the union, delivered when revents has it; HUP is READ/WRITE, and PRI only for a watcher of PRI alone', () => {
  const core = debugCore();
  const r = core.watch(5, READ);
  const gen = core.lastOpGen();
  const p = core.watch(5, PRI);
  assert.is(core.lastOpKind(), 2, 'MODIFY');
  assert.is(core.lastOpInterest(), READ | PRI);
  const rp = core.watch(5, READ | PRI);
  assert.is(core.lastOpKind(), 0, 'nothing new asked');
  putRecords(core, [[5, gen, REV_PRI]]);
  assert.equal(entries(core, core.collect(0, 1)), [[p, PRI], [rp, PRI]], 'urgent data alone: READ watchers are not woken');
  putRecords(core, [[5, gen, READ | REV_PRI]]);
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ], [p, PRI], [rp, READ | PRI]]);
  putRecords(core, [[5, gen, REV_HUP]]);
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ], [p, PRI], [rp, READ]], 'HUP: PRI only where nothing else is watched');
  putRecords(core, [[5, gen, REV_HUP | REV_PRI]]);
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ], [p, PRI], [rp, READ | PRI]]);
  core.release(rp);
  core.release(r);
  assert.equal([core.lastOpKind(), core.lastOpInterest()], [2, PRI], 'the union drops READ with its last watcher');
  putRecords(core, [[5, gen, REV_INVALID]]);
  assert.equal(entries(core, core.collect(0, 1)), [[p, PRI | ERROR | RETIRED]]);
});

test('an fd event asking PRI (256) is still an fd event: the slot kind is kept apart from the interest bits', () => {
  const core = debugCore();
  const p = core.watch(6, PRI | WRITE);
  assert.is(core.timerReschedule(p, 0, 5), 0, 'not taken for a timer');
  assert.is(core.timerCount(), 0);
  assert.is(core.release(p, 1), 1);
  assert.is(core.lastOpKind(), 3, 'REMOVE: released as an fd event');
});

test('released slots are not reused until the next collect', () => {
  const core = debugCore();
  const a = core.watch(3, READ);
  core.release(a);
  assert.is(core.lastOpKind(), 3, 'REMOVE');
  const b = core.watch(4, READ);
  assert.not.equal(b, a, 'a slot released during a batch is not handed out in it');
  core.collect(0, 0);
  const c = core.watch(5, READ);
  assert.is(c, a, 'after collect() it is');
});


/** The shared words (src/core.ts CoreExports.sharedPtr): live slot count at byte 12, earliest deadline at 16. */
function shared(core: Core): { live: number; earliest: number } {
  const at = core.sharedPtr();
  return { live: new Int32Array(core.memory.buffer, at + 12, 1)[0], earliest: new Float64Array(core.memory.buffer, at + 16, 1)[0] };
}

function seeded(seed: number) {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/** A reference for the heap: live timers by slot -> [deadline, order scheduled]. */
class Model {
  timers = new Map<number, [number, number]>();
  seq = 0;
  add(slot: number, deadline: number) {
    this.timers.set(slot, [deadline, this.seq++]);
  }
  earliest() {
    let e = Infinity;
    for (const [d] of this.timers.values()) if (d < e) e = d;
    return e;
  }
  /** Due at `now`, in firing order; removed from the model. */
  take(now: number): number[] {
    const due = [...this.timers.entries()].filter(([, [d]]) => d <= now).sort((a, b) => a[1][0] - b[1][0] || a[1][1] - b[1][1]);
    for (const [slot] of due) this.timers.delete(slot);
    return due.map(([slot]) => slot);
  }
}

test('the shared words hold the live count and the earliest deadline after every operation', () => {
  const core = debugCore();
  const check = (what: string, live: number, earliest: number) => {
    const w = shared(core);
    assert.is(w.live, live, `${what}: live count`);
    assert.is(w.live, core.pendingCount(), `${what}: live count = pendingCount()`);
    assert.is(w.earliest, earliest, `${what}: earliest deadline`);
  };
  check('fresh', 0, Infinity);
  const a = core.timerAdd(10, 50, 0); // 60
  check('add', 1, 60);
  const b = core.timerAdd(10, 20, 0); // 30: the new root
  check('add earlier', 2, 30);
  core.timerAdd(10, 40, 0); // 50
  check('add later', 3, 30);
  const fd = core.watch(4, READ);
  check('watch', 4, 30);
  assert.is(core.release(b), 1);
  check('cancel the root', 3, 50);
  assert.ok(core.timerReschedule(a, 10, 5)); // 15
  check('reschedule to the front', 3, 15);
  assert.is(core.collect(20, 0), 1);
  check('pop', 2, 50);
  const p = core.timerAdd(20, 100, PERSIST); // 120
  assert.is(core.collect(50, 0), 1);
  check('pop the last one-shot', 2, 120);
  assert.is(core.collect(125, 0), 1);
  check('persist re-armed at 125 + 100', 2, 225);
  core.release(fd);
  check('unwatch', 1, 225);
  core.release(p);
  check('cancel the last timer', 0, Infinity);
  // An fd the backend reports invalid ends its watchers inside collect().
  core.watch(9, READ);
  const gen = core.lastOpGen();
  core.timerAdd(0, 7, 0);
  check('watch + add', 2, 7);
  putRecords(core, [[9, gen, REV_INVALID]]);
  assert.is(core.collect(0, 1), 1);
  check('invalid fd forgotten', 1, 7);
});

test('the shared words stay at sharedPtr() and current across memory growth', () => {
  const core = debugCore();
  const at = core.sharedPtr();
  const pages = core.memory.buffer.byteLength;
  const rand = seeded(99);
  const model = new Model();
  for (let i = 0; i < 200_000; i++) {
    const ms = 1 + Math.floor(rand() * 1e6);
    model.add(core.timerAdd(1000, ms, 0), 1000 + ms);
  }
  assert.ok(core.memory.buffer.byteLength > pages, 'the memory grew');
  assert.is(core.sharedPtr(), at, 'the shared words did not move');
  assert.equal(shared(core), { live: 200_000, earliest: model.earliest() });
  const n = core.collect(1000 + 500_000, 0);
  const expected = model.take(1000 + 500_000);
  assert.is(n, expected.length);
  assert.equal(entries(core, n).map(([s]) => s), expected);
  assert.equal(shared(core), { live: 200_000 - n, earliest: model.earliest() });
});

test('equal deadlines fire FIFO across heap levels, with cancels and reschedules in between', () => {
  const core = debugCore();
  const rand = seeded(4242);
  const model = new Model();
  const live: number[] = [];
  // Five deadlines shared by thousands of timers: every level of the heap holds ties.
  for (let i = 0; i < 20_000; i++) {
    const r = rand();
    if (r < 0.75 || live.length === 0) {
      const ms = 10 * Math.floor(rand() * 5);
      const slot = core.timerAdd(0, ms, 0);
      model.add(slot, ms);
      live.push(slot);
    } else {
      const k = Math.floor(rand() * live.length);
      const slot = live[k];
      if (r < 0.9) {
        live[k] = live[live.length - 1];
        live.pop();
        assert.is(core.release(slot), 1);
        model.timers.delete(slot);
      } else {
        // Rescheduling goes behind the timers already at the new deadline.
        const ms = 10 * Math.floor(rand() * 5);
        assert.is(core.timerReschedule(slot, 0, ms), 1);
        model.timers.delete(slot);
        model.add(slot, ms);
      }
    }
  }
  for (const now of [0, 15, 25, 40]) {
    const expected = model.take(now);
    const n = core.collect(now, 0);
    assert.equal(entries(core, n).map(([s]) => s), expected, `due at ${now}`);
  }
  assert.is(core.timerCount(), 0);
});

test('pop order matches a sorted reference over a large random workload', () => {
  const core = debugCore();
  const rand = seeded(777);
  const model = new Model();
  const live: number[] = [];
  let now = 0;
  for (let round = 0; round < 60; round++) {
    const ops = 1 + Math.floor(rand() * 8000);
    for (let i = 0; i < ops; i++) {
      const r = rand();
      if (r < 0.7 || live.length === 0) {
        // Integer and fractional durations, many ties, some far away.
        const ms = r < 0.3 ? Math.floor(rand() * 100) : r < 0.6 ? rand() * 1000 : Math.floor(rand() * 100_000);
        const slot = core.timerAdd(now, ms, 0);
        model.add(slot, now + ms);
        live.push(slot);
      } else {
        const k = Math.floor(rand() * live.length);
        const slot = live[k];
        live[k] = live[live.length - 1];
        live.pop();
        assert.is(core.release(slot, 1), 1);
        model.timers.delete(slot);
      }
    }
    now += rand() * 2000;
    const expected = model.take(now);
    const n = core.collect(now, 0);
    assert.equal(entries(core, n).map(([s]) => s), expected, `round ${round}`);
    const fired = new Set(expected);
    for (let k = live.length - 1; k >= 0; k--) if (fired.has(live[k])) live.splice(k, 1);
    assert.is(core.timerCount(), model.timers.size);
    assert.is(shared(core).earliest, model.earliest());
  }
});

test('the sequence counter renumbers before it wraps: FIFO holds past 2^32 schedules', () => {
  const core = debugCore();
  const model = new Model();
  // Timers already queued with sequences just below the wrap...
  core.setNextSequence(0xffffffff - 300);
  const rand = seeded(5);
  for (let i = 0; i < 1000; i++) {
    const ms = 10 * Math.floor(rand() * 4);
    model.add(core.timerAdd(0, ms, 0), ms);
    if (i % 7 === 3) {
      // ...and cancels, so the renumbered sequences are not just 0..n-1 of the same layout.
      const [slot] = model.timers.keys();
      core.release(slot);
      model.timers.delete(slot);
    }
  }
  const n = core.collect(100, 0);
  assert.equal(entries(core, n).map(([s]) => s), model.take(100));
});

test('released slots come back earliest-released first, after the batch', () => {
  const core = debugCore();
  const slots = [1, 2, 3, 4].map((fd) => core.watch(fd, READ));
  const t = core.timerAdd(0, 5, 0);
  core.release(slots[2]);
  core.release(slots[0]);
  assert.is(core.collect(5, 0), 1, 'the timer fires, and is retired in this batch');
  assert.equal([0, 1, 2].map((fd) => core.watch(10 + fd, READ)), [slots[2], slots[0], 5]);
  core.collect(5, 0);
  assert.is(core.watch(20, READ), t, 'the fired timer\'s slot after the next collect');
  assert.is(core.watch(21, READ), 6);
});

test('growing the tables keeps every field: fd watchers, PERSIST frequencies, retired and free slots', () => {
  const core = debugCore();
  // Made while the tables are small (their first chunks grow by copying)...
  const r3 = core.watch(3, READ);
  const gen3 = core.lastOpGen();
  const w3 = core.watch(3, WRITE);
  const r5 = core.watch(5, READ);
  const gen5 = core.lastOpGen();
  const p7 = core.timerAdd(0, 7, PERSIST);
  const p11 = core.timerAdd(0, 11, PERSIST);
  const gone = [1, 2, 4].map((fd) => core.watch(fd, READ));
  core.collect(0, 0);
  const free = [core.watch(6, READ), core.watch(7, READ)];
  free.forEach((slot) => core.release(slot, 1)); // free (walked): handed out again last first
  gone.forEach((slot) => core.release(slot)); // retired until the next collect
  // ...then 20,000 timers: the first chunks double up to full size, then chunks are added.
  const many: number[] = [];
  for (let i = 0; i < 20_000; i++) many.push(core.timerAdd(0, 1000 + i, 0));
  assert.equal(many.slice(0, 2), [free[1], free[0]], 'free slots were handed out first');
  assert.ok(!many.some((slot) => gone.includes(slot)), 'retired slots wait for collect()');
  putRecords(core, [[3, gen3, READ | WRITE], [5, gen5, READ]]);
  assert.equal(entries(core, core.collect(7, 2)), [[r3, READ], [w3, WRITE], [r5, READ], [p7, TIMEOUT]]);
  assert.is(shared(core).earliest, 11);
  assert.equal(entries(core, core.collect(14, 0)), [[p11, TIMEOUT], [p7, TIMEOUT]], 'both re-armed by their own frequency');
  assert.is(shared(core).earliest, 21);
  assert.equal([0, 1, 2].map((fd) => core.watch(100 + fd, READ)), gone, 'the retired slots, in the order released');
  for (const slot of many) core.release(slot);
  assert.equal(entries(core, core.collect(30, 0)), [[p7, TIMEOUT], [p11, TIMEOUT]], 'due at 21 and 25');
});

/** The slots of a dispatch list against the model's order: the first difference, not a diff. */
function assertOrder(got: number[], expected: number[], what: string): void {
  const k = got.findIndex((slot, i) => slot !== expected[i]);
  assert.ok(k < 0 && got.length === expected.length,
    `${what}: ${got.length} timers against ${expected.length}; first difference at ${k}: ${got[k]} for ${expected[k]}`);
}

/** The model with PERSIST timers, driving the core and itself alike: the backlog tests' reference. */
class PersistModel extends Model {
  every = new Map<number, number>(); // slot -> frequency, for PERSIST timers
  schedule(core: Core, now: number, ms: number, persist: boolean): number {
    const slot = core.timerAdd(now, ms, persist ? PERSIST : 0);
    this.add(slot, now + ms);
    if (persist) this.every.set(slot, ms);
    return slot;
  }
  cancel(core: Core, slot: number): void {
    assert.is(core.release(slot), 1);
    this.timers.delete(slot);
    this.every.delete(slot);
  }
  reschedule(core: Core, slot: number, now: number, ms: number): void {
    assert.is(core.timerReschedule(slot, now, ms), 1);
    this.timers.delete(slot);
    this.add(slot, now + ms);
    if (this.every.has(slot)) this.every.set(slot, ms);
  }
  /** The core's collect(now) against the model's; PERSIST timers re-armed in the order they fired. */
  collect(core: Core, now: number, what: string): void {
    const expected = this.take(now);
    const got = entries(core, core.collect(now, 0)).map(([s]) => s);
    assertOrder(got, expected, what);
    for (const slot of expected) {
      const every = this.every.get(slot);
      if (every !== undefined) this.add(slot, now + every);
    }
    assert.is(core.timerCount(), this.timers.size, `${what}: timers left`);
    assert.is(shared(core).earliest, this.earliest(), `${what}: earliest deadline`);
  }
}

test('a backlog is taken at once in (deadline, sequence) order, and the timers left stay a heap', () => {
  const core = debugCore();
  const rand = seeded(99);
  const model = new PersistModel();
  // 60,000 timers over 0..1000 ms, integer (ties) and fractional, a tenth PERSIST.
  for (let i = 0; i < 60_000; i++) model.schedule(core, 0, i % 2 ? Math.floor(rand() * 1000) : rand() * 1000, i % 10 === 0);
  // Half are due: far past the sixteenth of the heap after which collect() takes the rest at once.
  model.collect(core, 500, 'the backlog at 500');
  // The heap positions were rebuilt: cancels and reschedules find their entries.
  let k = 0;
  for (const slot of [...model.timers.keys()]) {
    if (k++ % 3 === 0) model.cancel(core, slot);
    else if (k % 7 === 0) model.reschedule(core, slot, 500, rand() * 600);
  }
  model.collect(core, 700, 'at 700');
  model.collect(core, 2500, 'at 2500');
});

test('collect() agrees with the model whenever it takes the rest at once (any size, any threshold)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.array(
        fc.oneof(
          { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), ms: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.double({ min: 0, max: 6, noNaN: true })), persist: fc.boolean() }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('reschedule' as const), pick: fc.nat(), ms: fc.integer({ min: 0, max: 6 }) }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('collect' as const), advance: fc.integer({ min: 0, max: 4 }) }) },
        ),
        // 'max': fast-check's default size keeps arrays to ~10 ops, too few for a backlog.
        { maxLength: 200, size: 'max' },
      ),
      (bulkMin, ops) => {
        const core = debugCore();
        core.setBulkMin(bulkMin);
        const model = new PersistModel();
        let now = 0;
        for (const o of ops) {
          if (o.op === 'add') {
            model.schedule(core, now, o.ms, o.persist);
          } else if (o.op === 'collect') {
            now += o.advance;
            model.collect(core, now, `collect at ${now}`);
          } else if (model.timers.size > 0) {
            const slot = [...model.timers.keys()][o.pick % model.timers.size];
            if (o.op === 'cancel') model.cancel(core, slot);
            else model.reschedule(core, slot, now, o.ms);
          }
        }
        model.collect(core, now + 1000, 'the rest');
      },
    ),
    { numRuns: 300 },
  );
});

test('the backend interest: READ/WRITE and EXCLUSIVE of any watcher, EDGE only if all ask for it', () => {
  const core = debugCore();
  const EDGE = 8, EXCLUSIVE = 128;
  const op = () => [core.lastOpKind(), core.lastOpInterest()];
  core.watch(9, READ | EDGE | PERSIST);
  assert.equal(op(), [1, READ | EDGE], 'ADD: the first watcher\'s own bits, not PERSIST');
  core.watch(9, WRITE | EDGE);
  assert.equal(op(), [2, READ | WRITE | EDGE], 'MODIFY');
  core.watch(9, WRITE | EDGE);
  assert.equal(op(), [0, READ | WRITE | EDGE], 'nothing new');
  const level = core.watch(9, READ);
  assert.equal(op(), [2, READ | WRITE], 'a level-triggered watcher drops EDGE');
  const exclusive = core.watch(9, WRITE | EDGE | EXCLUSIVE);
  assert.equal(op(), [2, READ | WRITE | EXCLUSIVE], 'EXCLUSIVE if any; still no EDGE');
  core.watch(9, READ | EDGE);
  assert.equal(op(), [0, READ | WRITE | EXCLUSIVE]);
  core.release(level);
  assert.equal(op(), [2, READ | WRITE | EDGE | EXCLUSIVE], 'every remaining watcher wants edges');
  core.release(exclusive);
  assert.equal(op(), [2, READ | WRITE | EDGE]);
});


test('RETIRED marks the entries whose slots collect() released: one-shot timers, every Event on an invalid fd', () => {
  const core = debugCore();
  const once = core.timerAdd(0, 5, 0);
  const every = core.timerAdd(0, 5, PERSIST);
  const r7 = core.watch(7, READ);
  const gen7 = core.lastOpGen();
  const w7 = core.watch(7, WRITE | PERSIST);
  const r8 = core.watch(8, READ | PERSIST);
  const gen8 = core.lastOpGen();
  const rw9 = core.watch(9, READ | WRITE);
  const gen9 = core.lastOpGen();
  putRecords(core, [[8, gen8, READ], [7, gen7, REV_INVALID], [9, gen9, REV_HUP]]);
  assert.equal(entries(core, core.collect(5, 3)), [
    [r8, READ],
    [r7, READ | ERROR | RETIRED],
    [w7, WRITE | ERROR | RETIRED],
    [rw9, READ | WRITE],
    [once, TIMEOUT | RETIRED],
    [every, TIMEOUT],
  ]);
  assert.is(core.pendingCount(), 3);
  assert.equal([r7, w7, once].map((slot) => core.release(slot)), [0, 0, 0], 'RETIRED: released already');
  assert.equal([every, r8, rw9].map((slot) => core.release(slot)), [1, 1, 1], 'not RETIRED: still pending');
});

test('RETIRED is set exactly when collect() released the slot, and agrees with the rule JS applied before', () => {
  const FDS = 6;
  const report = fc.record({
    fd: fc.integer({ min: 0, max: FDS - 1 }),
    revents: fc.constantFrom(READ, WRITE, READ | WRITE, REV_PRI, READ | REV_PRI, REV_HUP, REV_HUP | REV_PRI, REV_INVALID, REV_INVALID | READ),
    stale: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('timer' as const), ms: fc.integer({ min: 0, max: 4 }), persist: fc.boolean() }),
          fc.record({ op: fc.constant('watch' as const), fd: fc.integer({ min: 0, max: FDS - 1 }), interest: fc.constantFrom(READ, WRITE, READ | WRITE, PRI, READ | PRI) }),
          fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
          // A backend reports an fd at most once a wait.
          fc.record({ op: fc.constant('collect' as const), advance: fc.integer({ min: 0, max: 3 }), reports: fc.uniqueArray(report, { selector: (r) => r.fd, maxLength: FDS }) }),
        ),
        { maxLength: 120, size: 'max' },
      ),
      (ops) => {
        const core = debugCore();
        const kinds = new Map<number, 'once' | 'persist' | 'fd'>(); // the pending slots
        const gens = new Map<number, number>(); // fd -> its generation
        let now = 0;
        for (const o of ops) {
          if (o.op === 'timer') {
            kinds.set(core.timerAdd(now, o.ms, o.persist ? PERSIST : 0), o.persist ? 'persist' : 'once');
          } else if (o.op === 'watch') {
            kinds.set(core.watch(o.fd, o.interest), 'fd');
            gens.set(o.fd, core.lastOpGen());
          } else if (o.op === 'release') {
            if (kinds.size === 0) continue;
            const slot = [...kinds.keys()][o.pick % kinds.size];
            assert.is(core.release(slot, 1), 1);
            kinds.delete(slot);
          } else {
            now += o.advance;
            putRecords(core, o.reports.map((r) => [r.fd, (gens.get(r.fd) ?? 0) + (r.stale ? 1 : 0), r.revents]));
            for (const [slot, which] of entries(core, core.collect(now, o.reports.length))) {
              const kind = kinds.get(slot);
              assert.ok(kind !== undefined, `an entry for pending slot ${slot}`);
              const released = kind === 'fd' ? (which & ERROR) !== 0 : kind === 'once';
              assert.is((which & RETIRED) !== 0, released, `slot ${slot} (${kind}), which ${which}`);
              if (released) {
                assert.is(core.release(slot), 0, `RETIRED slot ${slot} is released already`);
                kinds.delete(slot);
              }
            }
            assert.is(core.pendingCount(), kinds.size, 'no slot released without a RETIRED entry');
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('collect() orders by priority, stably: the list of a core without priorities, sorted 2 first', () => {
  const FDS = 6;
  const report = fc.record({
    fd: fc.integer({ min: 0, max: FDS - 1 }),
    revents: fc.constantFrom(READ, WRITE, READ | WRITE, REV_HUP, REV_INVALID),
  });
  const priority = fc.integer({ min: -2, max: 2 });
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('timer' as const), ms: fc.integer({ min: 0, max: 4 }), persist: fc.boolean(), priority }),
          fc.record({ op: fc.constant('watch' as const), fd: fc.integer({ min: 0, max: FDS - 1 }), interest: fc.constantFrom(READ, WRITE, READ | WRITE), priority }),
          fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
          fc.record({ op: fc.constant('priority' as const), pick: fc.nat(), priority }),
          fc.record({ op: fc.constant('collect' as const), advance: fc.integer({ min: 0, max: 3 }), reports: fc.uniqueArray(report, { selector: (r) => r.fd, maxLength: FDS }) }),
        ),
        { maxLength: 120, size: 'max' },
      ),
      (ops) => {
        // The same operations on two cores: `plain` never hears of a priority.
        const ordered = debugCore();
        const plain = debugCore();
        const priorities = new Map<number, number>(); // live slot -> its priority
        const gens = new Map<number, number>();
        let now = 0;
        const both = <T>(f: (core: Core) => T): T => {
          const a = f(ordered);
          assert.equal(f(plain), a, 'the cores agree');
          return a;
        };
        for (const o of ops) {
          if (o.op === 'timer' || o.op === 'watch') {
            const slot = o.op === 'timer' ? both((c) => c.timerAdd(now, o.ms, o.persist ? PERSIST : 0)) : both((c) => c.watch(o.fd, o.interest));
            if (o.op === 'watch') gens.set(o.fd, ordered.lastOpGen());
            assert.is(ordered.setPriority(slot, o.priority), 1);
            priorities.set(slot, o.priority);
          } else if (o.op === 'release' || o.op === 'priority') {
            if (priorities.size === 0) continue;
            const slot = [...priorities.keys()][o.pick % priorities.size];
            if (o.op === 'priority') {
              assert.is(ordered.setPriority(slot, o.priority), 1);
              priorities.set(slot, o.priority);
            } else {
              both((c) => c.release(slot, 1));
              priorities.delete(slot);
              assert.is(ordered.setPriority(slot, 2), 0, 'a released slot takes no priority');
            }
          } else {
            now += o.advance;
            const records: [number, number, number][] = o.reports.map((r) => [r.fd, gens.get(r.fd) ?? 0, r.revents]);
            const n = both((c) => { putRecords(c, records); return c.collect(now, records.length); });
            const got = entries(ordered, n);
            const level = ([slot]: [number, number]) => priorities.get(slot) ?? NaN;
            const expected = entries(plain, n).map((e, i) => ({ e, i })).sort((a, b) => level(b.e) - level(a.e) || a.i - b.i).map(({ e }) => e);
            assert.equal(got, expected);
            for (const [slot, which] of got) if (which & RETIRED) priorities.delete(slot);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

/** The export names of a build of the core, sorted: an instance's exports object has one property each. */
function exportNames(core: object): string[] {
  return Object.keys(core).sort();
}

// What src/ calls (src/core.ts CoreExports), and what only tests and benchmarks do (DebugCoreExports).
const RELEASE_EXPORTS = [
  '_initialize', 'collect', 'growReady', 'lastOpGen', 'lastOpInterest', 'lastOpKind', 'memory', 'release', 'setPriority', 'sharedPtr',
  'timerAdd', 'timerReschedule', 'watch',
];
const DEBUG_ONLY_EXPORTS = ['dispatchPtr', 'nextTimeout', 'pendingCount', 'readyCapacity', 'readyPtr', 'setBulkMin', 'setNextSequence', 'timerCount'];

test('the release core exports exactly what src/ calls; the debug core adds the test-only calls', () => {
  assert.equal(exportNames(instantiateCore()), RELEASE_EXPORTS);
  assert.equal(exportNames(debugCore()), [...RELEASE_EXPORTS, ...DEBUG_ONLY_EXPORTS].sort());
});

test('the Core wrapper reads the shared words where the core writes them, across memory growth', () => {
  const x = debugCore();
  const core = new CoreWrapper(x);
  const check = (now: number, what: string) => {
    assert.is(core.live(), x.pendingCount(), `${what}: live()`);
    assert.is(core.timeout(now), x.nextTimeout(now), `${what}: timeout(${now})`);
    assert.is(core.readyOffset(), x.readyPtr(), `${what}: readyOffset()`);
    assert.is(core.readyCapacity(), x.readyCapacity(), `${what}: readyCapacity()`);
  };
  check(0, 'fresh');
  const slots = [core.timerAdd(0, 7.5, 0), core.timerAdd(0, 3, 0)];
  check(1, 'two timers');
  for (let i = 0; i < 20000; i++) core.watch(i, 2); // grows the memory: the views must follow
  assert.is(core.i32.length, 0, 'the memory grew: the old view is detached');
  check(2.5, '20,000 fds');
  assert.ok(core.i32.length > 0 && core.buffer === x.memory.buffer, 'views re-made on the first read after growth');
  const length = core.collect(3, 0, core.readyCapacity());
  assert.is(core.listBase * 4, x.dispatchPtr(), 'listBase');
  assert.equal([core.i32[core.listBase], core.i32[core.listBase + 1]], [slots[1], 1 | RETIRED]);
  assert.is(length, 1);
  assert.ok(core.release(slots[0], true));
  assert.not.ok(core.release(slots[1], true), 'released by collect() already');
  check(10, 'after the release');
});

test.run();
