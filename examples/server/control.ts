// How master and worker talk. The master starts each worker with the listening socket as fd 3,
// one end of a socketpair as fd 4 and, with `--accept mutex`, the shared memory region holding
// the accept mutex as fd 5. Over fd 4 the worker sends lines: `ready` once it accepts, then
// `served N` and `accept accepted=A wakeups=W wasted=X waits=Y` (cumulative counts) now and
// then. EOF on either side means the other process is gone. Commands go the other way as
// signals, FPM's way.
import * as net from 'evpoll/net';

export const LISTEN_FD = 3;
export const CONTROL_FD = 4;
export const SHM_FD = 5;

/**
 * How the workers share the accepting (--accept):
 *   exclusive  one listener, watched with EV.EXCLUSIVE: the kernel wakes one worker per
 *              connection (epoll's EPOLLEXCLUSIVE; ignored elsewhere, which makes it none)
 *   mutex      one listener, watched only by the worker holding the accept mutex (nginx's
 *              accept_mutex, in memory the master shares with the workers)
 *   reuseport  a listener per worker (SO_REUSEPORT): the kernel spreads connections among them
 *   none       one listener, watched by every worker: each connection wakes them all
 */
export type AcceptMode = 'exclusive' | 'mutex' | 'reuseport' | 'none';
export const ACCEPT_MODES: readonly AcceptMode[] = ['exclusive', 'mutex', 'reuseport', 'none'];

/** Where the accept mutex lives in the region (the rest is left for more shared state). */
export const MUTEX_OFFSET = 0;
/** The region's size: the mutex, and room for a scoreboard. */
export const SHM_BYTES = 64 * 1024;

const scratch = new Uint8Array(4096);

/** The master's side: complete lines from a worker's control socket. */
export class LineReader {
  #partial = '';

  constructor(readonly fd: number) {}

  /** Reads what is there; returns the complete lines and whether the worker's side is closed. */
  read(): { lines: string[]; ended: boolean } {
    let text = this.#partial;
    let ended = false;
    for (;;) {
      const n = net.read(this.fd, scratch);
      if (n === net.EAGAIN) break;
      if (n <= 0) {
        ended = true;
        break;
      }
      text += Buffer.from(scratch.buffer, 0, n).toString('latin1');
    }
    const lines = text.split('\n');
    this.#partial = lines.pop()!;
    return { lines, ended };
  }
}
