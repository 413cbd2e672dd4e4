// evpoll/sim itself: installing and uninstalling, virtual time, the network's behaviour and each
// fault, determinism and replay, fast-check. Runs in the 'sim' suite only (it is one suite's
// worth of tests whatever the mechanism). It does not import helpers.ts, which installs a
// Simulation of its own on 'sim': each test here installs its own through Simulation.run, which
// uninstalls it however the test ends.
import { test, onCleanup } from './harness.js';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EventLoop, EV, mechanisms } from '../src/index.js';
import * as net from '../src/net.js';
import { Simulation, type Faults } from '../src/sim.js';
import { VIRTUAL_FD_BASE } from '../src/virtual.js';
import { SIMULATION, throwsCode } from './helpers.js';

SIMULATION?.uninstall();

const { EAGAIN, EBADF, EPIPE, ECONNRESET, ECONNREFUSED, ENOTCONN, EINPROGRESS, EMFILE } = net;

/** A loop on the installed simulation, closed after the test. */
function simLoop(): EventLoop {
  const loop = new EventLoop();
  onCleanup(() => loop.close());
  return loop;
}

const bytes = (...b: number[]) => new Uint8Array(b);

/** A connected TCP pair over the simulation: [client, server], the loop run until both are up. */
function tcpPair(loop: EventLoop, sim: Simulation): [number, number, number] {
  const l = net.listen('127.0.0.1', 0);
  const c = net.connect('127.0.0.1', net.localPort(l));
  let server = -1;
  const ev = loop.event(l, EV.READ | EV.PERSIST, () => {
    const got = net.accept(l);
    if (typeof got !== 'number') server = got[0];
  }).add();
  let connected = false;
  const w = loop.event(c, EV.WRITE | EV.PERSIST, () => {
    connected = true;
    w.del();
  }).add();
  while (server < 0 || !connected) loop.runOnce();
  ev.del();
  assert.is(net.connectResult(c), 0);
  assert.ok(sim.now() >= 0);
  return [c, server, l];
}

test('install: virtual fds from 2**30, loops default to sim; uninstall puts the real world back', () => {
  const before = net.pipe();
  try {
    assert.ok(before[0] < VIRTUAL_FD_BASE);
    let virtual: [number, number] = [0, 0];
    Simulation.run({ seed: 7 }, (sim) => {
      assert.is(Simulation.current, sim);
      virtual = net.pipe();
      assert.ok(virtual.every((fd) => fd >= VIRTUAL_FD_BASE), String(virtual));
      assert.is(mechanisms().find((m) => m.name === 'sim')!.available, true);
      const loop = new EventLoop();
      assert.is(loop.mechanism, 'sim');
      assert.is(loop.supportEdgeTrigger, true);
      loop.close();
      // An explicit real mechanism still gets a real loop beside it.
      const real = new EventLoop({ mechanism: 'epoll' });
      assert.is(real.mechanism, 'epoll');
      real.close();
      throwsCode(() => Simulation.install(), 'ERR_EVPOLL_SIM_INSTALLED');
    });
    assert.is(Simulation.current, undefined);
    assert.is(mechanisms().find((m) => m.name === 'sim')!.available, false);
    assert.is(net.read(virtual[0], new Uint8Array(1)), EBADF, 'a virtual fd is not open once uninstalled');
    const err = throwsCode(() => new EventLoop({ mechanism: 'sim' }), 'ERR_EVPOLL_MECHANISM_UNAVAILABLE');
    assert.match(err.message, /Simulation\.install/);
    const after = net.pipe();
    assert.ok(after[0] < VIRTUAL_FD_BASE);
    net.close(after[0]);
    net.close(after[1]);
  } finally {
    net.close(before[0]);
    net.close(before[1]);
  }
});

