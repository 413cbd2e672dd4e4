// evpoll/net: nonblocking fd helpers that answer with numbers, not exceptions.
import { kernelOnly, onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { constants } from 'node:os';
import * as net from '../src/net.js';
import { addon } from '../src/native.js';
import { EV } from '../src/index.js';
import { newLoop, iterate, iterateUntil, openFds as openRealFds, pipe, socketpair, close, throwsCode, until, SIMULATION } from './helpers.js';

/** The fds open now: the process's, or on 'sim' the simulation's virtual ones (what net makes there). */
const openFds = (): number[] => (SIMULATION ? SIMULATION.openFds() : openRealFds());

/**
 * Waits for what the network does on its own (a handshake completing): on Node's timers, or on
 * 'sim', where time passes only as it is moved, by moving the virtual clock a millisecond at a time.
 */
async function networkUntil(what: string, done: () => boolean): Promise<void> {
  if (!SIMULATION) return until(what, done);
  for (let ms = 0; ms < 5000 && !done(); ms++) SIMULATION.advance(1);
  if (!done()) throw new Error(`not within 5000 virtual ms: ${what}`);
}

const { EAGAIN, EBADF, EPIPE, EADDRINUSE, ECONNREFUSED, ECONNRESET, EINPROGRESS, ENOTCONN } = net;

test('the errno names are the negative numbers the calls return: Linux\'s errno values, negated', () => {
  // Written out here on purpose: programs compare against these numbers, so a change in how
  // net.ts derives them must show.
  const linux = {
    EAGAIN: 11, EWOULDBLOCK: 11, EINTR: 4, EBADF: 9, EINVAL: 22, EMFILE: 24, ENFILE: 23, ENOMEM: 12,
    ENOBUFS: 105, EPIPE: 32, ECONNRESET: 104, ECONNABORTED: 103, EINPROGRESS: 115, EADDRINUSE: 98, ECHILD: 10, ENOTCONN: 107,
    ECONNREFUSED: 111, ETIMEDOUT: 110,
  };
  const exported = Object.fromEntries(Object.entries(net).filter(([name]) => /^E[A-Z]+$/.test(name)));
  assert.equal(exported, Object.fromEntries(Object.entries(linux).map(([name, n]) => [name, -n])));
});

/** O_NONBLOCK and FD_CLOEXEC as the kernel reports them for our own fd. */
function flags(fd: number): { nonblock: boolean; cloexec: boolean } {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const f = parseInt(/flags:\s+(\d+)/.exec(info)![1], 8);
  return { nonblock: (f & 0o4000) !== 0, cloexec: (f & 0o2000000) !== 0 };
}

kernelOnly('O_NONBLOCK and FD_CLOEXEC as the kernel reports them (/proc/self/fdinfo)', () => {
  test('pipe() and socketpair(): nonblocking, close-on-exec, connected', () => {
    for (const [a, b] of [pipe(), socketpair()]) {
      assert.equal(flags(a), { nonblock: true, cloexec: true });
      assert.equal(flags(b), { nonblock: true, cloexec: true });
      assert.is(net.write(b, new Uint8Array([1, 2, 3])), 3);
      const buf = new Uint8Array(8);
      assert.is(net.read(a, buf), 3);
      assert.equal([...buf.subarray(0, 3)], [1, 2, 3]);
    }
  });
});

test('read(): EAGAIN when empty, 0 at EOF, offset and length honoured', () => {
  const [r, w] = pipe();
  const buf = new Uint8Array(8);
  assert.is(net.read(r, buf), EAGAIN);
  net.write(w, new Uint8Array([7, 8, 9, 10]));
  assert.is(net.read(r, buf, 2, 2), 2);
  assert.equal([...buf.subarray(0, 4)], [0, 0, 7, 8]);
  assert.is(net.close(w), 0);
  assert.is(net.read(r, buf), 2);
  assert.is(net.read(r, buf), 0, 'EOF');
  assert.throws(() => net.read(r, buf, 6, 4), /outside the buffer/);
});

test('write(): EAGAIN when the peer is full, EPIPE when it is gone; close() twice: EBADF', () => {
  const [a, b] = socketpair();
  const big = new Uint8Array(1 << 16);
  let n: number;
  do n = net.write(a, big);
  while (n > 0);
  assert.is(n, EAGAIN);
  const [r, w] = pipe();
  net.close(r);
  assert.is(net.write(w, big.subarray(0, 1)), EPIPE);
  net.close(w);
  assert.is(net.close(w), EBADF);
  void b;
});

test('read()/write() on views: a subarray, a pooled Buffer, a view on a SharedArrayBuffer touch only their own bytes', () => {
  const [r, w] = socketpair();
  // A view in the middle of a larger ArrayBuffer, with and without offset/length.
  const memory = new Uint8Array(32).fill(0xee);
  const view = memory.subarray(8, 16);
  assert.is(net.write(w, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])), 10);
  assert.is(net.read(r, view), 8);
  assert.equal([...memory.subarray(6, 18)], [0xee, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 0xee, 0xee]);
  assert.is(net.read(r, view, 6, 2), 2);
  assert.equal([...memory.subarray(14, 17)], [9, 10, 0xee]);
  assert.is(net.read(r, view, 8), 0, 'an empty range at the end: a zero-length read');
  assert.is(net.read(r, view), EAGAIN);
  assert.is(net.write(w, view, 2, 3), 3);
  assert.is(net.read(r, view, 0, 8), 3);
  assert.equal([...view.subarray(0, 3)], [3, 4, 5]);
  // Small Buffers share one pool: its neighbours must stay as they were.
  const a = Buffer.from('aaaa'), b = Buffer.from('bbbb'), c = Buffer.from('cccc');
  assert.ok(a.buffer === b.buffer && b.byteOffset > 0, 'pooled Buffers');
  assert.is(net.write(w, Buffer.from('xyz123')), 6);
  assert.is(net.read(r, b), 4);
  assert.is(net.read(r, b, 1, 2), 2);
  assert.equal([a.toString(), b.toString(), c.toString()], ['aaaa', 'x231', 'cccc']);
  // A view on a SharedArrayBuffer.
  const shared = new Uint8Array(new SharedArrayBuffer(16), 4, 8);
  assert.is(net.write(w, new Uint8Array([5, 6, 7])), 3);
  assert.is(net.read(r, shared, 1), 3);
  assert.equal([...new Uint8Array(shared.buffer, 0, 12)], [0, 0, 0, 0, 0, 5, 6, 7, 0, 0, 0, 0]);
  assert.is(net.write(w, shared, 1, 2), 2);
  assert.is(net.read(r, view), 2);
  assert.equal([...view.subarray(0, 2)], [5, 6]);
  // Empty views.
  assert.is(net.read(r, new Uint8Array(0)), 0);
  assert.is(net.write(w, memory.subarray(32)), 0);
});

