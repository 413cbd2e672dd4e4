// A child's exit as a loop event, through a pidfd (Linux >= 5.3): an ordinary fd that becomes
// readable when the process exits, pollable by epoll, poll and select alike, and independent of
// SIGCHLD. While run() blocks the thread Node's loop does not run, so child_process cannot say
// 'exit'; and libuv forwards SIGCHLD through a pipe that drops messages when full. FPM's master
// learns of its children's exits through its loop; this gives an evpoll program the same.
//
// The child is never reaped here (waitid with WNOWAIT): child_process reaps its own children
// and must still see them exit.
import { constants } from 'node:os';
import { addon } from './native.js';
import { ECHILD } from './net.js';
import { EV } from './flags.js';
import { invalidArg, systemError } from './errors.js';
import type { Event } from './event.js';
import type { EventLoop } from './loop.js';

interface PidfdOps {
  pidfdOpen(pid: number): number;
  /** [code, null] or [null, signo] once exited; null while running; or -errno. */
  pidfdExit(fd: number): [number, null] | [null, number] | null | number;
  close(fd: number): number;
}
const ops = addon as unknown as PidfdOps;
const MAX_PID = 0x7fffffff;

/** How a child ended, as child_process's 'exit' gives it: one of code and signal is null. */
export interface ChildExit {
  pid: number;
  /** The exit code, or null if a signal ended it. */
  code: number | null;
  /** The signal's name ('SIGKILL'), or null if it exited. */
  signal: NodeJS.Signals | null;
}

export type ChildCallback = (ev: ChildEvent, which: number, exit: ChildExit) => void;

let signalNames: Map<number, NodeJS.Signals> | undefined;

function signalName(signo: number): NodeJS.Signals {
  signalNames ??= new Map(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));
  // A real-time signal has no name in os.constants.signals.
  return signalNames.get(signo) ?? (`SIG${signo}` as NodeJS.Signals);
}

/**
 * A child's exit watched by a loop (loop.child()): pending until the child exits, then its
 * callback runs once with (ev, EV.READ, { pid, code, signal }) and its pidfd is closed.
 */
export class ChildEvent {
  #pidfd = -1;
  #pidfdEvent: Event | undefined;

  /** @internal */
  constructor(
    readonly loop: EventLoop,
    readonly pid: number,
    readonly callback: ChildCallback,
    private readonly set: ChildWatchers,
  ) {}

  /** Whether the exit is being watched (added, and the child not yet reported). */
  get pending(): boolean {
    return this.#pidfd >= 0;
  }

  /**
   * Watches the child again after del(). A child that has exited but not been reaped yet is
   * reported at once; one already reaped (by child_process) is ESRCH.
   */
  add(): this {
    this.loop._checkOpen();
    if (this.#pidfd >= 0) return this;
    const fd = ops.pidfdOpen(this.pid);
    if (fd < 0) throw systemError(fd, 'pidfd_open');
    // pidfd_open takes any process; only waitid says whether it is ours, so ask now rather
    // than when it exits and nothing can be done.
    const now = ops.pidfdExit(fd);
    if (typeof now === 'number') {
      ops.close(fd);
      throw systemError(now, 'waitid');
    }
    try {
      this.#pidfdEvent = this.loop.event(fd, EV.READ | EV.PERSIST, () => this.#onReadable()).add();
    } catch (err) {
      ops.close(fd); // refused by the backend (select's FD_SETSIZE, maxFd)
      throw err;
    }
    this.#pidfd = fd;
    this.set.watching.add(this);
    return this;
  }

  /** Stops watching and closes the pidfd: true if it was pending. */
  del(): boolean {
    this.loop._checkOpen();
    if (this.#pidfd < 0) return false;
    this.#pidfdEvent?.del();
    this._release();
    return true;
  }

  /** @internal Closes the pidfd; the loop's own registration is gone or going (close()). */
  _release(): void {
    this.set.watching.delete(this);
    this.#pidfdEvent = undefined;
    ops.close(this.#pidfd);
    this.#pidfd = -1;
  }

  #onReadable(): void {
    const status = ops.pidfdExit(this.#pidfd);
    if (status === null) return; // readable, yet waitid finds no exit: look again next time
    this.del();
    if (typeof status === 'number' && status !== ECHILD) throw systemError(status, 'waitid');
    // ECHILD: reaped by someone else first (child_process, when Node's loop ran before this
    // callback could look): it has exited, but its status is gone with it.
    const [code, signo] = typeof status === 'number' ? [null, null] : status;
    this.callback(this, EV.READ, { pid: this.pid, code, signal: signo === null ? null : signalName(signo) });
  }
}

/** One loop's child watchers, for close(). */
export class ChildWatchers {
  /** @internal */
  readonly watching = new Set<ChildEvent>();

  constructor(private readonly loop: EventLoop) {}

  create(pid: unknown, callback: unknown): ChildEvent {
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1 || pid > MAX_PID) {
      throw invalidArg(`pid must be a positive integer, got ${String(pid)}`);
    }
    if (typeof callback !== 'function') throw invalidArg('callback must be a function');
    return new ChildEvent(this.loop, pid, callback as ChildCallback, this);
  }

  /** loop.close(): every pidfd closed (the loop's registrations go with the backend). */
  close(): void {
    for (const ev of [...this.watching]) ev._release();
  }
}
