// The Acceptor's accept mutex (nginx's accept_mutex): only the process holding an AcceptMutex
// watches the listener; the others delete it from their loops and try again each turn, their
// waits bounded by mutexDelayMs; the accept runs first in its batch and gives the lock back
// before the rest. In this process another holder is played by a pid written into the lock
// word; across real processes, by children (this same file, run with CHILD_FLAG set) sharing a
// listener and a region, each driving its loop as the mode under test does.
import { kernelOnly, onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Acceptor } from '../src/acceptor.js';
import { EV, EventLoop } from '../src/index.js';
import * as net from '../src/net.js';
import { AcceptMutex, SharedRegion } from '../src/shm.js';
import { MECHANISM, MODE, drain, drive, eventually, iterate, iterateUntil, killOnCleanup, newLoop, pipe, report, until, writeByte } from './helpers.js';

const CHILD_FLAG = 'EVPOLL_ACCEPT_MUTEX_CHILD';
const THIS_FILE = fileURLToPath(import.meta.url);
/** A pid no process here has (above Linux's pid_max): "another process holds the lock". */
const OTHER = 0x7ffffff0;

const clients: Socket[] = [];
const accepted: number[] = [];

// The lock is a word in shared memory (SharedRegion: mmap) for processes sharing a listener,
// and the clients are real TCP connections (node:net).
kernelOnly('shared memory across processes (SharedRegion, AcceptMutex) and real TCP clients (node:net)');

test.after.each(() => {
  for (const s of clients.splice(0)) s.destroy();
  for (const fd of accepted.splice(0)) net.close(fd);
});

/** `n` client connections to `port`, resolved once all are established. */
async function connectClients(port: number, n: number): Promise<Socket[]> {
  const made = await Promise.all(
    Array.from({ length: n }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s)).on('error', reject);
    })),
  );
  clients.push(...made);
  return made;
}

/** A listening socket on 127.0.0.1, closed after the test. */
function listen(): number {
  const fd = net.listen('127.0.0.1', 0);
  onCleanup(() => net.close(fd));
  return fd;
}

/** A region with a free mutex at offset 0, closed after the test. */
function sharedMutex(): AcceptMutex {
  const region = SharedRegion.create(4096);
  onCleanup(() => region.close());
  return new AcceptMutex(region);
}

/** Makes `mutex` look held by another process. */
function holdElsewhere(mutex: AcceptMutex): void {
  Atomics.store(mutex.region.int32(mutex.offset, 1), 0, OTHER);
}

test('locked out: the listener is not in the loop, the wait is bounded by mutexDelayMs, and the next turn after the holder unlocks takes the lock and the connections', async () => {
  const loop = newLoop();
  const listener = listen();
  const mutex = sharedMutex();
  holdElsewhere(mutex);
  const DELAY = 20;
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { mutex, mutexDelayMs: DELAY });
  assert.is(acceptor.state, 'locked-out');
  await connectClients(net.localPort(listener), 2);
  let turns = 0;
  const hook = loop.prepare(() => turns++);
  const before = loop.stats();
  await drive(loop, 15 * DELAY);
  const records = loop.stats().records - before.records;
  assert.is(accepted.length, 0, 'nothing accepted while another process holds the lock');
  // The listener, readable all along, would be a record in every wait if it were watched.
  assert.is(records, 0, `${records} ready records while locked out`);
  // Only the drive's own limit timer would end a wait that mutexDelayMs did not bound.
  assert.ok(turns >= 4, `${turns} turns in ${15 * DELAY} ms with mutexDelayMs ${DELAY}`);
  assert.equal([acceptor.state, mutex.holder, acceptor.wakeups], ['locked-out', OTHER, 0]);

  hook.del();
  assert.ok(mutex.forceUnlock(OTHER));
  let firstTurn: [string, number] | null = null;
  const after = loop.prepare(() => { firstTurn ??= [acceptor.state, mutex.holder]; });
  assert.ok(await drive(loop, 5000, () => accepted.length === 2), 'both taken once the lock is free');
  after.del();
  assert.equal(firstTurn, ['watching', process.pid], 'the first turn after the unlock takes the lock');
  assert.equal([acceptor.state, acceptor.accepted, acceptor.wakeups, acceptor.wasted], ['watching', 2, 1, 0]);
});