kernelOnly("the addon's own read/write, called directly: read(2) and write(2) on real fds", () => {
  test('the native read/write refuse memory outside the view whatever JS passed', () => {
    // evpoll/net checks first; the addon, reachable directly, must still refuse on its own.
    const raw = addon as unknown as Record<'read' | 'write', (...args: unknown[]) => number>;
    const [r, w] = socketpair();
    const memory = new Uint8Array(16);
    const view = memory.subarray(4, 12);
    for (const op of [raw.read, raw.write]) {
      const fd = op === raw.read ? r : w;
      for (const args of [[9], [8, 1], [0, 9], [-1, 1], [2 ** 32, 1], [4, 2 ** 32 + 1], [2 ** 53, 0]]) {
        assert.throws(() => op(fd, view, ...args), (e: Error) => e instanceof RangeError, `${op.name}(fd, view, ${args.join(', ')})`);
      }
      for (const buffer of [undefined, 'abc', {}, new ArrayBuffer(8), new Int32Array(2), new DataView(new ArrayBuffer(8))]) {
        assert.throws(() => op(fd, buffer, 0, 1), (e: Error) => e instanceof TypeError, `${op.name}: ${String(buffer)}`);
      }
      assert.throws(() => op(fd), (e: Error) => e instanceof TypeError, `${op.name}: no buffer`);
      assert.is(op('3', view, 0, 1), EBADF, 'an fd that is not a number is -1');
    }
    assert.is(raw.write(w, new Uint8Array([1, 2, 3])), 3, 'the whole view by default');
    assert.is(raw.read(r, view, 6), 2, 'from offset to the end of the view');
    assert.is(raw.read(r, view, 'x', -1), 1, 'an offset that is not a number is 0, a negative length the rest');
    assert.equal([...memory], [0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]);
  });
});

test('bad fds are refused before any syscall', () => {
  throwsCode(() => net.read(-1, new Uint8Array(1)), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => net.write(1.5, new Uint8Array(1)), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => net.close('3' as unknown as number), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => net.listen('127.0.0.1', 70000), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => net.listen('localhost-not-an-ip', 0), 'ERR_EVPOLL_INVALID_ARG');
  throwsCode(() => net.accept(0, 0), 'ERR_EVPOLL_INVALID_ARG');
});

