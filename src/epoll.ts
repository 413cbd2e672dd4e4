// evpoll/epoll: the npm `epoll` package's API (onoff's GPIO interrupts) over an evpoll loop, so
// that switching is one import. Each Epoll is one EventLoop in integrated mode (start()), each
// added fd one Event of it; what the original passed to the kernel as bits is translated here:
// EPOLLIN/OUT/PRI to READ/WRITE/PRI and back, EPOLLET to EDGE, EPOLLONESHOT done by hand.
// The differences from the original are listed in the README ("Switching from the npm epoll
// package").
import { fstatSync } from 'node:fs';
import { constants } from 'node:os';
import { EventLoop } from './loop.js';
import type { Event } from './event.js';
import { EV } from './flags.js';
import { EvpollError, invalidArg, systemError } from './errors.js';

/** Linux's values (sys/epoll.h), as the original's constants. */
const EPOLLIN = 0x001;
const EPOLLPRI = 0x002;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLRDHUP = 0x2000;
const EPOLLONESHOT = 0x40000000;
/** 1 << 31 as a positive number (the original gave -2147483648 on 32-bit ARM): both are accepted. */
const EPOLLET = 0x80000000;
const KNOWN = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP | EPOLLONESHOT | EPOLLET;

/** `(null, fd, events)` for each readiness: events are EPOLL* bits. `err` is never set (see the README). */
export type EpollCallback = (err: Error | null, fd: number, events: number) => void;

export interface EpollOptions {
  /** The evpoll mechanism (default: EVPOLL_MECHANISM, else epoll, as EventLoop chooses). */
  mechanism?: string;
}

/** One added fd: what it was asked for, and its Event while armed. */
interface Watch {
  fd: number;
  events: number;
  ev: Event<Watch> | undefined;
}

export class Epoll {
  static readonly EPOLLIN = EPOLLIN;
  static readonly EPOLLOUT = EPOLLOUT;
  static readonly EPOLLRDHUP = EPOLLRDHUP;
  static readonly EPOLLPRI = EPOLLPRI;
  static readonly EPOLLERR = EPOLLERR;
  static readonly EPOLLHUP = EPOLLHUP;
  static readonly EPOLLET = EPOLLET;
  static readonly EPOLLONESHOT = EPOLLONESHOT;

