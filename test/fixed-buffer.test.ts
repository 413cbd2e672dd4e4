// evpoll/net's FixedBuffer: memory allocated natively once and passed back with each read and
// write, as io_uring's registered buffers. The same answers as net.read/net.write; refusals
// that leave the buffer usable; native functions that refuse bad arguments on their own;
// memory that lives as long as its ArrayBuffer and is then freed (the addon counts the bytes
// it holds: fixedBytes()).
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { Worker, MessageChannel } from 'node:worker_threads';
import * as net from '../src/net.js';
import { addon } from '../src/native.js';
import { pipe, socketpair, throwsCode, sleep, runChild, addonPath, exposedGc, MiB, RSS_BOUNDED, report } from './helpers.js';

const gc = exposedGc();

type Op = (...args: unknown[]) => number;
const raw = addon as unknown as { fixedBuffer(size: unknown): ArrayBuffer; fixedRead: Op; fixedWrite: Op; fixedBytes(): number };
const { EAGAIN, EBADF, EPIPE } = net;

/** Collects garbage until the fixed buffers' bytes stop going down; returns them. */
async function quiesce(): Promise<number> {
  let last = -1;
  for (let stable = 0, i = 0; stable < 3 && i < 100; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const now = raw.fixedBytes();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

/**
 * Collects garbage until the fixed buffers' bytes are back at `bytes` (finalizers run on later
 * turns of Node's loop: an external ArrayBuffer's through an immediate), or gives up after ~2 s.
 */
async function settle(bytes: number): Promise<number> {
  for (let i = 0; i < 100 && raw.fixedBytes() > bytes; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    if (i > 10) await sleep(10);
  }
  return raw.fixedBytes();
}

test('read/write round trips over a pipe and a socketpair, with offsets and lengths', () => {
  for (const [r, w] of [pipe(), socketpair()]) {
    const io = new net.FixedBuffer(16);
    assert.is(io.size, 16);
    assert.instance(io.bytes, Uint8Array);
    assert.is(io.bytes.length, 16);
    assert.equal([...io.bytes], new Array(16).fill(0), 'zeroed');
    io.bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
    assert.is(io.write(w, 2, 3), 3);
    assert.is(io.read(r, 10, 6), 3);
    assert.equal([...io.bytes.subarray(8, 16)], [0, 0, 3, 4, 5, 0, 0, 0]);
    assert.is(io.write(w), 16, 'the whole buffer by default');
    assert.is(io.read(r, 12), 4, 'from offset to the end by default');
    assert.equal([...io.bytes.subarray(12)], [1, 2, 3, 4]);
    assert.is(io.read(r, 0, 0), 0, 'a zero-length read');
    assert.is(io.read(r, 16), 0, 'an empty range at the end');
    assert.is(io.read(r), 12);
    assert.is(io.read(r), EAGAIN);
    // Interleaved with net.read/net.write on the same fds, and with a second FixedBuffer.
    const other = new net.FixedBuffer(4);
    other.bytes.set([9, 8, 7, 6]);
    assert.is(other.write(w, 1, 2), 2);
    const plain = new Uint8Array(4);
    assert.is(net.read(r, plain), 2);
    assert.equal([...plain], [8, 7, 0, 0]);
    assert.is(net.write(w, new Uint8Array([42])), 1);
    assert.is(other.read(r, 3, 1), 1);
    assert.equal([...other.bytes], [9, 8, 7, 42]);
  }
});

test('the answers of net.read/net.write: EAGAIN -11, EOF 0, EBADF -9, EPIPE -32', () => {
  const io = new net.FixedBuffer(64 * 1024);
  const [r, w] = pipe();
  assert.is(io.read(r, 0, 1), EAGAIN, 'an empty nonblocking pipe');
  assert.is(io.write(w, 0, 3), 3);
  net.close(w);
  assert.is(io.read(r), 3);
  assert.is(io.read(r), 0, 'EOF');
  const [a] = socketpair();
  let n: number;
  do n = io.write(a);
  while (n > 0);
  assert.is(n, EAGAIN, 'a full socket');
  const [r2, w2] = pipe();
  net.close(r2);
  assert.is(io.write(w2, 0, 1), EPIPE);
  net.close(w2);
  assert.is(io.read(w2, 0, 1), EBADF, 'a closed fd');
  assert.is(io.write(w2, 0, 1), EBADF);
});

test('bad arguments throw ERR_EVPOLL_INVALID_ARG and leave the buffer usable', () => {
  for (const size of [0, -1, 1.5, 2 ** 31, 2 ** 32 + 1, NaN, Infinity, '64', undefined, null, {}]) {
    const err = throwsCode(() => new net.FixedBuffer(size as number), 'ERR_EVPOLL_INVALID_ARG');
    assert.match(err.message, /^size must be an integer from 1 to 2147483647, got /);
  }
  const io = new net.FixedBuffer(8);
  const [r, w] = pipe();
  const bad: [string, unknown[], RegExp][] = [
    ['fd -1', [-1], /^fd must be an integer >= 0, got -1/],
    ['fd 1.5', [1.5], /^fd must be an integer >= 0/],
    ["fd '3'", ['3'], /^fd must be an integer >= 0/],
    ['fd NaN', [NaN], /^fd must be an integer >= 0/],
    ['fd undefined', [], /^fd must be an integer >= 0, got undefined/],
    ['fd 2**31', [2 ** 31], /^fd must be an integer from 0 to 2147483647, got 2147483648/],
    ['offset -1', [r, -1], /^offset -1 is outside the buffer \(an integer from 0 to 8\)/],
    ['offset 9', [r, 9], /^offset 9 is outside the buffer/],
    ['offset 1.5', [r, 1.5], /^offset 1.5 is outside the buffer/],
    ["offset '1'", [r, '1'], /^offset 1 is outside the buffer/],
    ['offset null', [r, null], /^offset null is outside the buffer/],
    ['offset 2**32', [r, 2 ** 32, 1], /^offset 4294967296 is outside the buffer/],
    ['length -1', [r, 0, -1], /^length -1 from offset 0 is outside the buffer \(an integer from 0 to 8\)/],
    ['length 9', [r, 0, 9], /^length 9 from offset 0 is outside the buffer/],
    ['length 3 from 6', [r, 6, 3], /^length 3 from offset 6 is outside the buffer \(an integer from 0 to 2\)/],
    ['length 0.5', [r, 0, 0.5], /^length 0.5 from offset 0/],
    ['length NaN', [r, 0, NaN], /^length NaN from offset 0/],
    ['length Infinity', [r, 0, Infinity], /^length Infinity from offset 0/],
    ["length '1'", [r, 0, '1'], /^length 1 from offset 0/],
  ];
  for (const [name, args, message] of bad) {
    for (const op of ['read', 'write'] as const) {
      const err = throwsCode(() => (io[op] as (...a: unknown[]) => number)(...args), 'ERR_EVPOLL_INVALID_ARG');
      assert.match(err.message, message, `${op}: ${name}`);
    }
  }
  // A bad argument's valueOf is never run: nothing converts it.
  let converted = false;
  const sneaky = { valueOf: () => { converted = true; return 0; } };
  throwsCode(() => io.read(sneaky as unknown as number), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => io.read(r, sneaky as unknown as number), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => io.write(w, 0, sneaky as unknown as number), 'ERR_EVPOLL_INVALID_ARG');
  assert.is(converted, false);
  // Still usable.
  io.bytes.set([5, 6, 7]);
  assert.is(io.write(w, 0, 3), 3);
  assert.is(io.read(r, 5), 3);
  assert.equal([...io.bytes], [5, 6, 7, 0, 0, 5, 6, 7]);
});

kernelOnly("the addon's own fixedRead/fixedWrite, called directly: read(2) and write(2) on real fds", () => {
  test('the native functions refuse what reaches outside the memory, whatever JS passed (TypeError, RangeError)', () => {
    // The JS wrapper refuses anything but exact integers in range; the native side converts as
    // ToInt32 does, and whatever that gives, never touches memory outside the ArrayBuffer.
    const memory = raw.fixedBuffer(8);
    const read = (...args: unknown[]) => raw.fixedRead(memory, ...args);
    const write = (...args: unknown[]) => raw.fixedWrite(memory, ...args);
    const [r, w] = socketpair();
    for (const [op, native] of [[read, raw.fixedRead], [write, raw.fixedWrite]] as const) {
      const fd = op === read ? r : w;
      for (const args of [[], [fd], [fd, 0], ['3', 0, 1], [fd, '0', 1], [fd, 0, '1'], [fd, undefined, 1], [fd, 0, null], [{}, 0, 1], [fd, 0n, 1]]) {
        assert.throws(() => op(...args), (e: Error) => e instanceof TypeError, `${native.name}(memory, ${args.map(String).join(', ')})`);
      }
      // The memory must be an ArrayBuffer; any will do, within its own bounds.
      for (const bad of [undefined, null, 8, new Uint8Array(8), new DataView(new ArrayBuffer(8)), {}, new SharedArrayBuffer(8)]) {
        assert.throws(() => native(bad, fd, 0, 1), (e: Error) => e instanceof TypeError, `${native.name}(${String(bad)}, ...)`);
      }
      assert.throws(() => native(new ArrayBuffer(2), fd, 1, 2), (e: Error) => e instanceof RangeError, 'the bounds are the ArrayBuffer\'s own');
      for (const args of [
        [fd, -1, 1], [fd, 0, -1], [fd, 9, 0], [fd, 0, 9], [fd, 8, 1], [fd, 4, 5], [fd, 2 ** 31 - 1, 2], [fd, 1, 2 ** 31 - 1],
        [fd, 2 ** 31, 0], [fd, 0, 2 ** 31], [fd, 2 ** 32 - 1, 1], [fd, 0, -(2 ** 31)], [fd, 2 ** 32 + 9, 0], [fd, -1.5, 1],
      ]) {
        assert.throws(() => op(...args), (e: Error) => e instanceof RangeError, `${native.name}(memory, ${args.join(', ')})`);
      }
    }
    // Converted, then inside the buffer: harmless (ToInt32(2**32 + 2) is 2, of 1.5 is 1, of NaN 0).
    new Uint8Array(memory).set([1, 2, 3, 4]);
    assert.is(write(w, 2 ** 32 + 2, 1.5), 1);
    assert.is(write(w, NaN, Infinity), 0);
    assert.is(read(r, 7.9, 2 ** 32 + 1), 1);
    assert.is(new Uint8Array(memory)[7], 3);
    assert.is(read(2 ** 32 + r, 0, 8), EAGAIN, 'an fd converted as an int32 too');
    assert.is(read(-1, 0, 1), EBADF);
    for (const size of [0, -1, 1.5, 2 ** 31, NaN, Infinity]) assert.throws(() => raw.fixedBuffer(size), (e: Error) => e instanceof RangeError, `size ${size}`);
    for (const size of ['8', undefined, {}]) assert.throws(() => raw.fixedBuffer(size), (e: Error) => e instanceof TypeError, `size ${String(size)}`);
    // Extra arguments are ignored; -0 is 0.
    assert.is(write(w, 0, 3, 'extra'), 3);
    assert.is(read(r, -0, 8), 3);
    assert.equal([...new Uint8Array(memory)], [1, 2, 3, 4, 0, 0, 0, 3]);
    assert.is(raw.fixedRead.name, 'fixedRead');
    assert.is(raw.fixedWrite.name, 'fixedWrite');
  });
});

test('the ArrayBuffer cannot be transferred away: structuredClone, postMessage and a Worker get copies; the buffer keeps working', async () => {
  const io = new net.FixedBuffer(8);
  const [r, w] = pipe();
  io.bytes.set([1, 2, 3]);
  const memory = io.bytes.buffer as ArrayBuffer;
  const clone = structuredClone(memory, { transfer: [memory] });
  assert.is(io.bytes.length, 8, 'not detached');
  assert.is.not(clone, memory);
  assert.is(io.write(w, 0, 3), 3);
  assert.is(io.read(r, 4, 3), 3);
  assert.equal([...io.bytes], [1, 2, 3, 0, 1, 2, 3, 0]);
  assert.equal([...new Uint8Array(clone)], [1, 2, 3, 0, 0, 0, 0, 0], 'an independent copy');
  const { port1, port2 } = new MessageChannel();
  const got = new Promise<ArrayBuffer>((resolve) => port2.once('message', resolve));
  port1.postMessage(memory, [memory]);
  const copy = await got;
  port1.close();
  assert.is(io.bytes.length, 8);
  assert.equal([...new Uint8Array(copy)], [1, 2, 3, 0, 1, 2, 3, 0]);
  // A worker's copy: its writes do not show here, and the buffer outlives the worker.
  const worker = new Worker('const { parentPort, workerData } = require("node:worker_threads"); new Uint8Array(workerData).fill(7); parentPort.postMessage(new Uint8Array(workerData)[0]);', {
    eval: true, workerData: memory, transferList: [memory],
  });
  const seen = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  await new Promise((resolve) => worker.once('exit', resolve));
  assert.is(seen, 7);
  assert.equal([...io.bytes], [1, 2, 3, 0, 1, 2, 3, 0]);
  assert.is(io.write(w, 4, 4), 4);
  assert.is(io.read(r, 0, 4), 4);
  assert.equal([...io.bytes], [1, 2, 3, 0, 1, 2, 3, 0]);
});

test('detached all the same (ArrayBuffer.prototype.transfer, %ArrayBufferDetach): read/write refuse, the memory goes with its ArrayBuffer', () => {
  // In a child: both need V8 flags given at start-up. Under ASan (LD_PRELOAD is inherited) a
  // use after free aborts the child.
  const code = `import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(${JSON.stringify(addonPath())});
const turns = async () => { for (let i = 0; i < 20; i++) { gc(); await new Promise((r) => setImmediate(r)); } };
const codeOf = (f) => { try { f(); return 'none'; } catch (e) { return e.code + ': ' + e.message; } };
const out = {};
const [r, w] = net.pipe();
const base = addon.fixedBytes();
// transfer(): the memory moves to the new ArrayBuffer; this FixedBuffer can no longer use it.
let io = new net.FixedBuffer(4096);
io.bytes.set([1, 2, 3]);
let moved = io.bytes.buffer.transfer();
out.afterTransfer = [io.bytes.length, moved.byteLength, ...new Uint8Array(moved, 0, 4)];
out.refused = [codeOf(() => io.write(w, 0, 3)), codeOf(() => io.read(r, 0, 1)), codeOf(() => io.read(r, 4096))];
out.nothingWritten = net.read(r, new Uint8Array(8));
// The FixedBuffer dropped: the moved ArrayBuffer still holds the memory, which stays usable.
io = null;
await turns();
out.heldByMoved = addon.fixedBytes() - base;
new Uint8Array(moved).fill(9);
out.movedStillWritable = new Uint8Array(moved)[4095];
out.movedStillMoves = [addon.fixedWrite(moved, w, 4093, 3), addon.fixedRead(moved, r, 0, 3)];
moved = null;
await turns();
out.afterAll = addon.fixedBytes() - base;
// %ArrayBufferDetach: the ArrayBuffer's backing store, and the memory, go at once.
const io2 = new net.FixedBuffer(4096);
%ArrayBufferDetach(io2.bytes.buffer);
await turns();
out.afterDetach = addon.fixedBytes() - base;
out.detached = [io2.bytes.length, codeOf(() => io2.read(r, 0, 1)), codeOf(() => io2.write(w, 0, 0))];
console.log(JSON.stringify(out));
`;
  const child = runChild(code, 30_000, process.env, ['--harmony-rab-gsab-transfer', '--allow-natives-syntax', '--expose-gc']);
  assert.is(child.status, 0, `child: ${child.signal ?? ''} ${child.stderr}`);
  const out = JSON.parse(child.stdout.trim().split('\n').pop()!);
  assert.equal(out.afterTransfer, [0, 4096, 1, 2, 3, 0], 'bytes detached, the memory moved');
  const detachedError = /^ERR_EVPOLL_INVALID_ARG: this FixedBuffer's memory was detached/;
  for (const refusal of out.refused) assert.match(refusal, detachedError);
  assert.is(out.nothingWritten, EAGAIN, 'a refused write wrote nothing');
  assert.is(out.heldByMoved, 4096);
  assert.is(out.movedStillWritable, 9);
  assert.equal(out.movedStillMoves, [3, 3]);
  assert.is(out.afterAll, 0, 'freed once the moved ArrayBuffer went too');
  assert.is(out.afterDetach, 0, 'freed when detached');
  assert.is(out.detached[0], 0);
  // A zero-length write into an empty range needs no memory: the wrapper lets it through.
  assert.match(out.detached[1], detachedError);
  assert.ok(out.detached[2] === 'none' || detachedError.test(out.detached[2]), out.detached[2]);
});

kernelOnly("the addon's own fixedRead/fixedWrite, called directly: read(2) and write(2) on real fds", () => {
  test('lifetime: the memory lives while its ArrayBuffer does (kept through `bytes` alone), and is freed when it is collected', async () => {
    const base = await quiesce();
    const keep: { bytes: Uint8Array | null; io: WeakRef<net.FixedBuffer> | null } = { bytes: null, io: null };
    (() => {
      const io = new net.FixedBuffer(MiB);
      io.bytes.fill(0x61);
      keep.bytes = io.bytes;
      keep.io = new WeakRef(io);
    })();
    assert.is(raw.fixedBytes() - base, MiB);
    // The FixedBuffer is garbage: collect it. (deref() keeps its target alive until the end of
    // the job that called it: gc() only after a turn.)
    for (let i = 0; i < 100; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      await new Promise((resolve) => setImmediate(resolve));
      if (keep.io!.deref() === undefined) break;
    }
    assert.is(keep.io!.deref(), undefined, 'the FixedBuffer was collected');
    await quiesce();
    assert.is(raw.fixedBytes() - base, MiB, 'held by the ArrayBuffer under bytes');
    const [r, w] = pipe();
    assert.is(raw.fixedWrite(keep.bytes!.buffer, w, MiB - 3, 3), 3, 'still live memory');
    assert.is(raw.fixedRead(keep.bytes!.buffer, r, 0, 3), 3);
    assert.equal([...keep.bytes!.subarray(0, 3)], [0x61, 0x61, 0x61]);
    keep.bytes = null;
    assert.is((await settle(base)) - base, 0, 'freed');
  });
});

test('many FixedBuffers made and dropped: the bytes come back, RSS stays flat', async () => {
  const base = await quiesce();
  const [r, w] = socketpair();
  const size = 64 * 1024;
  // The allocator may keep what was once alive at the same time (how many depends on how soon
  // V8 runs the finalizers), so RSS is bounded by that peak, not by a constant. A buffer that
  // is counted free but never returned would grow RSS by the 1.25 GiB churned.
  let peak = 0;
  const churn = async (n: number) => {
    for (let k = 0; k < n; k++) {
      const io = new net.FixedBuffer(size);
      io.bytes.fill(k & 0xff); // touch every page
      io.write(w, 0, 1);
      io.read(r, size - 1, 1);
      peak = Math.max(peak, raw.fixedBytes() - base);
      if (k % 500 === 499) {
        gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    return settle(base);
  };
  await churn(2_000);
  gc();
  const warm = process.memoryUsage().rss;
  const left = await churn(20_000); // 1.25 GiB if none were freed
  gc();
  const end = process.memoryUsage().rss;
  report(`20,000 FixedBuffers of 64 KiB: rss ${(warm / MiB).toFixed(1)} -> ${(end / MiB).toFixed(1)} MiB, at most ${(peak / MiB).toFixed(1)} MiB held at once, ${left - base} bytes still held`);
  assert.is(left - base, 0, 'every buffer freed');
  if (RSS_BOUNDED) assert.ok(end - warm < peak + 32 * MiB, `RSS grew by ${((end - warm) / MiB).toFixed(1)} MiB`);
});

kernelOnly('worker_threads: the addon loaded in a thread, on real fds, freed at its env teardown', () => {
  test('a worker_thread that exits with FixedBuffers alive frees them (env teardown)', async () => {
    const base = await quiesce();
    for (let round = 0; round < 3; round++) {
      const worker = new Worker(`
        const { parentPort } = require('node:worker_threads');
        const addon = require(${JSON.stringify(addonPath())});
        const keep = [];
        for (let i = 0; i < 8; i++) keep.push(addon.fixedBuffer(${MiB}));
        const memory = keep[0];
        const [r, w] = addon.pipe();
        new Uint8Array(memory)[0] = 42;
        addon.fixedWrite(memory, w, 0, 1);
        addon.fixedRead(memory, r, 1, 1);
        addon.close(r); addon.close(w);
        globalThis.keep = keep;
        parentPort.postMessage(new Uint8Array(memory)[1]);
      `, { eval: true });
      const got = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
      assert.is(got, 42);
      await new Promise((resolve) => worker.once('exit', resolve));
    }
    assert.is((await settle(base)) - base, 0, 'freed with the worker');
  });
});

test.run();