test('mixing: real fds keep working through evpoll/net; each loop refuses the other kind of fd and stays usable', () => {
  const [rr, rw] = net.pipe();
  try {
    Simulation.run({}, () => {
      assert.is(net.write(rw, bytes(1, 2)), 2);
      const buf = new Uint8Array(4);
      assert.is(net.read(rr, buf), 2, 'a real pipe made before install');
      const loop = simLoop();
      const err = throwsCode(() => loop.event(rr, EV.READ, () => {}).add(), 'ERR_EVPOLL_SIM_UNSUPPORTED');
      assert.match(err.message, /real fd/);
      for (const refuse of [() => loop.start(), () => loop.signal('SIGUSR2', () => {}), () => loop.child(process.pid, () => {})]) {
        throwsCode(refuse, 'ERR_EVPOLL_SIM_UNSUPPORTED');
      }
      const real = new EventLoop({ mechanism: 'epoll' });
      try {
        const [vr, vw] = net.pipe();
        const e2 = throwsCode(() => real.event(vr, EV.READ, () => {}).add(), 'ERR_EVPOLL_SIM_UNSUPPORTED');
        assert.match(e2.message, /virtual fd/);
        // Both loops still work, each on its own kind.
        let realRan = 0;
        let simRan = 0;
        real.event(rr, EV.READ, () => realRan++).add();
        loop.event(vr, EV.READ, () => simRan++).add();
        net.write(rw, bytes(9));
        net.write(vw, bytes(9));
        assert.is(real.runOnce(1000), 1);
        assert.is(loop.runOnce(), 1);
        assert.equal([realRan, simRan], [1, 1]);
      } finally {
        real.close();
      }
    });
  } finally {
    net.close(rr);
    net.close(rw);
  }
});

test('virtual time: a ten-minute timer fires at exactly 600,000 ms, and advance() moves deliveries on', () => {
  Simulation.run({ faults: { latency: 50 } }, (sim) => {
    const loop = simLoop();
    let firedAt = -1;
    loop.timer(0, () => (firedAt = sim.now())).add(600_000);
    loop.run();
    assert.is(firedAt, 600_000);
    const [c, s] = tcpPair(loop, sim);
    assert.is(net.write(c, bytes(1, 2, 3)), 3);
    const buf = new Uint8Array(8);
    assert.is(net.read(s, buf), EAGAIN, 'on its way for 50 ms');
    sim.advance(49.9);
    assert.is(net.read(s, buf), EAGAIN);
    sim.advance(0.1);
    assert.is(net.read(s, buf), 3);
    throwsCode(() => sim.advance(-1), 'ERR_EVPOLL_INVALID_ARG');
  });
});

test('deadlock: a wait for what can never come throws, with the seed; the loop stays usable', () => {
  Simulation.run({ seed: 42 }, () => {
    const loop = simLoop();
    const [r, w] = net.pipe();
    let ran = 0;
    loop.event(r, EV.READ | EV.PERSIST, () => {
      net.read(r, new Uint8Array(8));
      ran++;
    }).add();
    const err = throwsCode(() => loop.run(), 'ERR_EVPOLL_SIM_DEADLOCK');
    assert.match(err.message, /seed 42/);
    net.write(w, bytes(1));
    assert.is(loop.runOnce(), 1);
    assert.is(ran, 1);
  });
});

test('buffers: a full socket gives EAGAIN; WRITE readiness comes back one latency after the peer reads', () => {
  Simulation.run({ faults: { bufferSize: 100, latency: 10 } }, (sim) => {
    const loop = simLoop();
    const [c, s] = tcpPair(loop, sim);
    const big = new Uint8Array(1000);
    assert.is(net.write(c, big), 100);
    assert.is(net.write(c, big), EAGAIN);
    let writable = -1;
    loop.event(c, EV.WRITE, () => (writable = sim.now())).add();
    sim.advance(10);
    const buf = new Uint8Array(1000);
    assert.is(net.read(s, buf), 100);
    const readAt = sim.now();
    loop.runOnce();
    assert.is(writable, readAt + 10, 'the window update takes one latency');
    assert.is(net.write(c, big), 100);
  });
});

test('partial reads and writes: at probability 1 every read and write moves less than it could', () => {
  Simulation.run({ faults: { partialRead: 1, partialWrite: 1 } }, (sim) => {
    const [a, b] = net.socketpair();
    const n = net.write(a, new Uint8Array(100).fill(7));
    assert.ok(n >= 1 && n < 100, String(n));
    const buf = new Uint8Array(100);
    const m = net.read(b, buf);
    assert.ok(m >= 1 && m < n, `${m} of ${n}`);
    assert.ok(sim.stats().faults.partialRead === 1 && sim.stats().faults.partialWrite === 1);
    // One byte cannot be split.
    assert.is(net.write(a, bytes(1)), 1);
  });
});

