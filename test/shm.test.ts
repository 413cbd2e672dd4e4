// evpoll/shm: a SharedRegion made here and mapped by real child processes (this same file, run by
// node with EVPOLL_SHM_CHILD naming what to do, the region handed down as fd 3 in spawn's stdio,
// as the example server hands its listener), and the AcceptMutex on it: contention across
// processes, a holder killed with SIGKILL and freed by forceUnlock. It is about processes and
// memory, not a backend, so it runs in one suite only (epoll, run mode).
import { onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AcceptMutex, SharedRegion } from '../src/shm.js';
import * as net from '../src/net.js';
import { MECHANISM, MODE, exposedGc, fillFdTable, killOnCleanup, openFds, report, runUnderFdLimit, throwsCode, until } from './helpers.js';

const ROLE = 'EVPOLL_SHM_CHILD';
const EMFILE_CHILD = 'EVPOLL_SHM_EMFILE_CHILD';
const THIS_FILE = fileURLToPath(import.meta.url);
/** This process runs the tests (not a child's part), in the one suite they belong to. */
const RUNNING_TESTS = !process.env[ROLE] && !process.env[EMFILE_CHILD] && MECHANISM === 'epoll' && MODE === 'run';
/** The fd a child finds the region at: stdio[3]. */
const REGION_FD = 3;
const LIMIT_MS = 20_000;
const PAGE = 4096;

// Words of the region the children use, after the mutex's AcceptMutex.BYTES at offset 0.
const COUNTER = 2; // incremented non-atomically inside the lock
const INSIDE = 3; // the pid inside the critical section, 0 when none

/** A region closed after the test if the test has not closed it. */
function region(bytes = PAGE, name?: string): SharedRegion {
  const r = SharedRegion.create(bytes, name === undefined ? undefined : { name });
  onCleanup(() => r.close());
  return r;
}

/** The lines /proc/self/maps has for memfd `name`. */
function mappings(name: string): string[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(`/memfd:${name} (deleted)`));
}

/** Whether `fd`'s close-on-exec flag is set (O_CLOEXEC in /proc/self/fdinfo's octal flags). */
function closeOnExec(fd: number): boolean {
  const flags = /^flags:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1];
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

/** A unique memfd name for this test process. */
let names = 0;
const uniqueName = () => `evpoll-shm-test-${process.pid}-${++names}`;

/**
 * A child running this file as `role`, `shared` as its fd 3; killed after the test. It speaks
 * JSON lines on stdout and takes command lines on stdin.
 */
class Child {
  readonly process: ChildProcess;
  stderr = '';
  #lines: string[] = [];
  #waiting: ((line: string | null) => void) | undefined;
  #ended = false;