kernelOnly('/proc/self/fdinfo flags, SO_REUSEPORT and IPv6 of real listening sockets', () => {
  test('listen(): port 0 picks a free port; a taken port is EADDRINUSE in SystemError shape', () => {
    const fd = net.listen('127.0.0.1', 0, { backlog: 16 });
    try {
      assert.equal(flags(fd), { nonblock: true, cloexec: true });
      const port = net.localPort(fd);
      assert.ok(port > 0);
      const err = throwsCode(() => net.listen('127.0.0.1', port), 'EADDRINUSE');
      assert.is(err.errno, EADDRINUSE);
      assert.is(err.syscall, 'listen');
      // SO_REUSEPORT on both: the second bind is allowed.
      const a = net.listen('127.0.0.1', 0, { reusePort: true });
      const b = net.listen('127.0.0.1', net.localPort(a), { reusePort: true });
      net.close(a);
      net.close(b);
      const v6 = net.listen('::1', 0);
      assert.ok(net.localPort(v6) > 0);
      net.close(v6);
    } finally {
      net.close(fd);
    }
  });
});

kernelOnly('real TCP clients (node:net) and /proc/self/fdinfo flags', () => {
  test('accept(): EAGAIN with nothing pending; a batch of connections, nonblocking and close-on-exec', async () => {
    const fd = net.listen('127.0.0.1', 0);
    const port = net.localPort(fd);
    assert.is(net.accept(fd), EAGAIN);
    const clients = Array.from({ length: 5 }, () => connect(port, '127.0.0.1'));
    await Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve))));
    const loop = newLoop();
    const got: number[] = [];
    loop.event(fd, EV.READ, () => {
      const r = net.accept(fd, 3);
      if (Array.isArray(r)) got.push(...r);
    }).add();
    await iterateUntil(loop, () => got.length === 5);
    for (const c of got) {
      assert.equal(flags(c), { nonblock: true, cloexec: true });
      assert.is(net.setNoDelay(c), 0);
      net.close(c);
    }
    clients.forEach((c) => c.destroy());
    loop.close();
    net.close(fd);
  });
});

kernelOnly('real TCP clients (node:net), and TCP_INFO from getsockopt', () => {
  test('listenQueue(): the accept queue from TCP_INFO, counted as connections complete and accepted; refusals', async () => {
    const fd = net.listen('127.0.0.1', 0, { backlog: 37 });
    const clients: ReturnType<typeof connect>[] = [];
    try {
      assert.equal(net.listenQueue(fd), { length: 0, limit: 37 });
      clients.push(...Array.from({ length: 4 }, () => connect(net.localPort(fd), '127.0.0.1')));
      await Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve))));
      // The client's connect completes when the SYN-ACK arrives; the server's queue takes the connection on the final ACK, a moment later.
      const end = Date.now() + 5000;
      while (net.listenQueue(fd).length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      assert.equal(net.listenQueue(fd), { length: 4, limit: 37 });
      const got = net.accept(fd, 3) as number[];
      assert.is(got.length, 3);
      assert.is(net.listenQueue(fd).length, 1);
      got.forEach((c) => {
        // An accepted connection is not listening: EINVAL, not its own queue.
        assert.is(throwsCode(() => net.listenQueue(c), 'EINVAL').syscall, 'getsockopt');
        net.close(c);
      });
      const [a, b] = socketpair();
      throwsCode(() => net.listenQueue(a), 'ENOTSUP'); // EOPNOTSUPP's number on Linux, under its other name
      net.close(a);
      net.close(b);
      throwsCode(() => net.listenQueue(1 << 20), 'EBADF');
      throwsCode(() => net.listenQueue(-1), 'ERR_EVPOLL_INVALID_ARG');
    } finally {
      clients.forEach((c) => c.destroy());
      net.close(fd);
    }
  });
});

const owned = new Set<number>();

/** `fd`, closed after the test, passed or failed. */
function own(fd: number): number {
  if (owned.size === 0) {
    onCleanup(() => {
      owned.forEach((f) => net.close(f));
      owned.clear();
    });
  }
  owned.add(fd);
  return fd;
}

/** The fd accepted on `listener` (exactly one pending), owned. */
function acceptOne(listener: number): number {
  const got = net.accept(listener);
  assert.ok(Array.isArray(got) && got.length === 1, `one connection accepted, got ${String(got)}`);
  return own((got as number[])[0]);
}