test('reset: both ends get ECONNRESET once, then EOF on read and EPIPE on write; READ|WRITE readiness', () => {
  Simulation.run({ faults: { reset: 1, latency: 1 } }, (sim) => {
    const loop = simLoop();
    const [c, s] = tcpPair(loop, sim);
    let seen = 0;
    loop.event(s, EV.READ, (_ev, which) => (seen = which)).add();
    assert.is(net.write(c, bytes(1, 2, 3)), 3);
    const sent = sim.now();
    loop.runOnce();
    assert.is(seen, EV.READ, 'the RST makes it readable');
    assert.is(sim.now(), sent + 1, 'where the segment would have arrived');
    const buf = new Uint8Array(8);
    assert.is(net.read(s, buf), ECONNRESET);
    assert.is(net.read(s, buf), 0);
    assert.is(net.write(s, buf), EPIPE);
    sim.advance(1); // the RST back to the client
    assert.is(net.write(c, buf), ECONNRESET);
    assert.is(net.write(c, buf), EPIPE);
    assert.is(sim.stats().faults.reset, 1);
  });
});

test('close and half-close: FIN after the data, RST for unread data, RST for bytes sent to a closed end', () => {
  Simulation.run({ faults: { latency: 2 } }, (sim) => {
    const loop = simLoop();
    const buf = new Uint8Array(16);
    // Half-close: the peer reads the data then EOF, and may still write back.
    const [c, s] = tcpPair(loop, sim);
    net.write(c, bytes(1, 2));
    assert.is(net.shutdown(c), 0);
    assert.is(net.write(c, bytes(3)), EPIPE);
    sim.advance(2);
    assert.is(net.read(s, buf), 2);
    assert.is(net.read(s, buf), 0);
    assert.is(net.write(s, bytes(4, 5)), 2);
    sim.advance(2);
    assert.is(net.read(c, buf), 2);
    // Closing with unread data resets the peer.
    net.write(s, bytes(6));
    sim.advance(2);
    net.close(c);
    sim.advance(2);
    assert.is(net.read(s, buf), ECONNRESET);
    // Bytes sent to a closed end come back as RST.
    const [c2, s2] = tcpPair(loop, sim);
    net.close(s2);
    sim.advance(2);
    assert.is(net.read(c2, buf), 0, 'FIN');
    assert.is(net.write(c2, bytes(1)), 1, 'taken: the peer kernel answers later');
    sim.advance(4);
    assert.is(net.write(c2, bytes(1)), ECONNRESET);
    // Pipes: a writer without reader gets EPIPE; a reader without writer EOF.
    const [r, w] = net.pipe();
    net.close(r);
    assert.is(net.write(w, bytes(1)), EPIPE);
    const [r2, w2] = net.pipe();
    net.write(w2, bytes(1));
    net.close(w2);
    assert.is(net.read(r2, buf), 1);
    assert.is(net.read(r2, buf), 0);
  });
});

test('connect: refused (WRITE, ECONNREFUSED once, then ENOTCONN), in progress, accepted; a full backlog retries the SYN after 1 s', () => {
  Simulation.run({ faults: { latency: 3 } }, (sim) => {
    const loop = simLoop();
    const l = net.listen('127.0.0.1', 0);
    const port = net.localPort(l);
    net.close(l);
    const c = net.connect('127.0.0.1', port);
    assert.is(net.connectResult(c), EINPROGRESS);
    let which = 0;
    loop.event(c, EV.WRITE, (_e, w) => (which = w)).add();
    loop.runOnce();
    assert.is(sim.now() >= 6, true, 'one round trip');
    assert.ok(which & EV.WRITE);
    assert.is(net.connectResult(c), ECONNREFUSED);
    assert.is(net.connectResult(c), ENOTCONN);
    throwsCode(() => net.connect('localhost', 80), 'ERR_EVPOLL_INVALID_ARG');
    // backlog 1: the second SYN waits for room.
    const l2 = net.listen('127.0.0.1', 0, { backlog: 1 });
    const p2 = net.localPort(l2);
    const a = net.connect('127.0.0.1', p2);
    const b = net.connect('127.0.0.1', p2);
    sim.advance(20);
    assert.is(net.connectResult(a), 0);
    assert.is(net.connectResult(b), EINPROGRESS);
    assert.equal(net.listenQueue(l2), { length: 1, limit: 1 });
    const first = net.accept(l2) as number[];
    assert.is(first.length, 1);
    sim.advance(1000);
    assert.is(net.connectResult(b), 0);
    sim.advance(3);
    assert.is((net.accept(l2) as number[]).length, 1);
    throwsCode(() => net.listen('127.0.0.1', p2), 'EADDRINUSE');
  });
});

