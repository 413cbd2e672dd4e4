// A worker's HTTP connections: read, answer every complete request head with a pre-built
// response, keep-alive and pipelining, back-pressure when a client does not read, idle
// timeouts, and a graceful drain for stopping.
//
// Idle timeouts use one sweeping PERSIST timer rather than a timer per connection: a request
// then costs one integer store (`lastTick = tick`) instead of rescheduling a timer (a clock read
// and a trip into the timer heap), and a timeout is only as precise as it needs to be (between
// idleTimeout and idleTimeout + one tick), as nginx's keepalive_timeout is.
import { EV, type Event, type EventLoop } from 'evpoll';
import * as net from 'evpoll/net';
import { head, refreshDate, responses, scanHead } from './http.js';

/**
 * Told of each request (the scoreboard), with its method buf[ms, me) and target buf[ts, te)
 * (empty for one refused before its request line was read): one answered at once (the hello
 * page, a refusal) by done(); one whose page is made (respond(), which may block) by start()
 * as it begins and end() as its answer is made.
 */
export interface RequestObserver {
  done(buf: Uint8Array, ms: number, me: number, ts: number, te: number): void;
  start(buf: Uint8Array, ms: number, me: number, ts: number, te: number): void;
  end(): void;
}


// One input and one output buffer per worker: a connection borrows them for one callback; what
// must outlive it (a head split across reads, bytes the socket would not take) is copied out.
// Both are FixedBuffers (registered memory: a read or write hands the native side an ArrayBuffer
// and numbers, no Uint8Array to look into), seen as Buffers for parsing and copying.
const inputIo = new net.FixedBuffer(64 * 1024);
const outputIo = new net.FixedBuffer(64 * 1024);
const input = Buffer.from(inputIo.bytes.buffer, inputIo.bytes.byteOffset, inputIo.size);
const output = Buffer.from(outputIo.bytes.buffer, outputIo.bytes.byteOffset, outputIo.size);
let outputLength = 0;

class Connection {
  readonly readable: Event<Connection>;
  writable: Event<Connection> | null = null;
  /** Input received but not yet answered: a split head, or requests held back by back-pressure. */
  carry: Buffer | null = null;
  /** Output the socket did not take yet (EAGAIN); reading pauses until it is gone. */
  unsent: Buffer | null = null;
  unsentAt = 0;
  /** Body bytes still to skip (Content-Length of the last request). */
  skip = 0;
  /** The sweep tick of the last read; the idle timeout counts from it. */
  lastTick: number;
  /** The last answer ends the connection: nothing more is read once it is sent. */
  closing = false;
  /** After that answer, read and discard until the client closes (or a tick passes), so that closing with unread input does not reset the connection before the client has read the answer. */
  lingerAfter = false;
  lingering = false;
  closed = false;
  /** Accepted, nothing read from it yet (its first request not here). */
  fresh = true;

  constructor(readonly owner: Connections, readonly fd: number, tick: number) {
    this.lastTick = tick;
    this.readable = owner.loop.event(fd, EV.READ, onReadable, this).add();
  }
}

function onReadable(_ev: Event<Connection>, _which: number, c: Connection): void {
  c.owner._read(c);
}

function onWritable(_ev: Event<Connection>, _which: number, c: Connection): void {
  c.owner._write(c);
}

export interface ConnectionsOptions {
  /** Close a connection that has sent nothing for this long (ms). */
  idleTimeoutMs: number;
  /** Told once per connection closed, refused ones included (the Acceptor's release(), so that its count of open connections stays right). */
  onClosed?: () => void;
  /** Told why, each time the loop would not watch a connection handed to add(). */
  onRefused?: (err: Error) => void;
  /**
   * Answers a request whose target is not `/` (the busy and status pages): its answer, or null
   * for the hello page. May block (the busy page does: that is its point). `keepAlive` and
   * `keepAlive10` say which Connection header the answer must carry.
   */
  respond?: (target: string, keepAlive: boolean, keepAlive10: boolean) => Buffer | null;
  observer?: RequestObserver;
  /** Told each time the number of fresh connections (accepted, nothing read yet) changes. */
  onFresh?: (fresh: number) => void;
  /** FPM's pm.max_requests: once this many requests are answered, onMaxRequests runs (once). 0: no limit. */
  maxRequests?: number;
  onMaxRequests?: () => void;
}

