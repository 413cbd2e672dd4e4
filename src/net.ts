// evpoll/net: thin nonblocking fd helpers to pair with the loop. read/write/close and the
// urgent-data pair return numbers (bytes, 0 for EOF, or a negative errno such as EAGAIN) rather
// than throw, so a callback draining a nonblocking fd never pays for an exception. Creating fds
// throws Node's SystemError shape on refusal.
import { constants } from 'node:os';
import { isIP } from 'node:net';
import { addon } from './native.js';
import { invalidArg, systemError } from './errors.js';
import { VIRTUAL_FD_BASE, simulated } from './virtual.js';

// While a Simulation is installed (evpoll/sim), the creators make virtual fds and every call on
// a virtual fd (a number from VIRTUAL_FD_BASE up) goes to it; real fds keep working as before.
// A virtual fd with no simulation installed is simply not open: the kernel answers EBADF.

// The errno names, negated: the numbers read/write/accept/close return (`n === EAGAIN`). Taken
// from os.constants.errno, so they are this platform's values, not Linux's written out by hand.

/** Nothing to read, or no room to write, yet (a nonblocking fd); accept: no connection pending. */
export const EAGAIN: number = -constants.errno.EAGAIN;
/** The same number as EAGAIN on Linux. */
export const EWOULDBLOCK: number = -constants.errno.EWOULDBLOCK;
/** A signal interrupted the call before it did anything; try again. */
export const EINTR: number = -constants.errno.EINTR;
/** The fd is not open (or not open for this). */
export const EBADF: number = -constants.errno.EBADF;
/** An argument the kernel refuses: accept on a socket that is not listening; readUrgent with no urgent byte pending. */
export const EINVAL: number = -constants.errno.EINVAL;
/** The process is out of fds (RLIMIT_NOFILE): accept cannot take a connection. */
export const EMFILE: number = -constants.errno.EMFILE;
/** The system is out of fds: accept cannot take a connection. */
export const ENFILE: number = -constants.errno.ENFILE;
/** The kernel is out of memory. */
export const ENOMEM: number = -constants.errno.ENOMEM;
/** The kernel is out of socket buffers. */
export const ENOBUFS: number = -constants.errno.ENOBUFS;
/** A write to a pipe or socket whose reader is gone (no SIGPIPE: Node ignores it). */
export const EPIPE: number = -constants.errno.EPIPE;
/** The peer reset the connection (it closed with unread data, or crashed). */
export const ECONNRESET: number = -constants.errno.ECONNRESET;
/** A connection aborted while pending; accept skips these. */
export const ECONNABORTED: number = -constants.errno.ECONNABORTED;
/** A nonblocking connect has begun: the socket becomes writable when it is done. */
export const EINPROGRESS: number = -constants.errno.EINPROGRESS;
/** connect: nothing listens on that port (the peer answered with a reset). */
export const ECONNREFUSED: number = -constants.errno.ECONNREFUSED;
/** connect: the peer never answered (the kernel gave up retrying its SYN). */
export const ETIMEDOUT: number = -constants.errno.ETIMEDOUT;
/** The address is taken (listen throws it as a SystemError, code 'EADDRINUSE'). */
export const EADDRINUSE: number = -constants.errno.EADDRINUSE;
/** No such child (waitid). */
export const ECHILD: number = -constants.errno.ECHILD;
/** readUrgent: the connection closed before the urgent byte it announced arrived; also a socket not connected (connectResult, shutdown). */
export const ENOTCONN: number = -constants.errno.ENOTCONN;