test('emfile: accept fails with EMFILE and leaves the connection queued', () => {
  let refusals = 0;
  for (let seed = 0; seed < 10; seed++) {
    Simulation.run({ seed, faults: { emfile: 0.5 } }, (sim) => {
      const loop = simLoop();
      const l = net.listen('127.0.0.1', 0);
      net.connect('127.0.0.1', net.localPort(l));
      let emfile = 0;
      let accepted: number[] = [];
      const ev = loop.event(l, EV.READ | EV.PERSIST, () => {
        const got = net.accept(l);
        if (got === EMFILE) {
          emfile++;
          assert.equal(net.listenQueue(l), { length: 1, limit: 511 }, 'still queued');
        } else if (typeof got !== 'number') accepted = got;
      }).add();
      while (accepted.length === 0) loop.runOnce();
      ev.del();
      assert.is(accepted.length, 1);
      assert.is(sim.stats().faults.emfile, emfile);
      refusals += emfile;
    });
  }
  assert.ok(refusals >= 3, `${refusals} refusals in 10 seeds at probability 0.5`);
});

test('eintr: waits end early with nothing, yet timers fire on time and nothing is lost', () => {
  Simulation.run({ seed: 5, faults: { eintr: 0.9 } }, (sim) => {
    const loop = simLoop();
    const at: number[] = [];
    const t = loop.timer(EV.PERSIST, () => {
      at.push(sim.now());
      if (at.length === 5) t.del();
    }).add(100);
    let empty = 0;
    while (t.pending) if (loop.runOnce() === 0) empty++;
    assert.ok(empty > 5, `${empty} interrupted waits`);
    // Never early; late by less than the wait's whole-ms rounding after an interruption.
    at.forEach((x, i) => assert.ok(x >= 100 * (i + 1) && x < 100 * (i + 1) + 2, String(x)));
    // An interruption that lands past a timer's deadline (the wait's timeout is whole ms) still runs the timer.
    assert.ok(sim.stats().faults.eintr >= empty);
  });
});

test('reorder and spurious readiness: ready fds in another order; READ with nothing to read gives EAGAIN', () => {
  const order = (faults: Faults) =>
    Simulation.run({ seed: 11, faults }, () => {
      const loop = simLoop();
      const pipes = Array.from({ length: 6 }, () => net.pipe());
      const seen: number[] = [];
      pipes.forEach(([r], i) => loop.event(r, EV.READ, () => seen.push(i)).add());
      for (const [, w] of pipes) net.write(w, bytes(1));
      loop.runOnce();
      return seen;
    });
  assert.equal(order({}), [0, 1, 2, 3, 4, 5]);
  assert.not.equal(order({ reorder: 1 }), [0, 1, 2, 3, 4, 5]);
  assert.equal(order({ reorder: 1 }).slice().sort(), [0, 1, 2, 3, 4, 5]);
  Simulation.run({ faults: { spurious: 1 } }, (sim) => {
    const loop = simLoop();
    const [r] = net.pipe();
    let read = 0;
    loop.event(r, EV.READ, () => (read = net.read(r, new Uint8Array(4)))).add(); // nothing written
    assert.is(loop.runOnce(), 1);
    assert.is(read, EAGAIN);
    assert.is(sim.stats().faults.spurious, 1);
  });
});

test('EDGE: one callback per arrival while level-triggered repeats until read', () => {
  Simulation.run({}, () => {
    const loop = simLoop();
    const [r1, w1] = net.pipe();
    const [r2, w2] = net.pipe();
    let edge = 0;
    let level = 0;
    loop.event(r1, EV.READ | EV.EDGE | EV.PERSIST, () => edge++).add();
    loop.event(r2, EV.READ | EV.PERSIST, () => level++).add();
    net.write(w1, bytes(1));
    net.write(w2, bytes(1));
    for (let i = 0; i < 3; i++) loop.runOnce(0);
    assert.equal([edge, level], [1, 3]);
    net.write(w1, bytes(2)); // new data: a new edge, though the fd was readable already
    loop.runOnce(0);
    assert.equal([edge, level], [2, 4]);
  });
});

/**
 * A small program with every fault in play: an echo server and `clients` clients sending seeded
 * messages over TCP. Returns what it saw: the bytes echoed per client, virtual time, digest.
 */
