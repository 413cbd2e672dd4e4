// The example server's connection handling (examples/server/connections.ts) under evpoll/sim: one
// loop holding a virtual listener, an Acceptor and `Connections` as the worker sets them up
// (examples/server/worker.ts), and many virtual clients on the same loop whose every choice comes
// from the seed. A seed's run checks that every request owed an answer got exactly one, in order,
// and that nothing is left behind. Shared by test/server-sim.test.ts and anything that wants to
// run seeds (a benchmark, a hunt for a failing seed).
//
// The client-side rules, precisely. A request is *sent* once the last byte of its head is taken
// by write() (the server answers a head as soon as it has it; a body is skipped). A connection
// ends, for its client, in one of these ways, and its sent requests not answered are counted so:
// - reset: a read, write or connectResult() gave ECONNRESET (a reset fault, or the server closing
//   with bytes unread or arriving after its close: the keep-alive race at the idle timeout);
//   lost to the reset;
// - abandoned: the client closed it (on purpose, abruptly) before all its sent requests were
//   answered; abandoned;
// - idle-closed: EOF without a `Connection: close` answer, and no RST within two latencies of the
//   client's last write (so the server had read everything the client wrote), at least
//   idleTimeoutMs after that last write (or after the connection was established, if it wrote
//   nothing): the idle sweep's doing; lost to the idle timeout;
// - done: every sent request answered (then the client closed, or the server closed after the
//   `Connection: close` answer, or after the client's half-close).
// Anything else is a violation: an EOF without `Connection: close` sooner than idleTimeoutMs after
// the client's last write, a response with no request to answer (more responses than requests
// sent, or anything after a `Connection: close` answer), a response that does not answer its
// request (each carries what it answers: its body, or its Connection header), a connect that
// fails, the server answering an identified request twice, or a client still waiting at the end.
// Then, once every client is done: the Connections object holds no connection, the Acceptor
// counts none, the only virtual fd open is the listener, and after drain() (which stops the sweep
// timer), Acceptor.close() and closing the listener, the loop's run() returns by itself (nothing
// registered: no event, no timer) with no virtual fd open.
import { Acceptor, EV, EventLoop, type Event } from 'evpoll';
import * as net from 'evpoll/net';
import { Simulation, type Faults } from 'evpoll/sim';
import * as examples from '../examples/server/connections.js';

export type ConnectionsModule = Pick<typeof examples, 'Connections'>;

export interface SeedOptions {
  /** Virtual clients (connections); default 1000. */
  clients?: number;
  /** Default: faultsFor(seed). */
  faults?: Faults;
  /** The module under test; default examples/server/connections.ts. */
  connectionsModule?: ConnectionsModule;
}

export interface SeedResult {
  seed: number;
  faults: Faults;
  idleTimeoutMs: number;
  clients: number;
  /** Requests sent (heads written whole). */
  requests: number;
  /** Responses received whole, each matching its request. */
  answered: number;
  /** Sent requests owed an answer (on connections that ended `done`), and how many of them were answered. */
  owed: number;
  owedAnswered: number;
  /** Connections by how they ended, and the sent requests left unanswered in each way. */
  resets: number;
  lostToReset: number;
  abandoned: number;
  lostToAbandon: number;
  idleClosed: number;
  lostToIdle: number;
  /** Idle-closed connections that lost answers, by how their client read. */
  idleLossByRead: Record<ReadMode, number>;
  done: number;
  /** The server's own counts: requests answered, connections closed idle. */
  served: number;
  closedIdle: number;
  /** Virtual ms the run took. */
  virtualMs: number;
  faultsStruck: Record<string, number>;
  digest: string;
  violations: string[];
}

