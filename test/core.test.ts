// The WebAssembly core on its own: the timer heap's order and the dispatch list's shape.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { instantiateCore } from '../src/core.js';

const TIMEOUT = 1, PERSIST = 4, READ = 2, WRITE = 16, ERROR = 32;
const REV_HUP = 64, REV_INVALID = 32;

function entries(core: ReturnType<typeof instantiateCore>, n: number): [number, number][] {
  const v = new Int32Array(core.memory.buffer, core.dispatchPtr(), n * 2);
  return Array.from({ length: n }, (_, i) => [v[2 * i], v[2 * i + 1]]);
}

function putRecords(core: ReturnType<typeof instantiateCore>, records: [number, number, number][]) {
  const v = new Int32Array(core.memory.buffer, core.readyPtr(), records.length * 3);
  records.forEach(([fd, gen, rev], i) => v.set([fd, gen, rev], i * 3));
}

test('equal deadlines pop in insertion order; others by deadline', () => {
  const core = instantiateCore();
  const slots = [5, 3, 5, 1, 5, 3].map((ms) => core.timerAdd(100, ms, 0));
  assert.is(core.nextTimeout(100), 1);
  const n = core.collect(200, 0);
  assert.equal(entries(core, n).map(([s]) => s), [slots[3], slots[1], slots[5], slots[0], slots[2], slots[4]]);
  assert.is(core.timerCount(), 0);
});

test('the heap agrees with a sorted model over random schedules and cancels', () => {
  const core = instantiateCore();
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
  const core = instantiateCore();
  const p = core.timerAdd(0, 10, PERSIST);
  core.timerAdd(0, 10, 0);
  assert.is(core.collect(15, 0), 2);
  assert.is(core.timerCount(), 1);
  assert.is(core.nextTimeout(15), 10, 're-armed at 15 + 10');
  assert.is(core.collect(24.9, 0), 0);
  assert.equal(entries(core, core.collect(25, 0)), [[p, TIMEOUT]]);
});

test('readiness fans out per watcher interest; stale generations are dropped; HUP and INVALID', () => {
  const core = instantiateCore();
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
  assert.equal(entries(core, core.collect(0, 1)), [[r, READ | ERROR], [w, WRITE | ERROR]]);
  assert.is(core.pendingCount(), 0, 'an invalid fd ends its watchers');
  assert.is(core.release(r), 0);
  // Re-registering the number starts a new generation: old records are stale.
  core.watch(7, READ);
  assert.is(core.lastOpKind(), 1);
  assert.is(core.lastOpGen(), gen + 1);
  putRecords(core, [[7, gen, READ]]);
  assert.is(core.collect(0, 1), 0);
});

test('released slots are not reused until the next collect', () => {
  const core = instantiateCore();
  const a = core.watch(3, READ);
  core.release(a);
  assert.is(core.lastOpKind(), 3, 'REMOVE');
  const b = core.watch(4, READ);
  assert.not.equal(b, a, 'a slot released during a batch is not handed out in it');
  core.collect(0, 0);
  const c = core.watch(5, READ);
  assert.is(c, a, 'after collect() it is');
});

test.run();