function echoProgram(seed: number, faults: Faults, clients = 8, sabotage = false, verify?: (results: string[], digest: string) => void) {
  return Simulation.run({ seed, faults, trace: true }, (sim) => {
    const loop = simLoop();
    const l = net.listen('127.0.0.1', 0);
    const port = net.localPort(l);
    const buf = new Uint8Array(4096);
    const pending = new Map<number, Uint8Array>();
    const serverSide = (fd: number) => {
      const ev = loop.event(fd, EV.READ | EV.PERSIST, () => {
        const n = net.read(fd, buf);
        if (n > 0) {
          // Echo what fits; keep the rest (a server that drops it is the sabotaged one).
          const out = buf.slice(0, n);
          const w = net.write(fd, out);
          const taken = w > 0 ? w : 0;
          if (taken < n && !sabotage) pending.set(fd, out.subarray(taken));
          if (pending.has(fd)) {
            ev.del();
            const wev = loop.event(fd, EV.WRITE | EV.PERSIST, () => {
              const rest = pending.get(fd)!;
              const k = net.write(fd, rest);
              if (k === EAGAIN) return;
              if (k < 0 || k === rest.length) {
                pending.delete(fd);
                wev.del();
                if (k < 0) net.close(fd);
                else ev.add();
                return;
              }
              pending.set(fd, rest.subarray(k));
            }).add();
          }
          return;
        }
        if (n === EAGAIN) return;
        ev.del();
        net.close(fd);
      }).add();
    };
    loop.event(l, EV.READ | EV.PERSIST, () => {
      const got = net.accept(l);
      if (typeof got !== 'number') got.forEach(serverSide);
    }).add();
    const results: string[] = [];
    let done = 0;
    for (let i = 0; i < clients; i++) {
      const message = new Uint8Array(200 + i * 37).map((_, k) => (k * (i + 1)) & 255);
      const c = net.connect('127.0.0.1', port);
      let sent = 0;
      let got = 0;
      const finish = (how: string) => {
        rev.del();
        wev.del();
        net.close(c);
        results[i] = how;
        if (++done === clients) loop.stop();
      };
      const wev = loop.event(c, EV.WRITE | EV.PERSIST, () => {
        const n = net.write(c, message, sent, message.length - sent);
        if (n > 0) sent += n;
        else if (n !== EAGAIN) return finish(`write ${n}`);
        if (sent === message.length) wev.del();
      }).add();
      const rev = loop.event(c, EV.READ | EV.PERSIST, () => {
        const n = net.read(c, buf);
        if (n > 0) {
          for (let k = 0; k < n; k++) if (buf[k] !== message[got + k]) return finish(`wrong byte at ${got + k}`);
          got += n;
          if (got === message.length) finish('ok');
        } else if (n !== EAGAIN) finish(n === 0 ? `eof at ${got}` : `read ${n}`);
      }).add();
    }
    loop.timer(0, () => loop.stop()).add(60_000);
    loop.run();
    for (let i = 0; i < clients; i++) results[i] ??= 'waiting';
    verify?.(results, sim.digest());
    return { results, now: sim.now(), digest: sim.digest(), trace: sim.trace() };
  });
}

const ALL_FAULTS: Faults = { latency: [0.1, 5], bufferSize: [64, 4096], partialRead: 0.3, partialWrite: 0.3, reset: 0.02, emfile: 0.1, eintr: 0.1, reorder: 0.5, spurious: 0.05 };

test('determinism: the same seed gives the same callbacks, bytes and times; other seeds other schedules', () => {
  const a = echoProgram(1234, ALL_FAULTS);
  const b = echoProgram(1234, ALL_FAULTS);
  assert.is(a.digest, b.digest);
  assert.equal(a.trace, b.trace);
  assert.equal(a.results, b.results);
  assert.is(a.now, b.now);
  assert.ok(a.trace.length > 50);
  const digests = new Set([1, 2, 3, 4, 5].map((s) => echoProgram(s, ALL_FAULTS).digest));
  assert.is(digests.size, 5);
  // Without faults every client gets its message back.
  assert.equal(echoProgram(9, {}).results, Array(8).fill('ok'));
});