/** A failed seed: its message lists the violations (and, from Simulation.run, the replay line). */
export class SeedFailure extends Error {
  constructor(readonly result: SeedResult) {
    super(`seed ${result.seed}: ${result.violations.length} violation(s):\n  ${result.violations.slice(0, 5).join('\n  ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The harness's own generator (mulberry32): the clients' choices, apart from the simulation's.

class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  float(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)];
  }
}

/** The faults a seed runs with: every kind the simulation has, each seed its own mix. */
export function faultsFor(seed: number): Faults {
  const r = new Prng(seed ^ 0x9e3779b9);
  return {
    latency: [0, r.pick([0, 1, 5, 20])],
    bufferSize: [r.pick([64, 256, 1024]), r.pick([2048, 8192, 65536])],
    partialRead: r.pick([0, 0.1, 0.3]),
    partialWrite: r.pick([0, 0.1, 0.3]),
    reset: r.pick([0, 0.001, 0.005]),
    emfile: r.pick([0, 0.02, 0.1]),
    eintr: r.pick([0, 0.02, 0.1]),
    reorder: r.pick([0, 0.3, 1]),
    spurious: r.pick([0, 0.01, 0.05]),
  };
}

const maxLatency = (faults: Faults) => (faults.latency === undefined ? 0 : typeof faults.latency === 'number' ? faults.latency : faults.latency[1]);

// ---------------------------------------------------------------------------------------------
// Requests and the answers the server gives them.

type Kind = 'hello' | 'id' | 'post' | 'big';

interface Request {
  kind: Kind;
  k: number;
  close: boolean;
  size: number; // big: the body's size
  bytes: Buffer;
  headLength: number;
}

function makeRequest(client: number, k: number, kind: Kind, close: boolean, r: Prng): Request {
  const connection = close ? 'Connection: close\r\n' : '';
  let head: string;
  let body = '';
  let size = 0;
  if (kind === 'hello') head = `GET / HTTP/1.1\r\nHost: sim\r\n${connection}\r\n`;
  else if (kind === 'id') head = `GET /id/${client}/${k} HTTP/1.1\r\nHost: sim\r\n${connection}\r\n`;
  else if (kind === 'post') {
    body = 'b'.repeat(r.int(1, 3000));
    head = `POST /id/${client}/${k} HTTP/1.1\r\nHost: sim\r\nContent-Length: ${body.length}\r\n${connection}\r\n`;
  } else {
    size = r.pick([1000, 20_000, 70_000]); // 70 KB: more than the server's whole shared output buffer
    head = `GET /big/${client}/${k}/${size} HTTP/1.1\r\nHost: sim\r\n${connection}\r\n`;
  }
  return { kind, k, close, size, bytes: Buffer.from(head + body, 'latin1'), headLength: head.length };
}

const bigByte = (k: number) => 97 + (k % 26);

/** The server's pages (ConnectionsOptions.respond): each says what it answers. */
function respond(target: string, keepAlive: boolean): Buffer | null {
  const parts = target.split('/'); // ['', 'id' | 'big', client, k, size?]
  let body: Buffer;
  if (parts[1] === 'id') body = Buffer.from(`id ${parts[2]} ${parts[3]}\n`, 'latin1');
  else if (parts[1] === 'big') body = Buffer.alloc(Number(parts[4]), bigByte(Number(parts[3])));
  else return null;
  const connection = keepAlive ? '' : 'Connection: close\r\n';
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${connection}\r\n`, 'latin1'), body]);
}

// ---------------------------------------------------------------------------------------------
// A client.

type SendMode = 'pipeline' | 'sequential';
type ReadMode = 'eager' | 'slow' | 'stall';
type EndMode = 'close' | 'half' | 'abrupt';
type Outcome = 'reset' | 'abandoned' | 'idle-closed' | 'done';

interface World {
  loop: EventLoop;
  sim: Simulation;
  port: number;
  idleTimeoutMs: number;
  /** No RST can still be on its way this long after a client's last write. */
  settleMs: number;
  violations: string[];
  finished(c: Client): void;
}

const readBuffer = Buffer.alloc(64 * 1024);
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

class Client {
  fd = -1;
  readonly requests: Request[] = [];
  readonly send: SendMode;
  readonly read: ReadMode;
  readonly end: EndMode;
  /** Split writes: at most this many bytes per write, with a pause after each. */
  readonly chunk: number;
  readonly r: Prng;
  #readEv: Event<Client> | undefined;
  #writeEv: Event<Client> | undefined;
  #writeTimer: Event<Client> | undefined;
  #readTimer: Event<Client> | undefined;
  #endTimer: Event<Client> | undefined;
  #nextTimer: Event<Client> | undefined;
  // Output: the bytes queued and not yet written (pending[at...]), and where each head ends in the stream.
  #pending: Buffer = Buffer.alloc(0);
  #at = 0;
  #written = 0;
  #headEnds: number[] = [];
  #queued = 0; // requests queued
  sent = 0;
  #lastWrite = 0;
  #shut = false;
  // Input.
  #input: Buffer = Buffer.alloc(0);
  #bodyLeft = -1; // > = 0: in a response's body
  #bodyExpect: Request | undefined;
  #bodyClose = false;
  #bodyAt = 0;
  #idBody = '';
  answered = 0;
  #closeAnswered = false;
  #eofAt = -1;
  outcome: Outcome | undefined;
  ended = false;