/** Reads everything until EOF or EAGAIN: the bytes, and whether EOF was seen. */
function readAll(fd: number): { bytes: number[]; eof: boolean } {
  const buf = new Uint8Array(64);
  const bytes: number[] = [];
  for (;;) {
    const n = net.read(fd, buf);
    if (n === 0) return { bytes, eof: true };
    if (n < 0) {
      assert.is(n, EAGAIN, 'read: data, EOF or EAGAIN');
      return { bytes, eof: false };
    }
    bytes.push(...buf.subarray(0, n));
  }
}

test('connect(): the fd becomes writable once connected, connectResult 0, accept gives the server end, bytes both ways', async () => {
  for (const host of ['127.0.0.1', '::1']) {
    const listener = own(net.listen(host, 0));
    const client = own(net.connect(host, net.localPort(listener)));
    // The kernel's flags of a real fd (/proc/self/fdinfo): a virtual one has none to show.
    if (!SIMULATION) assert.equal(flags(client), { nonblock: true, cloexec: true });
    const loop = newLoop();
    let writable = 0, acceptable = false;
    loop.event(client, EV.WRITE, (ev, which) => { writable = which; ev.del(); }).add();
    loop.event(listener, EV.READ, (ev) => { acceptable = true; ev.del(); }).add();
    await iterateUntil(loop, () => writable !== 0 && acceptable);
    assert.is(writable, EV.WRITE);
    assert.is(net.connectResult(client), 0);
    assert.is(net.connectResult(client), 0, 'asked again: still connected');
    const server = acceptOne(listener);
    assert.is(net.write(client, new Uint8Array([1, 2, 3])), 3);
    assert.is(net.write(server, new Uint8Array([4, 5])), 2);
    const got = { server: [] as number[], client: [] as number[] };
    loop.event(server, EV.READ, () => got.server.push(...readAll(server).bytes)).add();
    loop.event(client, EV.READ, () => got.client.push(...readAll(client).bytes)).add();
    await iterateUntil(loop, () => got.server.length === 3 && got.client.length === 2);
    assert.equal(got, { server: [1, 2, 3], client: [4, 5] }, host);
    loop.close();
  }
});

test('connect() to a loopback port with no listener: Linux answers EINPROGRESS, the fd becomes writable, connectResult ECONNREFUSED once, then ENOTCONN', async () => {
  for (const host of ['127.0.0.1', '::1']) {
    const probe = net.listen(host, 0);
    const port = net.localPort(probe);
    net.close(probe);
    // Not a throw: the refusal (the listener-less port's reset) is reported as the outcome.
    const fd = own(net.connect(host, port));
    const loop = newLoop();
    let which = 0;
    loop.event(fd, EV.WRITE, (ev, w) => { which = w; ev.del(); }).add();
    await iterateUntil(loop, () => which !== 0);
    assert.is(which, EV.WRITE);
    assert.is(net.connectResult(fd), ECONNREFUSED, host);
    assert.is(net.connectResult(fd), ENOTCONN, 'the kernel reports the error once');
    assert.is(net.shutdown(fd), ENOTCONN, 'nothing to half-close');
    assert.is(net.write(fd, new Uint8Array(1)), EPIPE);
    loop.close();
  }
});

test('connect(): a refusal the kernel gives at once (a multicast or broadcast address) throws ENETUNREACH, syscall connect, and closes the socket', () => {
  const before = openFds();
  for (const host of ['ff02::1', '224.0.0.1', '255.255.255.255']) {
    const err = throwsCode(() => net.connect(host, 80), 'ENETUNREACH');
    assert.is(err.syscall, 'connect', host);
    assert.is(err.errno, -constants.errno.ENETUNREACH);
  }
  assert.equal(openFds(), before, 'no socket left open');
});

test('connectResult(): EINPROGRESS while the handshake is unanswered (a listener with a full accept queue drops the SYN), 0 once it completes', async () => {
  // backlog 0: Linux queues one connection (its limit is the backlog + 1) and drops SYNs beyond.
  const listener = own(net.listen('127.0.0.1', 0, { backlog: 0 }));
  const port = net.localPort(listener);
  const loop = newLoop();
  const first = own(net.connect('127.0.0.1', port));
  // The client is connected on the SYN-ACK; the server queues the connection on the final ACK.
  await networkUntil('the first connection queued', () => net.listenQueue(listener).length === 1);
  assert.is(net.connectResult(first), 0);
  const second = own(net.connect('127.0.0.1', port));
  let which = 0;
  loop.event(second, EV.WRITE, (ev, w) => { which = w; ev.del(); }).add();
  await iterate(loop, 100);
  assert.is(which, 0, 'not writable while the SYN goes unanswered');
  assert.is(net.connectResult(second), EINPROGRESS);
  assert.is(net.connectResult(second), EINPROGRESS, 'asked again: still going on');
  // shutdown() abandons an attempt still going on (Linux: a reset of its own).
  const third = own(net.connect('127.0.0.1', port));
  assert.is(net.connectResult(third), EINPROGRESS);
  assert.is(net.shutdown(third), 0);
  assert.is(net.connectResult(third), ECONNRESET);
  assert.is(net.connectResult(third), ENOTCONN);
  // Room in the queue: the SYN's retransmission (after 1 s, then 3 s) is answered.
  acceptOne(listener);
  await iterateUntil(loop, () => which !== 0, 10_000);
  assert.is(which, EV.WRITE);
  assert.is(net.connectResult(second), 0);
  await networkUntil('the second connection queued', () => net.listenQueue(listener).length === 1);
  acceptOne(listener);
  assert.is(net.connectResult(listener), ENOTCONN, 'a listener never connects');
});