test('the holder keeps the lock for its wait and gives it back when the wait ends; the accept runs first in its batch (priority 2) and unlocks before the rest', async () => {
  const loop = newLoop();
  // Made, registered and readable before the listener: backend order (epoll's ready list,
  // poll's array, select's fd order) puts it first; only the priority puts the accept first.
  const [r, w] = pipe();
  const mutex = sharedMutex();
  const order: string[] = [];
  const holders: Record<string, number> = {};
  loop.event(r, EV.READ, () => {
    order.push('pipe');
    holders.pipe = mutex.holder;
    drain(r);
  }).add();
  const listener = listen();
  const acceptor = new Acceptor(loop, listener, (fd) => {
    accepted.push(fd);
    order.push('accept');
    holders.onConnection = mutex.holder;
  }, { mutex });
  // Installed after the Acceptor's own hooks, so they see what those left.
  const prepare = loop.prepare(() => { holders.wait = mutex.holder; });
  const check = loop.check(() => { holders.afterWait = mutex.holder; });
  writeByte(w);
  await connectClients(net.localPort(listener), 1);
  await iterateUntil(loop, () => accepted.length === 1);
  prepare.del();
  check.del();
  assert.equal(order, ['accept', 'pipe']);
  assert.equal(holders, { wait: process.pid, afterWait: 0, onConnection: 0, pipe: 0 });
  assert.is(acceptor.state, 'watching');
});

test('acceptDisabled > 0: the turn is yielded without trying the lock; the next turn takes it', async () => {
  const loop = newLoop();
  const listener = listen();
  const mutex = sharedMutex();
  // Turns that never end by the clock: only the iterations below take them.
  const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { mutex, maxConnections: 16, turnMs: 60_000, mutexDelayMs: 60_000 });
  await connectClients(net.localPort(listener), 16);
  await iterateUntil(loop, () => accepted.length === 16);
  assert.equal([acceptor.state, acceptor.acceptDisabled, mutex.holder], ['full', 2, 0]);
  net.close(accepted.shift()!);
  acceptor.release();
  assert.equal([acceptor.state, acceptor.acceptDisabled], ['yielding', 1]);
  const seen: [number, number, string][] = [];
  const hook = loop.prepare(() => seen.push([acceptor.acceptDisabled, mutex.holder, acceptor.state]));
  await connectClients(net.localPort(listener), 1);
  await iterate(loop, 0);
  assert.equal(seen[0], [0, 0, 'yielding'], 'the yielded turn: acceptDisabled taken down, the lock not tried');
  await iterateUntil(loop, () => accepted.length === 16);
  hook.del();
  assert.equal(seen[1], [0, process.pid, 'watching'], 'the next turn: the lock taken, the listener watched');
});

test('pause() and close() give the lock back when called while it is held (between a turn and its wait)', async () => {
  const loop = newLoop();
  const listener = listen();
  const mutex = sharedMutex();
  for (const stop of ['pause', 'close'] as const) {
    const acceptor = new Acceptor(loop, listener, (fd) => accepted.push(fd), { mutex });
    let seen: [boolean, number] | null = null;
    // Runs after the Acceptor's turn, which has just taken the lock.
    const hook = loop.prepare(() => {
      const held = mutex.held;
      acceptor[stop]();
      seen = [held, mutex.holder];
      hook.del();
    });
    await iterate(loop, 0);
    assert.equal(seen, [true, 0], stop);
    assert.is(acceptor.state, stop === 'pause' ? 'paused' : 'closed');
    await iterate(loop, 20);
    assert.is(mutex.holder, 0, `no turn takes it after ${stop}()`);
    if (stop === 'pause') {
      await connectClients(net.localPort(listener), 1);
      await iterate(loop, 30);
      assert.is(accepted.length, 0, 'paused: not accepting');
      acceptor.resume();
      assert.is(acceptor.state, 'locked-out', 'resumed: the next turn tries the lock');
      await iterateUntil(loop, () => accepted.length === 1);
      acceptor.close();
    }
  }
});

/** A child process with its own loop and an Acceptor sharing the test's listener (fd 3) and mutex (fd 4). */
class Contender {
  readonly process: ChildProcess;
  /** Connections it accepted. */
  accepted = 0;
  /** Its Acceptor's counters as of its last line. */
  wakeups = 0;
  wasted = 0;
  #acks = 0;
  #ready: Promise<void>;