interface FdOps {
  pipe(): [number, number] | number;
  socketpair(): [number, number] | number;
  read(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  write(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  close(fd: number): number;
  listen(host: string, port: number, backlog: number, reusePort: boolean): number;
  accept(fd: number, out: Int32Array, max: number): number;
  connect(host: string, port: number): number;
  connectResult(fd: number): number;
  shutdown(fd: number): number;
  localPort(fd: number): number;
  listenQueue(fd: number, out: Int32Array): number;
  setNoDelay(fd: number, on: boolean): number;
  sendUrgent(fd: number, byte: number): number;
  readUrgent(fd: number): number;
  fixedBuffer(size: number): ArrayBuffer | number;
  fixedRead: FixedTransfer;
  fixedWrite: FixedTransfer;
}
/** A FixedBuffer's native read or write: all four arguments always given. */
type FixedTransfer = (memory: ArrayBuffer, fd: number, offset: number, length: number) => number;
const ops = addon as unknown as FdOps;
const { fixedRead, fixedWrite } = ops;

function checkFd(fd: unknown): number {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) throw invalidArg(`fd must be an integer >= 0, got ${String(fd)}`);
  return fd;
}

/** Refuses what the native read/write would (a TypeError or RangeError without a code), as ERR_EVPOLL_INVALID_ARG. */
function checkRange(buffer: unknown, offset: unknown, length: unknown): void {
  if (!(buffer instanceof Uint8Array)) throw invalidArg('buffer must be a Uint8Array or Buffer');
  if (offset !== undefined && (!Number.isInteger(offset) || (offset as number) < 0 || (offset as number) > buffer.length)) {
    throw invalidArg(`offset ${String(offset)} is outside the buffer (an integer from 0 to ${buffer.length})`);
  }
  const start = (offset as number | undefined) ?? 0;
  if (length !== undefined && (!Number.isInteger(length) || (length as number) < 0 || start + (length as number) > buffer.length)) {
    throw invalidArg(`length ${String(length)} from offset ${start} is outside the buffer (an integer from 0 to ${buffer.length - start})`);
  }
}

function pairOrThrow(r: [number, number] | number, syscall: string): [number, number] {
  if (typeof r === 'number') throw systemError(r, syscall);
  return r;
}

/** A nonblocking, close-on-exec pipe: [readEnd, writeEnd]. */
export function pipe(): [number, number] {
  return pairOrThrow(simulated ? simulated.net.pipe() : ops.pipe(), 'pipe2');
}

/** A connected pair of nonblocking, close-on-exec AF_UNIX stream sockets. */
export function socketpair(): [number, number] {
  return pairOrThrow(simulated ? simulated.net.socketpair() : ops.socketpair(), 'socketpair');
}

/** Reads into `buffer`: bytes read, 0 at EOF, or a negative errno ({@link EAGAIN}: nothing yet). */
export function read(fd: number, buffer: Uint8Array, offset?: number, length?: number): number {
  checkRange(buffer, offset, length);
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.read(fd, buffer, offset ?? 0, length ?? buffer.length - (offset ?? 0));
  // Trailing undefineds cost the native side a failed number conversion each: leave them off.
  if (offset === undefined && length === undefined) return ops.read(checkFd(fd), buffer);
  return ops.read(checkFd(fd), buffer, offset ?? 0, length);
}

/** Writes from `buffer`: bytes written, or a negative errno ({@link EAGAIN}: the peer is full). */
export function write(fd: number, buffer: Uint8Array, offset?: number, length?: number): number {
  checkRange(buffer, offset, length);
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.write(fd, buffer, offset ?? 0, length ?? buffer.length - (offset ?? 0));
  if (offset === undefined && length === undefined) return ops.write(checkFd(fd), buffer);
  return ops.write(checkFd(fd), buffer, offset ?? 0, length);
}

/** Closes `fd`: 0 or a negative errno. Delete its events first (FPM does). */
export function close(fd: number): number {
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.close(fd);
  return ops.close(checkFd(fd));
}

export interface ListenOptions {
  backlog?: number;
  /** SO_REUSEPORT: several processes bind the same port, the kernel spreads connections. */
  reusePort?: boolean;
}

/** A nonblocking, close-on-exec TCP listening socket with SO_REUSEADDR; port 0 picks a free one. */
export function listen(host: string, port: number, options: ListenOptions = {}): number {
  if (typeof host !== 'string') throw invalidArg('host must be an IPv4 or IPv6 address string');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArg(`port must be an integer 0..65535, got ${String(port)}`);
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
  const backlog = options.backlog ?? 511;
  if (!Number.isInteger(backlog) || backlog < 0) throw invalidArg(`backlog must be an integer >= 0, got ${String(backlog)}`);
  // A virtual listener's host must still be an address literal, as a real one's must.
  const fd = !simulated ? ops.listen(host, port, backlog, options.reusePort === true) : isIP(host) === 0 ? EINVAL : simulated.net.listen(host, port, backlog);
  if (fd === EINVAL) throw invalidArg(`host must be an IPv4 or IPv6 address literal, got '${host}'`);
  if (fd < 0) throw systemError(fd, 'listen');
  return fd;
}

/** The port a socket is bound to. */
export function localPort(fd: number): number {
  const port = fd >= VIRTUAL_FD_BASE && simulated ? simulated.net.localPort(fd) : ops.localPort(checkFd(fd));
  if (port < 0) throw systemError(port, 'getsockname');
  return port;
}

const queueInfo = new Int32Array(2);

/** What {@link listenQueue} reports. */
export interface ListenQueue {
  /** Connections completed by the kernel and waiting for accept() (FPM's `listen queue`). */
  length: number;
  /** How many may wait: the backlog given to listen(), capped at net.core.somaxconn (FPM's `listen queue len`). */
  limit: number;
}

/**
 * The accept queue of a listening TCP socket, from TCP_INFO (Linux reports the waiting
 * connections as tcpi_unacked and the queue's limit as tcpi_sacked on a listener): one
 * getsockopt(2). Throws a SystemError: EINVAL for a socket that is not listening, ENOTSOCK,
 * ENOTSUP (a socket that is not TCP; Node names EOPNOTSUPP so), EBADF.
 */
export function listenQueue(fd: number): ListenQueue {
  const r = fd >= VIRTUAL_FD_BASE && simulated ? simulated.net.listenQueue(fd, queueInfo) : ops.listenQueue(checkFd(fd), queueInfo);
  if (r < 0) throw systemError(r, 'getsockopt');
  return { length: queueInfo[0], limit: queueInfo[1] };
}

/** TCP_NODELAY on or off: 0 or a negative errno. */
export function setNoDelay(fd: number, on = true): number {
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.setNoDelay(fd);
  return ops.setNoDelay(checkFd(fd), on);
}

/**
 * Sends one byte of TCP urgent (out-of-band) data: send() with MSG_OOB. The peer's loop sees
 * `EV.PRI` on the connection until it reads the byte with {@link readUrgent}; the byte is
 * not in the normal stream (unless the peer set SO_OOBINLINE). TCP keeps one urgent byte a
 * connection: one sent before the peer has read the last replaces it. Returns 1, or a negative
 * errno: {@link EAGAIN} (the send buffer is full), {@link EPIPE} (the connection is gone; no
 * SIGPIPE), EOPNOTSUPP (a socket without urgent data), ENOTSOCK.
 */
export function sendUrgent(fd: number, byte: number): number {
  if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw invalidArg(`byte must be an integer 0..255, got ${String(byte)}`);
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.sendUrgent(fd);
  return ops.sendUrgent(checkFd(fd), byte);
}

/**
 * Reads the urgent byte the peer sent with {@link sendUrgent} (recv() with MSG_OOB), which
 * clears the connection's `EV.PRI`: the byte, 0..255, or a negative errno — {@link EINVAL}
 * when none is pending (none sent, already read, or SO_OOBINLINE), {@link EAGAIN} when the peer's
 * urgent mark has arrived but not yet its byte, {@link ENOTCONN} when the connection closed
 * before it did.
 */
export function readUrgent(fd: number): number {
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.readUrgent(fd);
  return ops.readUrgent(checkFd(fd));
}

let acceptBuffer = new Int32Array(128);

/**
 * Accepts up to `max` pending connections (nonblocking, close-on-exec): their fds, possibly
 * none. A negative number instead is the errno that stopped the first accept: {@link EAGAIN}
 * (none pending), {@link EMFILE} / {@link ENFILE} (out of fds: stop watching the listener for a
 * while, or the loop spins). {@link ECONNABORTED} is skipped.
 */
export function accept(fd: number, max = 100): number[] | number {
  if (!Number.isInteger(max) || max < 1) throw invalidArg(`max must be an integer >= 1, got ${String(max)}`);
  if (acceptBuffer.length < max) acceptBuffer = new Int32Array(max);
  const n = fd >= VIRTUAL_FD_BASE && simulated ? simulated.net.accept(fd, acceptBuffer, max) : ops.accept(checkFd(fd), acceptBuffer, max);
  if (n < 0) return n;
  return Array.from(acceptBuffer.subarray(0, n));
}

/**
 * A nonblocking, close-on-exec TCP socket with a connection to `host` (an IPv4 or IPv6 literal,
 * as for {@link listen}) and `port` (1..65535) begun: its fd. The connection is made in the
 * background: watch the fd for `EV.WRITE`, which the loop reports when the attempt is over, then
 * ask {@link connectResult} how it went. A connection made at once also returns the fd.
 *
 * A refusal the kernel gives at once closes the socket and throws a SystemError with syscall
 * 'connect' (ENETUNREACH: no route, or a broadcast or multicast address; EMFILE). On Linux a
 * loopback port with no listener is not one of them: connect() answers EINPROGRESS, so the fd is
 * returned, and the refusal (ECONNREFUSED) comes from connectResult, with the fd reporting
 * WRITE readiness (usually already when connect returns: the reset is handled before it does).
 * A host that is not a literal, or an IPv6 link-local address (it needs a scope, which this
 * does not take), throws ERR_EVPOLL_INVALID_ARG.
 */
export function connect(host: string, port: number): number {
  if (typeof host !== 'string') throw invalidArg('host must be an IPv4 or IPv6 address string');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidArg(`port must be an integer 1..65535, got ${String(port)}`);
  const fd = !simulated ? ops.connect(host, port) : isIP(host) === 0 ? EINVAL : simulated.net.connect(host, port);
  if (fd === EINVAL) throw invalidArg(`host must be an IPv4 or IPv6 address literal (link-local IPv6 needs a scope, not taken here), got '${host}'`);
  if (fd < 0) throw systemError(fd, 'connect');
  return fd;
}

/**
 * How the connection {@link connect} began on `fd` went: 0 when it is connected (and while it
 * stays so); {@link EINPROGRESS} while the attempt goes on; a negative errno when it failed —
 * {@link ECONNREFUSED}, {@link ETIMEDOUT}, EHOSTUNREACH, ENETUNREACH… (SO_ERROR, which the kernel
 * reports once: ask again and the answer is {@link ENOTCONN}, as for a socket that never
 * connected, a listening one included); {@link EBADF}, ENOTSOCK for an fd that is not a socket.
 */
export function connectResult(fd: number): number {
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.connectResult(fd);
  return ops.connectResult(checkFd(fd));
}

/**
 * Half-closes a connection: shutdown(SHUT_WR). The peer reads what was sent, then EOF (0), and
 * may still write back, which this side reads as before; a write here afterwards gives
 * {@link EPIPE}. 0, or a negative errno: {@link ENOTCONN} (a connection that failed), {@link EBADF},
 * ENOTSOCK. On a connection still being made, Linux abandons the attempt: 0, and connectResult
 * then gives {@link ECONNRESET}.
 */
export function shutdown(fd: number): number {
  if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.shutdown(fd);
  return ops.shutdown(checkFd(fd));
}

const INT32_MAX = 2147483647;

/**
 * A registered ("fixed") buffer, as io_uring has them: memory allocated natively once. A read
 * or write passes its ArrayBuffer and three numbers, which the native side checks against the
 * ArrayBuffer's length, where net.read/net.write must first ask N-API what the Uint8Array they
 * were given is (the largest part of their cost).
 *
 * `bytes` is a Uint8Array over the whole memory: fill it before a write, look in it after a
 * read. The memory is freed when the ArrayBuffer is collected. Node does not transfer it:
 * postMessage, a Worker's transferList and structuredClone copy the ArrayBuffer instead (the
 * copy is independent). Where it is detached all the same (`ArrayBuffer.prototype.transfer()`,
 * behind --harmony-rab-gsab-transfer in Node 20), the memory goes with the new ArrayBuffer:
 * `bytes` is then empty, and read/write throw ERR_EVPOLL_INVALID_ARG.
 */
export class FixedBuffer {
  /** The memory, `size` bytes. */
  readonly bytes: Uint8Array;
  readonly size: number;
  readonly #memory: ArrayBuffer;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1 || size > INT32_MAX) {
      throw invalidArg(`size must be an integer from 1 to ${INT32_MAX}, got ${String(size)}`);
    }
    const made = ops.fixedBuffer(size);
    if (typeof made === 'number') throw systemError(made, 'calloc');
    this.#memory = made;
    this.bytes = new Uint8Array(made);
    this.size = size;
  }

  // read and write each call their own native function from their own call site: one site
  // shared by both would see two functions, and V8 then calls them the slow, generic way.

  /** Reads into bytes[offset, offset + length): bytes read, 0 at EOF, or a negative errno ({@link EAGAIN}), as net.read. */
  read(fd: number, offset = 0, length?: number): number {
    length = this.#checked(fd, offset, length);
    if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.read(fd, this.bytes, offset, length);
    try {
      return fixedRead(this.#memory, fd, offset, length);
    } catch (err) {
      throw this.#refused(err);
    }
  }

  /** Writes bytes[offset, offset + length): bytes written, or a negative errno ({@link EAGAIN}), as net.write. */
  write(fd: number, offset = 0, length?: number): number {
    length = this.#checked(fd, offset, length);
    if (fd >= VIRTUAL_FD_BASE && simulated) return simulated.net.write(fd, this.bytes, offset, length);
    try {
      return fixedWrite(this.#memory, fd, offset, length);
    } catch (err) {
      throw this.#refused(err);
    }
  }

  /** The length to move, once fd, offset and length are known to be in range. */
  #checked(fd: number, offset: number, length: number | undefined): number {
    // Number.isInteger first: it never converts, so no valueOf of a bad argument ever runs.
    if (!(Number.isInteger(fd) && fd >= 0 && fd <= INT32_MAX)) throw badFd(fd);
    if (!(Number.isInteger(offset) && offset >= 0 && offset <= this.size)) throw badOffset(offset, this.size);
    if (length === undefined) return this.size - offset;
    if (!(Number.isInteger(length) && length >= 0 && length <= this.size - offset)) throw badLength(length, offset, this.size);
    return length;
  }

  /** What the arguments checked above leave the native side to refuse: detached memory. */
  #refused(err: unknown): unknown {
    if (this.#memory.byteLength !== this.size) {
      return invalidArg("this FixedBuffer's memory was detached (transferred to another ArrayBuffer): it can no longer read or write");
    }
    return err;
  }
}

function badFd(fd: unknown) {
  return Number.isInteger(fd) && (fd as number) > INT32_MAX
    ? invalidArg(`fd must be an integer from 0 to ${INT32_MAX}, got ${String(fd)}`)
    : invalidArg(`fd must be an integer >= 0, got ${String(fd)}`);
}

function badOffset(offset: unknown, size: number) {
  return invalidArg(`offset ${String(offset)} is outside the buffer (an integer from 0 to ${size})`);
}

function badLength(length: unknown, offset: number, size: number) {
  return invalidArg(`length ${String(length)} from offset ${offset} is outside the buffer (an integer from 0 to ${size - offset})`);
}