export class Connections {
  /** Requests answered (errors included). */
  served = 0;
  /**
   * Connections the sweep closed while idle, over the worker's life (the idle timeout, or quiet
   * for a tick during a graceful stop). Each close can cross a client's next request on the
   * wire, which a careful client then sends again; a graceful stop reports the count.
   */
  closedIdle = 0;
  /** Connections closed at once because the loop would not watch them. */
  refused = 0;
  readonly loop: EventLoop;
  readonly tickMs: number;
  #idleTicks: number;
  #tick = 0;
  #all = new Set<Connection>();
  #clock: Event<Connections>;
  #onDrained: (() => void) | null = null;
  #onClosed: () => void;
  #onRefused: (err: Error) => void;
  #respond: ConnectionsOptions['respond'];
  #observer: RequestObserver | undefined;
  #maxRequests: number;
  #onMaxRequests: () => void;
  #onFresh: (fresh: number) => void;
  /** Connections accepted that nothing was read from yet. */
  fresh = 0;

  constructor(loop: EventLoop, options: ConnectionsOptions) {
    this.loop = loop;
    this.#respond = options.respond;
    this.#observer = options.observer;
    this.#maxRequests = options.maxRequests ?? 0;
    this.#onMaxRequests = options.onMaxRequests ?? (() => {});
    this.#onFresh = options.onFresh ?? (() => {});
    this.#onClosed = options.onClosed ?? (() => {});
    this.#onRefused = options.onRefused ?? (() => {});
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(options.idleTimeoutMs / 4)));
    this.#idleTicks = Math.ceil(options.idleTimeoutMs / this.tickMs);
    this.#clock = loop.timer(EV.PERSIST, (_ev, _which, self) => self.#sweep(), this).add(this.tickMs);
    refreshDate(Date.now());
  }

  get size(): number {
    return this.#all.size;
  }

  /**
   * Takes over an accepted, nonblocking socket. If the loop will not watch it (the kernel out
   * of epoll watches, say), it is closed, counted in `refused` and told to onRefused, not
   * thrown: the exception would leave the loop's run() and end the worker with every other
   * connection. (The Acceptor already refuses an fd beyond select's FD_SETSIZE.)
   */
  add(fd: number): void {
    net.setNoDelay(fd); // each answer is one write: nothing to gain from Nagle, a delayed-ACK stall to lose
    let c: Connection;
    try {
      c = new Connection(this, fd, this.#tick);
    } catch (e) {
      net.close(fd);
      this.refused++;
      this.#onClosed();
      this.#onRefused(e as Error);
      return;
    }
    this.#all.add(c);
    this.fresh++;
    // Read at once: a client sends its request right after connecting, so it is usually here
    // already, and is served now rather than after another wait. That wait is where a worker
    // would take a second connection first, which then waits behind this one if it blocks (a
    // busy page: FPM's child reads its request before anything else). EAGAIN costs one read.
    // Not from inside another connection's handling (its answer may still be in the shared
    // output): there the loop's READ event serves it next.
    if (outputLength === 0) this._read(c);
    if (c.fresh) this.#onFresh(this.fresh);
  }

  /** The connection's first bytes (or its end) came: it is no longer fresh. */
  #unfresh(c: Connection): void {
    c.fresh = false;
    this.fresh--;
    this.#onFresh(this.fresh);
  }

  /**
   * Graceful stop: every later answer says `Connection: close`, connections quiet for a tick
   * are closed, and `onDrained` runs once none is left.
   */
  drain(onDrained: () => void): void {
    this.#onDrained = onDrained;
    if (this.#all.size === 0) this.#drained();
  }

  /** Closes every connection now and stops the clock (immediate stop, or the graceful deadline); returns how many were open. */
  closeAll(): number {
    const open = this.#all.size;
    this.#onDrained = null; // cut off, not drained: the caller says what happens next
    for (const c of this.#all) this.#close(c);
    this.#clock.del();
    return open;
  }

  /** @internal */
  _read(c: Connection): void {
    if (c.lingering) return this.#discard(c);
    const carried = c.carry === null ? 0 : c.carry.length;
    if (carried > 0) c.carry!.copy(input, 0);
    const n = inputIo.read(c.fd, carried, input.length - carried);
    if (c.fresh && n !== net.EAGAIN) this.#unfresh(c);
    if (n > 0) {
      c.carry = null;
      c.lastTick = this.#tick;
      this.#serve(c, input, 0, carried + n);
    } else if (n !== net.EAGAIN) {
      this.#close(c); // EOF or a reset: an unfinished request dies with it
    }
  }

  /** @internal */
  _write(c: Connection): void {
    const unsent = c.unsent!;
    const n = net.write(c.fd, unsent, c.unsentAt);
    if (n === net.EAGAIN) return;
    if (n < 0) return this.#close(c);
    c.unsentAt += n;
    if (c.unsentAt < unsent.length) return;
    c.unsent = null;
    c.unsentAt = 0;
    c.writable!.del();
    if (c.closing) return this.#finish(c);
    c.readable.add();
    const carry = c.carry;
    if (carry !== null) {
      c.carry = null;
      this.#serve(c, carry, 0, carry.length); // requests held back while the socket was full
    }
  }

  /** Answers every complete request head in buf[p, end), in order, in one write. */
  #serve(c: Connection, buf: Buffer, p: number, end: number): void {
    const observer = this.#observer;
    while (p < end) {
      if (c.skip > 0) {
        const k = Math.min(c.skip, end - p);
        c.skip -= k;
        p += k;
        continue;
      }
      const next = scanHead(buf, p, end);
      if (next < 0) break;
      // Re-read per request: the request before may have reached max-requests (and started the drain).
      const stopping = this.#onDrained !== null;
      let answer: Buffer;
      let ends = true;
      let refused = false;
      /** A page was made: its request was begun with observer.start() and must be ended. */
      let made = false;
      if (head.status !== 200) {
        observer?.done(buf, 0, 0, 0, 0);
        answer = responses[head.status as 400 | 431 | 501 | 505].bytes;
        refused = true;
      } else {
        const keepAlive = head.keepAlive && !stopping;
        let page: Buffer | null = null;
        if (this.#respond !== undefined && head.targetEnd - head.targetStart !== 1) {
          observer?.start(buf, head.methodStart, head.methodEnd, head.targetStart, head.targetEnd);
          made = true;
          page = this.#respond(buf.toString('latin1', head.targetStart, head.targetEnd), keepAlive, head.keepAlive10);
        } else {
          observer?.done(buf, head.methodStart, head.methodEnd, head.targetStart, head.targetEnd);
        }
        if (page !== null) {
          answer = page;
          ends = !keepAlive;
        } else if (keepAlive) {
          answer = head.keepAlive10 ? responses.helloKeepAlive10.bytes : responses.hello.bytes;
          ends = false;
        } else {
          answer = responses.helloClose.bytes;
        }
      }
      if (outputLength + answer.length > output.length) {
        // The shared output is full, or this answer is larger than all of it. Once a request is
        // answered it is not answered again (a page may have blocked to make it): what the
        // socket will not take now waits in c.unsent, and the rest of the input in c.carry.
        const flushed = this.#flush(c);
        if (c.closed) return this.#served(made ? observer : undefined);
        if (!flushed || answer.length > output.length) {
          this.#served(made ? observer : undefined);
          this.#queue(c, answer);
          if (ends) {
            c.closing = true;
            c.lingerAfter = refused || next < end;
          } else {
            c.skip = head.bodyLength;
            if (next < end) c.carry = Buffer.from(buf.subarray(next, end));
          }
          return;
        }
      }
      output.set(answer, outputLength);
      outputLength += answer.length;
      this.#served(made ? observer : undefined);
      if (ends) {
        c.closing = true;
        // A refused client may still be sending what was refused; a pipelining one, more requests.
        c.lingerAfter = refused || next < end;
        break;
      }
      c.skip = head.bodyLength;
      p = next;
    }
    if (!c.closing && p < end) c.carry = Buffer.from(buf.subarray(p, end)); // a head split across reads
    if (this.#flush(c) && c.closing) this.#finish(c);
  }

  /** Appends `answer` to what waits for the socket, watching WRITE (and not READ) until it is gone. */
  #queue(c: Connection, answer: Buffer): void {
    if (c.unsent !== null) {
      c.unsent = Buffer.concat([c.unsent.subarray(c.unsentAt), answer]);
      c.unsentAt = 0;
      return;
    }
    c.unsent = Buffer.from(answer); // a copy: the pre-built answers' Date is rewritten in place each second
    c.unsentAt = 0;
    c.readable.del();
    (c.writable ??= this.loop.event(c.fd, EV.WRITE, onWritable, c)).add();
  }

  #served(observer: RequestObserver | undefined): void {
    this.served++;
    observer?.end();
    if (this.served === this.#maxRequests) this.#onMaxRequests();
  }

  /** Writes the shared output; true if all of it went. Otherwise it is kept and WRITE watched (or the connection closed). */
  #flush(c: Connection): boolean {
    if (outputLength === 0) return true;
    const n = outputIo.write(c.fd, 0, outputLength);
    if (n === outputLength) {
      outputLength = 0;
      return true;
    }
    if (n < 0 && n !== net.EAGAIN) {
      outputLength = 0;
      this.#close(c);
      return false;
    }
    c.unsent = Buffer.from(output.subarray(n > 0 ? n : 0, outputLength));
    c.unsentAt = 0;
    outputLength = 0;
    c.readable.del(); // level-triggered READ would fire on and on while we refuse to read
    (c.writable ??= this.loop.event(c.fd, EV.WRITE, onWritable, c)).add();
    return false;
  }

  /** The connection's last answer is sent. */
  #finish(c: Connection): void {
    if (!c.lingerAfter) return this.#close(c);
    c.lingering = true;
    c.lastTick = this.#tick;
    this.#discard(c);
  }

  #discard(c: Connection): void {
    for (;;) {
      const n = inputIo.read(c.fd);
      if (n === net.EAGAIN) return;
      if (n <= 0) return this.#close(c);
    }
  }

  #close(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    if (c.fresh) this.#unfresh(c);
    c.readable.del();
    c.writable?.del();
    net.close(c.fd);
    this.#all.delete(c);
    this.#onClosed();
    if (this.#onDrained !== null && this.#all.size === 0) this.#drained();
  }

  #drained(): void {
    this.#clock.del();
    const done = this.#onDrained!;
    done();
  }

  /** Nothing half-received, nothing unsent: closing loses no request (unless one is on the wire right now). */
  #betweenRequests(c: Connection): boolean {
    return c.carry === null && c.skip === 0 && c.unsent === null;
  }

  #sweep(): void {
    const tick = ++this.#tick;
    refreshDate(Date.now());
    const stopping = this.#onDrained !== null;
    for (const c of this.#all) {
      // `silent` ticks since the last read: >= 2 means quiet for at least one whole tick.
      const silent = tick - c.lastTick;
      if (silent >= 2 && c.lingering) {
        this.#close(c);
      } else if (silent > this.#idleTicks || (silent >= 2 && stopping && this.#betweenRequests(c))) {
        this.closedIdle++;
        this.#close(c);
      }
    }
  }
}