  constructor(listener: number, region: SharedRegion, mutexDelayMs: number) {
    const env: NodeJS.ProcessEnv = { ...process.env, [CHILD_FLAG]: String(mutexDelayMs) };
    delete env.EVPOLL_TEST_PROGRESS; // the child runs no tests
    this.process = killOnCleanup(spawn(process.execPath, [THIS_FILE], { env, stdio: ['pipe', 'pipe', 'inherit', listener, region.fd] }));
    let ready!: () => void;
    this.#ready = new Promise((resolve) => { ready = resolve; });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      const [what, wakeups, wasted] = line.split(' ');
      this.wakeups = Number(wakeups);
      this.wasted = Number(wasted);
      if (what === 'accepted') this.accepted++;
      else if (what === 'ready') ready();
      else if (what === 'done') this.#acks++;
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  async ready(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((_, reject) => { timer = setTimeout(() => reject(new Error(`child ${this.pid} not ready`)), 20_000); });
    try {
      await Promise.race([this.#ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Has its loop call acceptor.pause() or resume(), and waits until it has. */
  async tell(what: 'pause' | 'resume'): Promise<void> {
    const acks = this.#acks;
    this.process.stdin!.write(`${what}\n`);
    await until(`child ${this.pid} did ${what}()`, () => this.#acks > acks);
  }
}

/** The child's part: an Acceptor with the mutex on its loop, driven as the mode under test drives loops. */
function contend(mutexDelayMs: number): void {
  const loop = new EventLoop({ mechanism: MECHANISM });
  const mutex = new AcceptMutex(SharedRegion.open(4));
  const say = (what: string) => process.stdout.write(`${what} ${acceptor.wakeups} ${acceptor.wasted}\n`);
  const acceptor = new Acceptor(loop, 3, (fd) => {
    net.close(fd);
    say('accepted');
  }, { mutex, mutexDelayMs });
  const input = new Uint8Array(256);
  loop.event(0, EV.READ, (ev) => {
    const n = net.read(0, input);
    if (n <= 0) { // the test is done with it
      ev.del();
      acceptor.close();
      loop.close();
      process.exit(0);
    }
    for (const command of Buffer.from(input.subarray(0, n)).toString('latin1').split('\n').filter(Boolean)) {
      if (command === 'pause') acceptor.pause();
      else acceptor.resume();
      say('done');
    }
  }).add();
  say('ready');
  if (MODE === 'start') loop.start();
  else loop.run();
}

test('across processes: one process wakes per connection; pause() hands the listener to the other; a holder killed with SIGKILL keeps the lock until forceUnlock()', async () => {
  const listener = listen();
  const region = SharedRegion.create(4096);
  onCleanup(() => region.close());
  const mutex = new AcceptMutex(region);
  const DELAY = 50;
  const children = [new Contender(listener, region, DELAY), new Contender(listener, region, DELAY)];
  await Promise.all(children.map((c) => c.ready()));
  const port = net.localPort(listener);
  const total = () => children.reduce((sum, c) => sum + c.accepted, 0);
  const wakeups = () => children.reduce((sum, c) => sum + c.wakeups, 0);
  const oneByOne = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const before = total();
      await connectClients(port, 1);
      await until(`connection ${before + 1} accepted`, () => total() > before);
    }
  };
  // The lock may change hands between connections (a process gives it back after each wait),
  // but only its holder watches the listener: one wake-up per connection, not one per process.
  await oneByOne(6);
  const split = `${children.map((c) => `${c.accepted} accepted, ${c.wakeups} wake-ups (${c.wasted} wasted)`).join('; ')}`;
  report(split);
  assert.ok(wakeups() <= 7, split);

  const [paused, other] = children;
  await paused.tell('pause');
  // Taken after the ack, whose line carries the counts as of pause(): a wake-up that accepted
  // nothing before it (the lock changes hands between waits) reaches this side only then.
  const pausedCounts = [paused.accepted, paused.wakeups];
  await until('the other child takes the lock', () => mutex.holder === other.pid);
  await oneByOne(6);
  assert.equal([paused.accepted, paused.wakeups], pausedCounts, 'paused: it neither woke nor accepted');
  assert.is(total(), 12);

  await paused.tell('resume');
  // With nothing to do, the holder blocks in its wait (no timer of its own) keeping the lock;
  // the other tries every DELAY ms and fails.
  await until('a child holds the lock', () => children.some((c) => c.pid === mutex.holder));
  const victim = children.find((c) => c.pid === mutex.holder)!;
  const survivor = children.find((c) => c !== victim)!;
  const exited = new Promise((resolve) => victim.process.once('exit', resolve));
  victim.process.kill('SIGKILL');
  await exited;
  assert.is(mutex.holder, victim.pid, 'a dead holder keeps the lock');
  const before = survivor.accepted;
  await connectClients(port, 1);
  assert.not.ok(await eventually(() => survivor.accepted > before, 6 * DELAY), 'nobody takes it while the dead one holds the lock');
  assert.ok(mutex.forceUnlock(victim.pid));
  await until('the living child takes the connection once the lock is freed', () => survivor.accepted === before + 1);
  survivor.process.stdin!.end();
});

if (process.env[CHILD_FLAG]) contend(Number(process.env[CHILD_FLAG]));
else test.run();