test('shutdown(): the peer reads the data, then EOF, and can still write back; a write on the shut side is EPIPE', async () => {
  const listener = own(net.listen('127.0.0.1', 0));
  const client = own(net.connect('127.0.0.1', net.localPort(listener)));
  const loop = newLoop();
  let connected = false, acceptable = false;
  loop.event(client, EV.WRITE, (ev) => { connected = true; ev.del(); }).add();
  loop.event(listener, EV.READ, (ev) => { acceptable = true; ev.del(); }).add();
  await iterateUntil(loop, () => connected && acceptable);
  assert.is(net.connectResult(client), 0);
  const server = acceptOne(listener);
  assert.is(net.write(client, new Uint8Array([1, 2, 3])), 3);
  assert.is(net.shutdown(client), 0);
  assert.is(net.write(client, new Uint8Array([9])), EPIPE);
  const atServer = { bytes: [] as number[], eof: false };
  loop.event(server, EV.READ, (ev) => {
    const r = readAll(server);
    atServer.bytes.push(...r.bytes);
    if (r.eof) {
      atServer.eof = true;
      ev.del();
    }
  }).add();
  await iterateUntil(loop, () => atServer.eof);
  assert.equal(atServer, { bytes: [1, 2, 3], eof: true });
  assert.is(net.read(server, new Uint8Array(8)), 0, 'EOF again');
  // The other direction still works.
  assert.is(net.write(server, new Uint8Array([4, 5])), 2);
  const atClient = { bytes: [] as number[], eof: false };
  loop.event(client, EV.READ, (ev) => {
    const r = readAll(client);
    atClient.bytes.push(...r.bytes);
    if (r.eof) {
      atClient.eof = true;
      ev.del();
    }
  }).add();
  await iterateUntil(loop, () => atClient.bytes.length === 2);
  assert.equal(atClient, { bytes: [4, 5], eof: false });
  assert.is(net.connectResult(client), 0, 'half-closed is still connected');
  assert.is(net.shutdown(client), 0, 'a second shutdown: nothing more to do');
  // The server's half-close ends the client's reading too.
  assert.is(net.shutdown(server), 0);
  await iterateUntil(loop, () => atClient.eof);
  assert.equal(atClient, { bytes: [4, 5], eof: true });
  loop.close();
});

test('connect(), connectResult(), shutdown(): bad arguments, closed fds and fds that are not sockets', () => {
  for (const host of ['localhost', '', '127.0.0.1:80', 'fe80::1', 'fe80::1%lo']) {
    throwsCode(() => net.connect(host, 80), 'ERR_EVPOLL_INVALID_ARG');
  }
  throwsCode(() => net.connect(undefined as unknown as string, 80), 'ERR_EVPOLL_INVALID_ARG');
  for (const port of [0, -1, 65536, 70000, 1.5, NaN, '80' as unknown as number, undefined as unknown as number]) {
    throwsCode(() => net.connect('127.0.0.1', port), 'ERR_EVPOLL_INVALID_ARG');
  }
  for (const fd of [-1, 1.5, '3' as unknown as number]) {
    throwsCode(() => net.connectResult(fd), 'ERR_EVPOLL_INVALID_ARG');
    throwsCode(() => net.shutdown(fd), 'ERR_EVPOLL_INVALID_ARG');
  }
  const ENOTSOCK = -constants.errno.ENOTSOCK;
  const [r, w] = pipe();
  assert.is(net.connectResult(r), ENOTSOCK);
  assert.is(net.shutdown(w), ENOTSOCK);
  // Closed last, and asked at once: the next fd opened would take the number again.
  close(w);
  assert.is(net.connectResult(w), EBADF);
  assert.is(net.shutdown(w), EBADF);
});

test.run();