  constructor(readonly id: number, readonly w: World, seed: number) {
    const r = (this.r = new Prng((seed * 0x9e3779b1) ^ (id * 0x85ebca6b) ^ 0x5bd1e995));
    const n = r.chance(0.1) ? r.int(7, 12) : r.int(1, 6);
    const closeLast = r.chance(0.3);
    for (let k = 0; k < n; k++) {
      const kind = r.pick<Kind>(['hello', 'hello', 'hello', 'id', 'id', 'post', 'big']);
      this.requests.push(makeRequest(id, k, kind, closeLast && k === n - 1, r));
    }
    this.send = r.chance(0.4) ? 'pipeline' : 'sequential';
    this.read = r.pick<ReadMode>(['eager', 'eager', 'slow', 'stall']);
    this.end = r.pick<EndMode>(['close', 'close', 'half', 'abrupt']);
    this.chunk = r.chance(0.3) ? r.int(1, 40) : Infinity;
  }

  start(): void {
    this.fd = net.connect('127.0.0.1', this.w.port);
    this.#writeEv = this.w.loop.event(this.fd, EV.WRITE, (_ev, _which, c) => c.#onWritable(), this).add();
  }

  #connected = false;

  #onWritable(): void {
    if (!this.#connected) {
      const rc = net.connectResult(this.fd);
      if (rc === net.EINPROGRESS) return;
      if (rc !== 0) {
        this.#violation(`connect failed (${rc}) though the listener is open`);
        return this.#finish('reset');
      }
      this.#connected = true;
      this.#lastWrite = this.w.sim.now();
      this.#writeEv!.del();
      this.#readEv = this.w.loop.event(this.fd, EV.READ, (_ev, _which, c) => c.#onReadable(), this);
      if (this.read === 'stall') this.#pauseReading(this.r.int(200, 2 * this.w.idleTimeoutMs));
      else this.#readEv.add();
      if (this.end === 'abrupt') {
        this.#endTimer = this.w.loop.timer(0, (_ev, _which, c) => c.#abandon(), this).add(this.r.int(0, 2 * this.w.idleTimeoutMs));
      }
      if (this.send === 'pipeline') for (const _ of this.requests) this.#queue();
      else this.#queue();
      return;
    }
    this.#writeSome();
  }

  /** Queues the next request. */
  #queue(): void {
    const req = this.requests[this.#queued++];
    this.#headEnds.push(this.#written + (this.#pending.length - this.#at) + req.headLength);
    this.#pending = Buffer.concat([this.#pending.subarray(this.#at), req.bytes]);
    this.#at = 0;
    if (this.#writeTimer?.pending) return; // a split write's pause: it goes on from there
    this.#writeSome();
  }

  #writeSome(): void {
    while (this.#at < this.#pending.length) {
      const length = Math.min(this.#pending.length - this.#at, this.chunk);
      const n = net.write(this.fd, this.#pending, this.#at, length);
      if (n === net.EAGAIN) {
        this.#writeEv!.add();
        return;
      }
      if (n < 0) return this.#error(n, 'write');
      this.#at += n;
      this.#written += n;
      this.#lastWrite = this.w.sim.now();
      while (this.sent < this.#headEnds.length && this.#headEnds[this.sent] <= this.#written) this.sent++;
      if (this.chunk !== Infinity && this.#at < this.#pending.length) {
        // Split across writes: a short pause, now and then one close to the idle timeout.
        this.#writeEv!.del();
        const pause = this.r.chance(0.05) ? this.#nearIdle() : this.r.int(0, 30);
        (this.#writeTimer ??= this.w.loop.timer(0, (_ev, _which, c) => c.#writeSome(), this)).add(pause);
        return;
      }
    }
    this.#writeEv!.del();
    this.#pending = Buffer.alloc(0);
    this.#at = 0;
    if (this.end === 'half' && this.#queued === this.requests.length && !this.#shut) {
      this.#shut = true;
      const rc = net.shutdown(this.fd);
      if (rc < 0) this.#violation(`shutdown failed (${rc})`);
    }
  }

  #nearIdle(): number {
    const idle = this.w.idleTimeoutMs;
    return this.r.int(Math.floor(idle * 0.6), Math.floor(idle * 1.4));
  }

  #pauseReading(ms: number): void {
    this.#readEv!.del();
    (this.#readTimer ??= this.w.loop.timer(0, (_ev, _which, c) => c.#readEv!.add(), this)).add(ms);
  }

  #onReadable(): void {
    for (;;) {
      const max = this.read === 'slow' ? this.r.int(1, 512) : readBuffer.length;
      const n = net.read(this.fd, readBuffer, 0, max);
      if (n === net.EAGAIN) return;
      if (n < 0) return this.#error(n, 'read');
      if (n === 0) return this.#onEof();
      if (this.#eofAt >= 0) return this.#violation(`bytes after EOF`);
      this.#take(readBuffer.subarray(0, n));
      if (this.ended) return;
      if (this.read === 'slow') return this.#pauseReading(this.r.int(5, 100));
      if (this.read === 'stall' && this.r.chance(0.05)) return this.#pauseReading(this.r.int(200, 2 * this.w.idleTimeoutMs));
    }
  }

  /** Parses responses out of what arrived. */
  #take(bytes: Buffer): void {
    let p = 0;
    while (p < bytes.length && !this.ended) {
      if (this.#bodyLeft >= 0) {
        const k = Math.min(this.#bodyLeft, bytes.length - p);
        const req = this.#bodyExpect!;
        if (req.kind === 'big') {
          const want = bigByte(req.k);
          for (let i = p; i < p + k; i++) if (bytes[i] !== want) return this.#violation(`response ${this.answered} has a body that is not request ${req.k}'s`);
        } else {
          this.#idBody += bytes.toString('latin1', p, p + k);
        }
        this.#bodyAt += k;
        this.#bodyLeft -= k;
        p += k;
        if (this.#bodyLeft === 0) this.#answered();
        continue;
      }
      this.#input = this.#input.length === 0 ? Buffer.from(bytes.subarray(p)) : Buffer.concat([this.#input, bytes.subarray(p)]);
      p = bytes.length;
      const end = this.#input.indexOf(CRLFCRLF);
      if (end < 0) {
        if (this.#input.length > 1024) this.#violation(`a response head longer than 1 KiB`);
        return;
      }
      const head = this.#input.toString('latin1', 0, end);
      const rest = this.#input.subarray(end + 4);
      this.#input = Buffer.alloc(0);
      this.#startResponse(head);
      if (this.ended) return;
      if (rest.length > 0) {
        bytes = Buffer.from(rest);
        p = 0;
      }
    }
  }

  #startResponse(head: string): void {
    const k = this.answered;
    if (this.#closeAnswered) return this.#violation(`a response after the Connection: close answer`);
    if (k >= this.sent) return this.#violation(`response ${k} arrived with only ${this.sent} request(s) sent: a duplicate or an extra`);
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1];
    if (status !== '200') return this.#violation(`response ${k}: status ${status} (${JSON.stringify(head.slice(0, 40))})`);
    const length = Number(/\r\nContent-Length: (\d+)/i.exec(head)?.[1] ?? NaN);
    const close = /\r\nConnection: close/i.test(head);
    const req = this.requests[k];
    if (close !== req.close) return this.#violation(`response ${k}: Connection: close is ${close}, request ${k} asked ${req.close}`);
    const wantLength = req.kind === 'hello' ? 6 : req.kind === 'big' ? req.size : `id ${this.id} ${k}\n`.length;
    if (length !== wantLength) return this.#violation(`response ${k}: Content-Length ${length}, request ${k} (${req.kind}) wants ${wantLength}`);
    this.#bodyExpect = req;
    this.#bodyClose = close;
    this.#bodyLeft = length;
    this.#bodyAt = 0;
    this.#idBody = '';
    if (length === 0) this.#answered();
  }

  #answered(): void {
    const req = this.#bodyExpect!;
    const want = req.kind === 'hello' ? 'hello\n' : req.kind === 'big' ? '' : `id ${this.id} ${req.k}\n`;
    if (req.kind !== 'big' && this.#idBody !== want) return this.#violation(`response ${req.k}: body ${JSON.stringify(this.#idBody)}, wanted ${JSON.stringify(want)}`);
    this.#bodyLeft = -1;
    this.#bodyExpect = undefined;
    this.answered++;
    if (this.#bodyClose) {
      this.#closeAnswered = true;
      return; // the server closes; EOF ends it
    }
    if (this.answered === this.requests.length) {
      if (this.end !== 'half') this.#finish('done');
      return; // half-closed: the server's EOF ends it
    }
    if (this.send === 'sequential' && this.answered === this.#queued) {
      const pause = this.r.pick(['none', 'short', 'short', 'medium', 'idle']);
      if (pause === 'none') return this.#queue();
      const ms = pause === 'short' ? this.r.int(1, 100) : pause === 'medium' ? this.r.int(100, Math.floor(this.w.idleTimeoutMs / 2)) : this.#nearIdle();
      (this.#nextTimer ??= this.w.loop.timer(0, (_ev, _which, c) => c.#queue(), this)).add(ms);
    }
  }

  #onEof(): void {
    if (this.#eofAt < 0) this.#eofAt = this.w.sim.now();
    this.#readEv!.del();
    this.#writeEv!.del();
    this.#writeTimer?.del();
    this.#readTimer?.del();
    this.#nextTimer?.del(); // nothing more is sent after the server's FIN
    if (this.#closeAnswered || (this.#shut && this.answered === this.requests.length)) {
      if (this.#bodyLeft >= 0 || this.#input.length > 0) return this.#violation(`EOF in the middle of a response`);
      return this.#finish('done');
    }
    // The server closed without saying so: its idle sweep, if it had read everything this client
    // wrote (else an RST is on its way: the keep-alive race). Wait until no RST can still come.
    const settle = Math.max(0, this.#lastWrite + this.w.settleMs - this.w.sim.now());
    this.w.loop.timer(0, (_ev, _which, c) => c.#settled(), this).add(settle);
  }

  #settled(): void {
    if (this.ended) return;
    const n = net.read(this.fd, readBuffer, 0, 1);
    if (n === net.ECONNRESET) return this.#finish('reset');
    if (n !== 0) return this.#violation(`read after EOF gave ${n}`);
    const quiet = this.#eofAt - this.#lastWrite;
    if (quiet < this.w.idleTimeoutMs) {
      this.#violation(
        `closed by the server without Connection: close ${quiet.toFixed(3)} ms after the client's last write (idle timeout ${this.w.idleTimeoutMs} ms), ` +
          `${this.sent - this.answered} of ${this.sent} sent request(s) unanswered (sending ${this.send}, reading ${this.read}, buffer ${this.#pending.length - this.#at} unsent)`,
      );
    }
    this.#finish('idle-closed');
  }

  #error(n: number, what: string): void {
    if (n === net.ECONNRESET) return this.#finish('reset');
    this.#violation(`${what} gave ${n}`);
  }

  #abandon(): void {
    if (this.ended || this.#eofAt >= 0) return; // after EOF, #settled() decides
    this.#finish(this.answered < this.sent ? 'abandoned' : this.#eofAt >= 0 ? 'idle-closed' : 'done');
  }

  #violation(what: string): void {
    this.w.violations.push(`client ${this.id} (fd ${this.fd}, at ${this.w.sim.now().toFixed(3)} ms): ${what}`);
    this.#finish('abandoned');
  }

  #finish(outcome: Outcome): void {
    if (this.ended) return;
    this.ended = true;
    this.outcome = outcome;
    this.#readEv?.del();
    this.#writeEv?.del();
    this.#writeTimer?.del();
    this.#readTimer?.del();
    this.#endTimer?.del();
    this.#nextTimer?.del();
    net.close(this.fd);
    this.w.finished(this);
  }

  /** The end of the world: a client still waiting. */
  stuck(): void {
    if (this.ended) return;
    this.w.violations.push(
      `client ${this.id} still waiting at the end: ${this.answered} of ${this.sent} sent (${this.requests.length} planned) answered, ` +
        `sending ${this.send}, reading ${this.read}, ending ${this.end}`,
    );
    this.#finish('abandoned');
  }
}

// ---------------------------------------------------------------------------------------------

const EPOCH = Date.UTC(2025, 0, 1);

/** Runs one seed; throws a SeedFailure (with the replay line) if anything was violated, else returns the counts. */
export function runSeed(seed: number, options: SeedOptions = {}): SeedResult {
  const clients = options.clients ?? 1000;
  const faults = options.faults ?? faultsFor(seed);
  const { Connections } = options.connectionsModule ?? examples;
  const r = new Prng(seed);
  const idleTimeoutMs = r.pick([2000, 3000, 4000]);
  const spreadMs = r.pick([2000, 10_000, 30_000]);
  // The server stamps its answers with Date.now() (a Date header): it follows the virtual clock, so
  // that the bytes, and the digest, are the seed's alone.
  const realNow = Date.now;
  try {
    return Simulation.run({ seed, faults }, (sim) => {
      Date.now = () => EPOCH + Math.floor(sim.now());
      const loop = new EventLoop();
      const violations: string[] = [];
      const listener = net.listen('127.0.0.1', 0);
      const port = net.localPort(listener);
      const served = new Map<string, number>();
      const connections = new Connections(loop, {
        idleTimeoutMs,
        onClosed: () => acceptor.release(),
        respond: (target, keepAlive) => {
          served.set(target, (served.get(target) ?? 0) + 1);
          if (served.get(target) === 2) violations.push(`the server answered ${target} twice`);
          return respond(target, keepAlive);
        },
      });
      const acceptor = new Acceptor(loop, listener, (fd) => connections.add(fd), { priority: -1, batch: 1, maxConnections: 1024, yieldNearCap: false });

      const all: Client[] = [];
      let finished = 0;
      let lastFinish = 0;
      const world: World = {
        loop,
        sim,
        port,
        idleTimeoutMs,
        settleMs: 2 * maxLatency(faults) + 1,
        violations,
        finished: () => {
          finished++;
          lastFinish = sim.now();
        },
      };
      for (let i = 0; i < clients; i++) {
        const c = new Client(i, world, seed);
        all.push(c);
        loop.timer(0, () => c.start()).add(r.int(0, spreadMs));
      }

      // Once every client is done, the server's side must empty by itself: each connection ends
      // on its client's FIN or RST, or at the idle timeout. The deadline is past the latest of those.
      const deadline = spreadMs + 60 * idleTimeoutMs;
      let tornDown = false;
      let afterTeardown = 0;
      const teardown = () => {
        tornDown = true;
        monitor.del();
        for (const c of all) c.stuck();
        if (connections.size !== 0) violations.push(`the Connections object still holds ${connections.size} connection(s) after its clients are gone`);
        if (acceptor.connections !== 0) violations.push(`the Acceptor still counts ${acceptor.connections} connection(s)`);
        const open = sim.openFds().filter((fd) => fd !== listener);
        if (open.length > 0) violations.push(`virtual fds left open besides the listener: ${open.join(' ')}`);
        if (connections.size === 0) connections.drain(() => {});
        else connections.closeAll();
        acceptor.close();
        net.close(listener);
      };
      const monitor = loop.timer(EV.PERSIST, () => {
        const now = sim.now();
        if (finished === clients && (connections.size === 0 || now > lastFinish + 3 * idleTimeoutMs)) teardown();
        else if (now > deadline) teardown();
      }).add(100);
      // Whatever teardown leaves registered would keep run() going: a hook (which does not keep a
      // loop alive itself) stops it after a while, and says so.
      let leftRunning = false;
      const fuse = loop.prepare(() => {
        if (tornDown && ++afterTeardown > 10_000) {
          leftRunning = true;
          loop.stop();
        }
      });
      try {
        loop.run();
      } finally {
        fuse.del();
        loop.close();
      }
      if (leftRunning) violations.push('the loop did not return from run() after teardown: something is still registered');
      if (sim.openFds().length > 0) violations.push(`virtual fds open after teardown: ${sim.openFds().join(' ')}`);

      const result: SeedResult = {
        seed,
        faults,
        idleTimeoutMs,
        clients,
        requests: 0,
        answered: 0,
        owed: 0,
        owedAnswered: 0,
        resets: 0,
        lostToReset: 0,
        abandoned: 0,
        lostToAbandon: 0,
        idleClosed: 0,
        lostToIdle: 0,
        idleLossByRead: { eager: 0, slow: 0, stall: 0 },
        done: 0,
        served: connections.served,
        closedIdle: connections.closedIdle,
        virtualMs: sim.now(),
        faultsStruck: sim.stats().faults,
        digest: sim.digest(),
        violations,
      };
      for (const c of all) {
        result.requests += c.sent;
        result.answered += c.answered;
        const lost = c.sent - c.answered;
        if (c.outcome === 'reset') {
          result.resets++;
          result.lostToReset += lost;
        } else if (c.outcome === 'abandoned') {
          result.abandoned++;
          result.lostToAbandon += lost;
        } else if (c.outcome === 'idle-closed') {
          result.idleClosed++;
          result.lostToIdle += lost;
          if (lost > 0) result.idleLossByRead[c.read]++;
        } else {
          result.done++;
          result.owed += c.sent;
          result.owedAnswered += c.answered;
          if (lost !== 0) violations.push(`client ${c.id} ended done with ${lost} request(s) unanswered`);
        }
      }
      if (violations.length > 0) throw new SeedFailure(result);
      return result;
    });
  } finally {
    Date.now = realNow;
  }
}

export interface IdleResult {
  idleTimeoutMs: number;
  tickMs: number;
  /** Virtual ms: the client's request written, its answer read, and the server's close (EOF) read. */
  wroteAt: number;
  answeredAt: number;
  closedAt: number;
  closedIdle: number;
  digest: string;
  violations: string[];
}

/**
 * One keep-alive connection that asks once and then says nothing: the server's idle sweep must
 * close it `idleTimeoutMs` (to a tick) after it read the request. No faults, no latency.
 */
export function runIdle(idleTimeoutMs: number, seed = 1, connectionsModule: ConnectionsModule = examples): IdleResult {
  const realNow = Date.now;
  try {
    return Simulation.run({ seed }, (sim) => {
      Date.now = () => EPOCH + Math.floor(sim.now());
      const loop = new EventLoop();
      const violations: string[] = [];
      const listener = net.listen('127.0.0.1', 0);
      const connections = new connectionsModule.Connections(loop, { idleTimeoutMs, onClosed: () => acceptor.release() });
      const acceptor = new Acceptor(loop, listener, (fd) => connections.add(fd), { priority: -1, batch: 1, yieldNearCap: false });
      const fd = net.connect('127.0.0.1', net.localPort(listener));
      let wroteAt = -1;
      let answeredAt = -1;
      let closedAt = -1;
      let text = '';
      loop.event(fd, EV.WRITE, (ev) => {
        ev.del();
        if (net.connectResult(fd) !== 0) violations.push('connect failed');
        const request = Buffer.from('GET / HTTP/1.1\r\nHost: sim\r\n\r\n', 'latin1');
        if (net.write(fd, request) !== request.length) violations.push('the request did not go in one write');
        wroteAt = sim.now();
        loop.event(fd, EV.READ | EV.PERSIST, (rev) => {
          const n = net.read(fd, readBuffer);
          if (n === net.EAGAIN) return;
          if (n > 0) {
            text += readBuffer.toString('latin1', 0, n);
            if (text.endsWith('hello\n')) answeredAt = sim.now();
            return;
          }
          if (n < 0) violations.push(`read gave ${n}`);
          closedAt = sim.now();
          rev.del();
          net.close(fd);
          if (connections.size !== 0) violations.push(`the Connections object still holds ${connections.size} connection(s)`);
          if (acceptor.connections !== 0) violations.push(`the Acceptor still counts ${acceptor.connections}`);
          connections.drain(() => {});
          acceptor.close();
          net.close(listener);
        }).add();
      }).add();
      loop.run(); // returns once nothing is registered: the sweep's timer included
      loop.close();
      if (answeredAt < 0) violations.push('no answer');
      if (sim.openFds().length > 0) violations.push(`virtual fds left open: ${sim.openFds().join(' ')}`);
      return { idleTimeoutMs, tickMs: connections.tickMs, wroteAt, answeredAt, closedAt, closedIdle: connections.closedIdle, digest: sim.digest(), violations };
    });
  } finally {
    Date.now = realNow;
  }
}
