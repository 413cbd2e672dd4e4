// Signals as loop events, PHP-FPM's way (fpm_signals.c): a native handler writes one byte per
// signal into a nonblocking self-pipe whose read end is an ordinary READ event of the loop, so
// a loop blocked in run() hears signals, and so does a started one. The handler chains to the
// one it replaced (Node's own SIGCHLD handling keeps working); the last del() of a signal
// puts the previous handler back.
import { constants } from 'node:os';
import { addon } from './native.js';
import { EV } from './flags.js';
import { EvpollError, invalidArg, systemError } from './errors.js';
import type { Event } from './event.js';
import { read } from './net.js';
import type { EventLoop } from './loop.js';

export type SignalName = 'SIGTERM' | 'SIGINT' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGCHLD' | 'SIGHUP' | 'SIGWINCH' | 'SIGALRM';

interface SignalOps {
  SIGNALS: Record<string, { signo: number; byte: number }>;
  /** How many self-pipes (so loops watching signals) a process can have at once. */
  SIGNAL_PIPES: number;
  signalPipe(): number;
  closeSignalPipe(fd: number): number;
  pendingSignals(fd: number): number;
  watchSignal(signo: number): number;
  unwatchSignal(signo: number): number;
}
const ops = addon as unknown as SignalOps;
/** signalPipe()'s answer when its fixed table of self-pipes is full (as evpoll/net, a negative errno). */
const ENOSPC = -constants.errno.ENOSPC;

/** The names loop.signal() accepts. */
export function signalNames(): SignalName[] {
  return Object.keys(ops.SIGNALS) as SignalName[];
}

/** A signal watcher's callback: (ev, EV.READ, the signal's name), once per delivery. */
export type SignalCallback = (ev: SignalEvent, which: number, name: SignalName) => void;

/**
 * A signal watched by a loop (loop.signal()): pending while added; its callback gets
 * (ev, EV.READ, name). Not an fd event nor a timer: the loop watches one self-pipe for all of
 * its signals (SignalSet).
 */
export class SignalEvent {
  /** @internal */
  _watching = false;
  /** @internal */
  constructor(
    readonly loop: EventLoop,
    readonly signal: SignalName,
    readonly callback: SignalCallback,
    private readonly set: SignalSet,
  ) {}
  /** Whether the signal is being watched (added and not deleted). */
  get pending(): boolean {
    return this._watching;
  }
  /** Watches the signal again after del(); a no-op while pending. */
  add(): this {
    this.set.add(this);
    return this;
  }
  /** Stops watching: true if it was pending. The last del() of a signal puts its previous handler back. */
  del(): boolean {
    return this.set.del(this);
  }
}

/** One loop's signals: its self-pipe, its READ event, and who watches what. */
export class SignalSet {
  #fd = -1;
  #pipeEvent: Event | undefined;
  #watchers = new Map<SignalName, SignalEvent[]>();
  #byByte = new Map<number, SignalName>();
  #bySigno = new Map<number, SignalName>();
  /**
   * Deliveries read from the pipe and not yet made (a callback threw before their turn): one
   * entry per watcher, so that when one watcher throws, the others of the same signal still
   * get it.
   */
  #queue: SignalEvent[] = [];
  #flush: Event | undefined;
  #buf = new Uint8Array(256);

  constructor(private readonly loop: EventLoop) {
    for (const [name, { signo, byte }] of Object.entries(ops.SIGNALS)) {
      this.#byByte.set(byte, name as SignalName);
      this.#bySigno.set(signo, name as SignalName);
    }
  }

  create(name: unknown, callback: SignalCallback): SignalEvent {
    if (typeof name !== 'string' || !Object.hasOwn(ops.SIGNALS, name)) {
      throw invalidArg(`unknown signal ${String(name)}; evpoll watches ${signalNames().join(', ')}`);
    }
    if (typeof callback !== 'function') throw invalidArg('callback must be a function');
    return new SignalEvent(this.loop, name as SignalName, callback, this);
  }

  add(ev: SignalEvent): void {
    this.loop._checkOpen();
    if (ev._watching) return;
    if (this.#fd < 0) {
      const fd = ops.signalPipe();
      if (fd === ENOSPC) {
        // Not the OS: the native handler's fixed table of self-pipes is full.
        throw new EvpollError('ERR_EVPOLL_SIGNAL_LIMIT', `at most ${ops.SIGNAL_PIPES} loops of a process can watch signals at once; close() another loop or del() its signal events first`);
      }
      if (fd < 0) throw systemError(fd, 'pipe2');
      this.#fd = fd;
    }
    const list = this.#watchers.get(ev.signal) ?? [];
    if (list.length === 0) {
      const rc = ops.watchSignal(ops.SIGNALS[ev.signal].signo);
      if (rc < 0) throw systemError(rc, 'sigaction');
    }
    list.push(ev);
    this.#watchers.set(ev.signal, list);
    ev._watching = true;
    this.#pipeEvent ??= this.loop.event(this.#fd, EV.READ, () => this.#onReadable());
    this.#pipeEvent.add();
  }

  del(ev: SignalEvent): boolean {
    this.loop._checkOpen();
    if (!ev._watching) return false;
    ev._watching = false;
    const list = this.#watchers.get(ev.signal)!.filter((e) => e !== ev);
    this.#watchers.set(ev.signal, list);
    if (list.length === 0) ops.unwatchSignal(ops.SIGNALS[ev.signal].signo);
    // Nothing watched: the pipe's event must not keep run() going.
    if ([...this.#watchers.values()].every((l) => l.length === 0)) this.#pipeEvent?.del();
    return true;
  }

  #onReadable(): void {
    for (;;) {
      const n = read(this.#fd, this.#buf);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const name = this.#byByte.get(this.#buf[i]);
        if (name) this.#queue.push(...(this.#watchers.get(name) ?? []));
      }
    }
    // Signals whose byte did not fit a full pipe: one more delivery each.
    const mask = ops.pendingSignals(this.#fd);
    if (mask > 0) {
      for (const [signo, name] of this.#bySigno) {
        if (mask & (1 << signo)) this.#queue.push(...(this.#watchers.get(name) ?? []));
      }
    }
    this.#deliver();
  }

  #deliver(): void {
    while (this.#queue.length > 0) {
      const ev = this.#queue.shift()!;
      if (!ev._watching) continue; // deleted by an earlier callback
      try {
        ev.callback(ev, EV.READ, ev.signal);
      } catch (err) {
        // The rest of the queue is delivered on the next iteration, not when a signal
        // happens to come again.
        if (this.#queue.length > 0) {
          this.#flush ??= this.loop.timer(0, () => this.#deliver());
          this.#flush.add(0);
        }
        throw err;
      }
    }
  }

  /** loop.close(): give the signals and the pipe back. */
  close(): void {
    for (const [name, list] of this.#watchers) {
      if (list.length > 0) ops.unwatchSignal(ops.SIGNALS[name].signo);
      for (const ev of list) ev._watching = false;
    }
    this.#watchers.clear();
    if (this.#fd >= 0) ops.closeSignalPipe(this.#fd);
    this.#fd = -1;
  }
}