test('replay: a failing run says its seed and faults, and running them again fails the same way', () => {
  // The sabotaged echo server drops what the socket did not take: with small buffers some client
  // waits forever for its bytes, the deadline ends the run, and the check fails.
  const check = (seed: number, faults: Faults) =>
    echoProgram(seed, faults, 8, true, (results, digest) => {
      if (!results.every((x) => x === 'ok')) throw new Error(`lost bytes: ${results.join(', ')} (digest ${digest})`);
    });
  const faults: Faults = { bufferSize: [64, 256], partialWrite: 0.5 };
  let message = '';
  for (let seed = 0; seed < 50 && !message; seed++) {
    try {
      check(seed, faults);
    } catch (e) {
      message = (e as Error).message;
    }
  }
  assert.ok(message, 'the sabotage is found within 50 seeds');
  const m = /replay with Simulation\.run\(\{ seed: (\d+), faults: (\{.*\}) \}/.exec(message);
  assert.ok(m, message);
  const replay = () => {
    try {
      check(Number(m![1]), JSON.parse(m![2]));
    } catch (e) {
      return (e as Error).message.split('\n')[0];
    }
    return 'passed';
  };
  assert.is(replay(), message.split('\n')[0], 'the same failure, digest included');
  assert.is(replay(), message.split('\n')[0]);
});

test('fast-check: the seed and faults come from the property; a failure shrinks to a seed that replays', () => {
  const faultsArb = fc.record({
    latency: fc.tuple(fc.double({ min: 0, max: 2, noNaN: true }), fc.double({ min: 2, max: 5, noNaN: true })),
    bufferSize: fc.tuple(fc.integer({ min: 16, max: 256 }), fc.integer({ min: 256, max: 4096 })),
    partialRead: fc.double({ min: 0, max: 1, noNaN: true }),
    partialWrite: fc.double({ min: 0, max: 1, noNaN: true }),
    reorder: fc.double({ min: 0, max: 1, noNaN: true }),
    spurious: fc.double({ min: 0, max: 0.2, noNaN: true }),
    eintr: fc.double({ min: 0, max: 0.5, noNaN: true }),
  });
  // The honest echo server keeps every byte, whatever the schedule.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), faultsArb, (seed, faults) => {
      assert.equal(echoProgram(seed, faults, 4).results, Array(4).fill('ok'));
    }),
    { numRuns: 40, seed: 20261205 },
  );
  // The sabotaged one is caught; fast-check's counterexample is a seed and faults that replay.
  const details = fc.check(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), faultsArb, (seed, faults) => echoProgram(seed, faults, 4, true).results.every((x) => x === 'ok')),
    { numRuns: 200, seed: 20261205 },
  );
  assert.ok(details.failed, 'fast-check finds the lost bytes');
  const [seed, faults] = details.counterexample!;
  assert.not.ok(echoProgram(seed, faults, 4, true).results.every((x) => x === 'ok'), 'the counterexample replays');
  assert.is(echoProgram(seed, faults, 4, true).digest, echoProgram(seed, faults, 4, true).digest);
});

test('nothing left behind: openFds() and pending() count what a program forgot', () => {
  Simulation.run({ faults: { latency: 1 } }, (sim) => {
    const loop = simLoop();
    const [c, s, l] = tcpPair(loop, sim);
    assert.is(sim.openFds().length, 3);
    net.write(c, bytes(1));
    assert.ok(sim.pending() > 0);
    for (const fd of [c, s, l]) assert.is(net.close(fd), 0);
    sim.advance(10);
    assert.equal(sim.openFds(), []);
    assert.is(sim.pending(), 0);
    assert.is(net.close(c), EBADF);
  });
});

test('bad options: ERR_EVPOLL_INVALID_ARG for each, and nothing is installed', () => {
  const bad: unknown[] = [
    { seed: -1 },
    { seed: 1.5 },
    { seed: 2 ** 32 },
    { faults: { typo: 0.1 } },
    { faults: { reset: 2 } },
    { faults: { reset: -0.1 } },
    { faults: { eintr: 1 } },
    { faults: { latency: [5, 1] } },
    { faults: { latency: -1 } },
    { faults: { bufferSize: 0 } },
    { faults: { bufferSize: 1.5 } },
    { faults: null },
    null,
  ];
  for (const options of bad) {
    throwsCode(() => Simulation.install(options as never), 'ERR_EVPOLL_INVALID_ARG');
    assert.is(Simulation.current, undefined, JSON.stringify(options));
  }
});

if (process.env.EVPOLL_MECHANISM === 'sim') test.run();