  readonly #callback: EpollCallback;
  readonly #loop: EventLoop;
  readonly #watches = new Map<number, Watch>();
  /** Ref'd while any fd is added (armed or not), as the original's uv_ref: the loop itself is unref'd. */
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(callback: EpollCallback, options: EpollOptions = {}) {
    if (typeof callback !== 'function') throw invalidArg('callback must be a function');
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    this.#callback = callback;
    this.#loop = new EventLoop(options.mechanism === undefined ? {} : { mechanism: options.mechanism });
    this.#loop.unref().start();
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The mechanism underneath (an evpoll extension): 'epoll', or 'poll'/'select' when asked. */
  get mechanism(): string {
    return this.#loop.mechanism;
  }

  /** Watches `fd` for `events` (EPOLL* bits); an fd already added throws EEXIST. */
  add(fd: number, events: number): this {
    this.#checkOpen('add');
    const bits = checkEvents(events, 'add');
    checkFd(fd, 'add');
    if (this.#watches.has(fd)) throw systemError(-constants.errno.EEXIST, 'epoll_ctl');
    const watch: Watch = { fd, events: bits, ev: undefined };
    watch.ev = this.#arm(watch); // throws EBADF, EPERM … before anything is recorded
    this.#watches.set(fd, watch);
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
    return this;
  }

  /** Changes what `fd` is watched for; re-arms an EPOLLONESHOT fd that fired. Not added: ENOENT. */
  modify(fd: number, events: number): this {
    this.#checkOpen('modify');
    const bits = checkEvents(events, 'modify');
    checkFd(fd, 'modify');
    const watch = this.#watches.get(fd);
    if (watch === undefined) throw systemError(-constants.errno.ENOENT, 'epoll_ctl');
    const old = watch.ev;
    const before = watch.events;
    watch.events = bits;
    try {
      // The new Event before the old one goes: a refusal (the fd was closed) leaves the old one.
      watch.ev = this.#arm(watch);
    } catch (err) {
      watch.events = before;
      watch.ev = old;
      throw err;
    }
    old?.del();
    return this;
  }

  /** Stops watching `fd`. Not added: ENOENT. */
  remove(fd: number): this {
    this.#checkOpen('remove');
    checkFd(fd, 'remove');
    const watch = this.#watches.get(fd);
    if (watch === undefined) throw systemError(-constants.errno.ENOENT, 'epoll_ctl');
    this.#forget(watch);
    return this;
  }

  /** Removes every fd and releases the loop; the callback is not called again. A second close() throws. */
  close(): null {
    this.#checkOpen('close', "close can't be called more than once");
    this.#closed = true;
    for (const watch of [...this.#watches.values()]) this.#forget(watch);
    this.#loop.close();
    return null;
  }

  /** An Event for what `watch` asks, added; undefined when it asks for nothing evpoll can report. */
  #arm(watch: Watch): Event<Watch> | undefined {
    let flags = 0;
    if (watch.events & EPOLLIN) flags |= EV.READ;
    if (watch.events & EPOLLOUT) flags |= EV.WRITE;
    if (watch.events & EPOLLPRI) flags |= EV.PRI;
    if (flags === 0) {
      // EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET alone: nothing to watch, but the fd must be open.
      try {
        fstatSync(watch.fd);
      } catch {
        throw systemError(-constants.errno.EBADF, 'epoll_ctl');
      }
      return undefined;
    }
    if (watch.events & EPOLLET && this.#loop.supportEdgeTrigger) flags |= EV.EDGE;
    return this.#loop.event(watch.fd, flags, this.#onReady, watch).add();
  }

  #onReady = (ev: Event<Watch>, which: number, watch: Watch): void => {
    if (which & EV.ERROR) {
      // The fd was closed behind the loop's back (poll, select) and its Event removed: the fd
      // leaves the set, as a closed fd leaves the kernel's.
      watch.ev = undefined;
      this.#forget(watch);
    } else if (watch.events & EPOLLONESHOT) {
      // The kernel disables the fd once it has reported it; modify() arms it again.
      ev.del();
      watch.ev = undefined;
    }
    const events = (which & EV.READ ? EPOLLIN : 0) | (which & EV.WRITE ? EPOLLOUT : 0)
      | (which & EV.PRI ? EPOLLPRI : 0) | (which & EV.ERROR ? EPOLLERR : 0);
    this.#callback.call(undefined, null, watch.fd, events);
  };

  #forget(watch: Watch): void {
    watch.ev?.del();
    watch.ev = undefined;
    this.#watches.delete(watch.fd);
    if (this.#watches.size === 0 && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #checkOpen(what: string, message = `${what} can't be called after calling close`): void {
    if (this.#closed) throw new EvpollError('ERR_EVPOLL_CLOSED', message);
  }
}

function checkFd(fd: unknown, what: string): asserts fd is number {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw invalidArg(`${what}: fd must be an integer from 0 to 2147483647, got ${String(fd)}`);
  }
}

/** events as unsigned bits: any integer from -2^31 to 2^32 - 1 (EPOLLET may come either way). */
function checkEvents(events: unknown, what: string): number {
  if (typeof events !== 'number' || !Number.isInteger(events) || events < -0x80000000 || events > 0xffffffff) {
    throw invalidArg(`${what}: events must be a 32-bit integer of Epoll.EPOLL* bits, got ${String(events)}`);
  }
  const bits = events >>> 0;
  if ((bits & ~KNOWN) !== 0) {
    throw invalidArg(`${what}: events has bits evpoll/epoll does not know: 0x${((bits & ~KNOWN) >>> 0).toString(16)} (known: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLPRI, EPOLLERR, EPOLLHUP, EPOLLET, EPOLLONESHOT)`);
  }
  return bits;
}