  constructor(role: string, shared: SharedRegion, env: NodeJS.ProcessEnv = {}) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, [ROLE]: role, ...env };
    delete childEnv.EVPOLL_TEST_PROGRESS; // the child runs no tests
    const stdio: ('pipe' | number)[] = ['pipe', 'pipe', 'pipe'];
    stdio[REGION_FD] = shared.fd;
    this.process = killOnCleanup(spawn(process.execPath, [THIS_FILE], { env: childEnv, stdio }));
    this.process.stderr!.on('data', (d) => { this.stderr += d; });
    const lines = createInterface({ input: this.process.stdout! });
    lines.on('line', (line) => {
      if (this.#waiting) this.#waiting(line);
      else this.#lines.push(line);
    });
    lines.on('close', () => {
      this.#ended = true;
      this.#waiting?.(null);
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  send(line: string): void {
    this.process.stdin!.write(`${line}\n`);
  }

  /** The next JSON line the child prints; rejects if its stdout ends first, or after limitMs. */
  message<T = Record<string, unknown>>(limitMs = LIMIT_MS): Promise<T> {
    const parse = (line: string | null): T => {
      if (line === null) throw new Error(`child ${this.pid} ended its output without the message awaited; stderr:\n${this.stderr}`);
      return JSON.parse(line) as T;
    };
    if (this.#lines.length > 0) return Promise.resolve(parse(this.#lines.shift()!));
    if (this.#ended) return Promise.resolve().then(() => parse(null));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`no message from child ${this.pid} within ${limitMs} ms; stderr:\n${this.stderr}`));
      }, limitMs);
      this.#waiting = (line) => {
        this.#waiting = undefined;
        clearTimeout(timer);
        try {
          resolve(parse(line));
        } catch (e) {
          reject(e);
        }
      };
    });
  }

  /** Sends `command` and returns the reply. */
  ask<T = Record<string, unknown>>(command: string): Promise<T> {
    this.send(command);
    return this.message<T>();
  }

  /** The child's exit: [code, signal]; rejects after limitMs. */
  exit(limitMs = LIMIT_MS): Promise<[number | null, string | null]> {
    const c = this.process;
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve([c.exitCode, c.signalCode]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child ${this.pid} did not exit within ${limitMs} ms; stderr:\n${this.stderr}`)), limitMs);
      c.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve([code, signal]);
      });
    });
  }
}

// ---- the children's side ---------------------------------------------------------------------

function say(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Command lines from stdin, one at a time. */
async function* commands(): AsyncGenerator<string> {
  for await (const line of createInterface({ input: process.stdin })) yield line;
}

async function child(role: string): Promise<void> {
  const shared = SharedRegion.open(REGION_FD);
  const mutex = new AcceptMutex(shared, 0);
  if (role === 'echo') {
    // What the parent wrote, read back; then this child's own words, for the parent to read.
    const words = shared.int32(AcceptMutex.BYTES, 4);
    const text = Buffer.from(shared.buffer, 64, 16).toString('latin1').replace(/\0+$/, '');
    say({ read: [...words], text, byteLength: shared.byteLength, cloexec: closeOnExec(REGION_FD) });
    words.set([process.pid, words[0] + words[1] + words[2], -words[3], 0]);
    Buffer.from(shared.buffer, 64, 16).fill(0).write('from the child', 'latin1');
    say({ wrote: true });
    shared.close();
    return;
  }
  if (role === 'hold') {
    say({ ready: true, holder: mutex.holder });
    for await (const command of commands()) {
      if (command === 'lock') say({ got: mutex.tryLock(), holder: mutex.holder });
      else if (command === 'unlock') say({ freed: mutex.unlock(), holder: mutex.holder });
      else if (command === 'exit') break;
    }
    shared.close();
    return;
  }
  if (role === 'stress') {
    // Waits for 'go' (sent once every child is ready), so that they contend from the start;
    // then `cycles` times: take the lock (retrying until it is free), check nobody else is
    // inside, increment the counter non-atomically, give the lock back.
    const cycles = Number(process.env.EVPOLL_SHM_CYCLES);
    const locking = process.env.EVPOLL_SHM_UNLOCKED !== '1';
    const words = shared.int32(0, 4);
    const pid = process.pid;
    say({ ready: true });
    const it = commands();
    await it.next();
    let done = 0, attempts = 0, overlaps = 0, unlockRefused = 0;
    const started = performance.now();
    const deadline = Date.now() + LIMIT_MS;
    while (done < cycles) {
      attempts++;
      if (locking && !mutex.tryLock()) {
        if ((attempts & 0xffff) === 0 && Date.now() > deadline) break; // reported: done < cycles
        continue;
      }
      if (words[INSIDE] !== 0) overlaps++;
      words[INSIDE] = pid;
      words[COUNTER] = words[COUNTER] + 1;
      if (words[INSIDE] !== pid) overlaps++;
      words[INSIDE] = 0;
      if (locking && !mutex.unlock()) unlockRefused++;
      done++;
    }
    say({ done, attempts, overlaps, unlockRefused, ms: performance.now() - started });
    return;
  }
  if (role === 'spin') {
    // tryLock/unlock pairs, for the syscall count under strace.
    const cycles = Number(process.env.EVPOLL_SHM_CYCLES);
    let held = 0;
    for (let i = 0; i < cycles; i++) held += Number(mutex.tryLock()) + Number(mutex.unlock());
    say({ held });
    return;
  }
  throw new Error(`unknown role ${role}`);
}

/** Under RLIMIT_NOFILE 64 (runUnderFdLimit): create() with no fd left, then with one. */
function emfileChild(): void {
  const fillers = fillFdTable();
  let refused: unknown;
  try {
    SharedRegion.create(PAGE);
  } catch (e) {
    const err = e as { code: string; syscall: string };
    refused = { code: err.code, syscall: err.syscall };
  }
  closeSync(fillers.pop()!);
  const made = SharedRegion.create(PAGE);
  const after = { fd: made.fd, byteLength: made.byteLength };
  made.close();
  for (const fd of fillers) closeSync(fd);
  say({ refused, after });
}

// ---- the tests -------------------------------------------------------------------------------

test('create(): whole pages, zero-filled, a close-on-exec memfd named as asked, mapped shared', () => {
  const name = uniqueName();
  const r = region(100, name);
  assert.is(r.byteLength, PAGE, 'rounded up to a page');
  assert.ok(r.fd > 2);
  assert.not.ok(r.closed);
  assert.instance(r.buffer, ArrayBuffer);
  assert.is(r.buffer.byteLength, PAGE);
  assert.ok(new Uint8Array(r.buffer).every((b) => b === 0), 'zero-filled');
  assert.is(readlinkSync(`/proc/self/fd/${r.fd}`), `/memfd:${name} (deleted)`);
  assert.ok(closeOnExec(r.fd), 'close-on-exec: no child gets it by accident');
  assert.is(mappings(name).length, 1);
  assert.match(mappings(name)[0], / rw-s /, 'read-write, shared');
  for (const [bytes, expected] of [[1, PAGE], [PAGE, PAGE], [PAGE + 1, 2 * PAGE], [10 * PAGE - 1, 10 * PAGE]]) {
    assert.is(region(bytes).byteLength, expected, `${bytes} bytes`);
  }
  assert.match(readlinkSync(`/proc/self/fd/${region(8).fd}`), /^\/memfd:evpoll \(deleted\)$/, "the default name is 'evpoll'");
});

test('open() of a second fd for the same memfd: another mapping of the same bytes; it takes the fd over', () => {
  const a = region();
  // A new open file description of the same memfd (a child's fd 3 is the same, dup'ed).
  const fd = openSync(`/proc/self/fd/${a.fd}`, 'r+');
  const b = SharedRegion.open(fd);
  onCleanup(() => b.close());
  assert.is(b.fd, fd);
  assert.is(b.byteLength, a.byteLength);
  assert.is.not(b.buffer, a.buffer);
  a.int32(PAGE - 4, 1)[0] = 0x12345678;
  assert.is(b.int32(PAGE - 4, 1)[0], 0x12345678);
  new Uint8Array(b.buffer)[5] = 99;
  assert.is(new Uint8Array(a.buffer)[5], 99);
  b.close();
  assert.throws(() => fstatSync(fd), /EBADF/, 'close() closed the fd it took over');
  assert.is(a.int32(PAGE - 4, 1)[0], 0x12345678, 'the other mapping is untouched');
});

test('bad arguments are refused with ERR_EVPOLL_INVALID_ARG, and no fd is left behind', () => {
  const long = SharedRegion.create(PAGE, { name: 'é'.repeat(124) });
  assert.is(long.byteLength, PAGE, 'a name of 248 bytes in UTF-8 is fine');
  long.close();
  const before = openFds();
  for (const bytes of [0, -1, 1.5, NaN, Infinity, 2 ** 31 + 1, '4096', null, undefined]) {
    throwsCode(() => SharedRegion.create(bytes as number), 'ERR_EVPOLL_INVALID_ARG');
  }
  for (const options of [null, 5, 'name']) throwsCode(() => SharedRegion.create(PAGE, options as never), 'ERR_EVPOLL_INVALID_ARG');
  for (const name of ['x'.repeat(250), 'é'.repeat(125), 'a\0b', 5]) throwsCode(() => SharedRegion.create(PAGE, { name } as never), 'ERR_EVPOLL_INVALID_ARG');
  for (const fd of [-1, 1.5, NaN, '3', null, 2 ** 31]) throwsCode(() => SharedRegion.open(fd as number), 'ERR_EVPOLL_INVALID_ARG');
  // Not regions: a pipe's ends and a regular file (a file could shrink under a mapping).
  const file = join(tmpdir(), `evpoll-shm-${process.pid}.bin`);
  onCleanup(() => rmSync(file, { force: true }));
  writeFileSync(file, Buffer.alloc(PAGE));
  const [r, w] = net.pipe();
  const fileFd = openSync(file, 'r+');
  try {
    for (const fd of [r, w, fileFd]) {
      const err = throwsCode(() => SharedRegion.open(fd), 'ERR_EVPOLL_INVALID_ARG');
      assert.match(err.message, `fd ${fd} is not a SharedRegion`);
    }
  } finally {
    net.close(r);
    net.close(w);
    closeSync(fileFd);
  }
  assert.equal(openFds(), before, 'no fd left behind');
});

test('open() of an fd that is not open: EBADF in the SystemError shape, syscall fstat', () => {
  // The lowest free number, just closed; nothing is opened between that and open().
  const [r, w] = net.pipe();
  net.close(r);
  net.close(w);
  const err = throwsCode(() => SharedRegion.open(r), 'EBADF');
  assert.is(err.errno, -9);
  assert.is(err.syscall, 'fstat');
  assert.match(err.message, /^EBADF: bad file descriptor, fstat$/);
});

test('create() with no fd left: EMFILE from memfd_create; with one free it works', async () => {
  const report = await runUnderFdLimit<{ refused: unknown; after: { fd: number; byteLength: number } }>(import.meta.url, EMFILE_CHILD, LIMIT_MS);
  assert.equal(report.refused, { code: 'EMFILE', syscall: 'memfd_create' });
  assert.is(report.after.byteLength, PAGE);
  assert.ok(report.after.fd < 64);
});

test('int32(offset, length): views with checked alignment and bounds', () => {
  const r = region(2 * PAGE);
  const all = r.int32(0, 2 * PAGE / 4);
  assert.is(all.length, 2048);
  assert.is(all.buffer, r.buffer);
  assert.is(r.int32(2 * PAGE - 4, 1).byteOffset, 2 * PAGE - 4);
  assert.is(r.int32(2 * PAGE, 0).length, 0, 'an empty view at the end');
  r.int32(16, 2).set([7, 8]);
  assert.equal([...all.subarray(4, 6)], [7, 8]);
  for (const [offset, length] of [[2, 1], [-4, 1], [1.5, 1], [0, 2049], [4, 2048], [2 * PAGE + 4, 0], [0, -1], [0, 1.5], ['0', 1], [0, '1']]) {
    throwsCode(() => r.int32(offset as number, length as number), 'ERR_EVPOLL_INVALID_ARG');
  }
});

test('close(): fd closed, mapping unmapped, every view emptied; mutexes and views refuse with ERR_EVPOLL_CLOSED; twice is harmless', async () => {
  const name = uniqueName();
  const r = SharedRegion.create(PAGE, { name });
  const fd = r.fd;
  const view = r.int32(0, 4);
  const mutex = new AcceptMutex(r);
  assert.ok(mutex.tryLock());
  r.close();
  assert.ok(r.closed);
  assert.is(r.fd, -1);
  assert.is(r.buffer.byteLength, 0, 'the buffer is detached');
  assert.is(view.length, 0, 'views on it are empty');
  assert.is(view[0], undefined, 'and reach nothing');
  assert.throws(() => fstatSync(fd), /EBADF/, 'the fd is closed');
  for (const use of [() => mutex.tryLock(), () => mutex.unlock(), () => mutex.forceUnlock(1), () => mutex.holder, () => mutex.held, () => r.int32(0, 1), () => new AcceptMutex(r)]) {
    throwsCode(use, 'ERR_EVPOLL_CLOSED');
  }
  r.close();
  await until('the mapping is gone from /proc/self/maps', () => mappings(name).length === 0);
});

test('a region dropped without close(): its mapping goes with its collected buffer; the fd is the program\'s to close', async () => {
  const gc = exposedGc();
  const name = uniqueName();
  let fd = -1;
  (() => {
    fd = SharedRegion.create(PAGE, { name }).fd;
  })();
  onCleanup(() => net.close(fd));
  assert.is(mappings(name).length, 1);
  await until('the mapping is unmapped once its buffer is collected', () => {
    gc();
    return mappings(name).length === 0;
  });
  assert.ok(fstatSync(fd).size === PAGE, 'the fd stays open');
});

test('creating, opening and closing regions leaves no fd and no mapping behind', async () => {
  const name = uniqueName();
  const before = openFds();
  for (let i = 0; i < 20; i++) {
    const a = SharedRegion.create(PAGE * (1 + (i % 3)), { name });
    const b = SharedRegion.open(openSync(`/proc/self/fd/${a.fd}`, 'r+'));
    new AcceptMutex(b, 8).tryLock();
    a.close();
    b.close();
  }
  assert.equal(openFds(), before);
  await until('every mapping is gone', () => mappings(name).length === 0);
});

test('AcceptMutex in one process: tryLock, unlock, holder, held; re-taking is idempotent; a foreign holder is respected', () => {
  const r = region();
  assert.is(AcceptMutex.BYTES, 8);
  const mutex = new AcceptMutex(r);
  assert.is(mutex.region, r);
  assert.is(mutex.offset, 0);
  const words = r.int32(0, 2);
  assert.is(mutex.holder, 0, 'a fresh region: free');
  assert.not.ok(mutex.held);
  assert.not.ok(mutex.unlock(), 'not the holder');
  assert.ok(mutex.tryLock());
  assert.is(mutex.holder, process.pid);
  assert.is(words[0], process.pid, 'the lock word holds the pid');
  assert.ok(mutex.held);
  assert.ok(mutex.tryLock(), 'the holder gets it again');
  assert.ok(mutex.unlock(), 'one unlock frees it (no count)');
  assert.is(mutex.holder, 0);
  assert.not.ok(mutex.unlock());
  // Another process's pid in the word: what every other process sees while one holds it.
  const other = process.pid + 1;
  Atomics.store(words, 0, other);
  assert.not.ok(mutex.tryLock());
  assert.not.ok(mutex.held);
  assert.not.ok(mutex.unlock(), 'only the holder unlocks');
  assert.is(mutex.holder, other);
  assert.not.ok(mutex.forceUnlock(process.pid), 'forceUnlock of a pid that is not the holder changes nothing');
  assert.is(mutex.holder, other);
  assert.ok(mutex.forceUnlock(other));
  assert.is(mutex.holder, 0);
  assert.not.ok(mutex.forceUnlock(other), 'already free');
  assert.is(words[1], 0, 'the reserved word is untouched');
  // Mutexes at other offsets are independent words.
  const second = new AcceptMutex(r, 8);
  const last = new AcceptMutex(r, PAGE - AcceptMutex.BYTES);
  assert.ok(second.tryLock());
  assert.is(mutex.holder, 0);
  assert.ok(mutex.tryLock());
  assert.is(last.holder, 0);
  assert.equal([...r.int32(0, 4)], [process.pid, 0, process.pid, 0]);
});

test('AcceptMutex: bad arguments are refused with ERR_EVPOLL_INVALID_ARG', () => {
  const r = region();
  for (const offset of [2, -4, 1.5, PAGE - 4, PAGE, '0', null]) throwsCode(() => new AcceptMutex(r, offset as number), 'ERR_EVPOLL_INVALID_ARG');
  for (const notRegion of [null, {}, r.buffer, r.int32(0, 2)]) throwsCode(() => new AcceptMutex(notRegion as never), 'ERR_EVPOLL_INVALID_ARG');
  const mutex = new AcceptMutex(r);
  for (const pid of [0, -1, 1.5, NaN, '1', 2 ** 31]) throwsCode(() => mutex.forceUnlock(pid as number), 'ERR_EVPOLL_INVALID_ARG');
});

test('a child maps the region it was handed as fd 3: it reads what the parent wrote, the parent reads what it wrote', async () => {
  const r = region(PAGE);
  const words = r.int32(AcceptMutex.BYTES, 4);
  words.set([1, 2, 3, 0x7fffffff]);
  Buffer.from(r.buffer, 64, 16).write('from the parent', 'latin1');
  const c = new Child('echo', r);
  assert.equal(await c.message(), { read: [1, 2, 3, 0x7fffffff], text: 'from the parent', byteLength: PAGE, cloexec: true }, 'close-on-exec in the child too: a grandchild gets it only if handed down again');
  assert.equal(await c.message(), { wrote: true });
  assert.equal([...words], [c.pid, 6, -0x7fffffff, 0]);
  assert.is(Buffer.from(r.buffer, 64, 16).toString('latin1').replace(/\0+$/, ''), 'from the child');
  assert.equal(await c.exit(), [0, null]);
});

test('contention across processes: 3 children, 100,000 lock cycles each, a non-atomic counter inside: no update lost, never two inside', async () => {
  const CHILDREN = 3;
  const CYCLES = 100_000;
  type Result = { done: number; attempts: number; overlaps: number; unlockRefused: number; ms: number };
  async function race(unlocked: boolean): Promise<{ counter: number; results: Result[] }> {
    const r = region(PAGE);
    const env = { EVPOLL_SHM_CYCLES: String(CYCLES), EVPOLL_SHM_UNLOCKED: unlocked ? '1' : '0' };
    const children = Array.from({ length: CHILDREN }, () => new Child('stress', r, env));
    for (const c of children) assert.equal(await c.message(), { ready: true });
    for (const c of children) c.send('go');
    const results = await Promise.all(children.map((c) => c.message<Result>()));
    for (const c of children) assert.equal(await c.exit(), [0, null]);
    return { counter: r.int32(COUNTER * 4, 1)[0], results };
  }

  const { counter, results } = await race(false);
  const sum = (f: (r: Result) => number) => results.reduce((n, r) => n + f(r), 0);
  assert.equal(results.map((r) => r.done), new Array(CHILDREN).fill(CYCLES), 'every child finished its cycles');
  assert.is(counter, CHILDREN * CYCLES, 'no increment lost');
  assert.is(sum((r) => r.overlaps), 0, 'never two processes inside at once');
  assert.is(sum((r) => r.unlockRefused), 0, 'every unlock by the holder succeeded');
  assert.ok(sum((r) => r.attempts) > sum((r) => r.done), 'the children did contend (some tryLock found another holder)');
  report(`with the mutex: ${sum((r) => r.attempts)} tryLock for ${sum((r) => r.done)} cycles, ${results.map((r) => r.ms.toFixed(0)).join('/')} ms`);
  // The same children without the lock: how much this test would see of a broken mutex.
  const control = await race(true);
  const lost = CHILDREN * CYCLES - control.counter;
  report(`without it: ${lost} of ${CHILDREN * CYCLES} increments lost, ${control.results.reduce((n, r) => n + r.overlaps, 0)} overlaps seen`);
});

test('a holder killed with SIGKILL keeps the lock; forceUnlock(its pid) frees it (a wrong pid does not); another child takes it', async () => {
  const r = region();
  const mutex = new AcceptMutex(r);
  const a = new Child('hold', r);
  const b = new Child('hold', r);
  assert.equal(await a.message(), { ready: true, holder: 0 });
  assert.equal(await b.message(), { ready: true, holder: 0 });
  assert.equal(await a.ask('lock'), { got: true, holder: a.pid });
  assert.equal(await b.ask('lock'), { got: false, holder: a.pid });
  assert.is(mutex.holder, a.pid);
  assert.not.ok(mutex.tryLock(), 'nor the parent');
  a.process.kill('SIGKILL');
  assert.equal(await a.exit(), [null, 'SIGKILL']);
  assert.is(mutex.holder, a.pid, 'the dead holder still holds it');
  assert.equal(await b.ask('lock'), { got: false, holder: a.pid });
  assert.not.ok(mutex.forceUnlock(b.pid), 'not the holder: nothing changes');
  assert.not.ok(mutex.forceUnlock(process.pid));
  assert.is(mutex.holder, a.pid);
  assert.ok(mutex.forceUnlock(a.pid), 'the master frees its dead child\'s lock');
  assert.is(mutex.holder, 0);
  assert.not.ok(mutex.forceUnlock(a.pid), 'once');
  assert.equal(await b.ask('lock'), { got: true, holder: b.pid });
  assert.is(mutex.holder, b.pid);
  assert.equal(await b.ask('unlock'), { freed: true, holder: 0 });
  b.send('exit');
  assert.equal(await b.exit(), [0, null]);
});

// strace counts every system call of the child: a loop of tryLock/unlock pairs adds none (a
// syscall per operation would add hundreds of thousands). Where strace is missing or ptrace is
// not allowed (some containers), there is nothing to count with.
const strace = RUNNING_TESTS && spawnSync('strace', ['-f', '-c', '-o', '/dev/null', 'true']).status === 0;
if (strace) {
  test('tryLock and unlock make no system call (strace -c: 200,000 pairs cost no more calls than none)', async () => {
    const syscalls = async (cycles: number) => {
      const out = join(tmpdir(), `evpoll-shm-strace-${process.pid}-${cycles}`);
      onCleanup(() => rmSync(out, { force: true }));
      const r = region();
      const env: NodeJS.ProcessEnv = { ...process.env, [ROLE]: 'spin', EVPOLL_SHM_CYCLES: String(cycles) };
      delete env.EVPOLL_TEST_PROGRESS;
      const stdio: ('ignore' | 'pipe' | 'inherit' | number)[] = ['ignore', 'pipe', 'inherit'];
      stdio[REGION_FD] = r.fd;
      const c = killOnCleanup(spawn('strace', ['-f', '-c', '-o', out, process.execPath, THIS_FILE], { env, stdio }));
      let stdout = '';
      c.stdout!.on('data', (d) => { stdout += d; });
      const timer = setTimeout(() => c.kill('SIGKILL'), LIMIT_MS);
      const code = await new Promise<number | null>((resolve) => c.on('exit', resolve));
      clearTimeout(timer);
      assert.is(code, 0, `strace ${process.execPath} exited with ${code}`);
      assert.equal(JSON.parse(stdout), { held: 2 * cycles });
      return Number(/^100\.00\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$/m.exec(readFileSync(out, 'utf8'))![1]);
    };
    const none = await syscalls(0);
    const many = await syscalls(200_000);
    report(`system calls of the child: ${none} for no pair, ${many} for 200,000`);
    assert.ok(many - none < 2000, `${many - none} more system calls for 200,000 tryLock/unlock pairs`);
  });
}

if (process.env[ROLE]) {
  await child(process.env[ROLE]);
  process.exit(0); // whatever stdin's reader still holds open
} else if (process.env[EMFILE_CHILD]) {
  emfileChild();
} else if (RUNNING_TESTS) {
  test.run();
}
