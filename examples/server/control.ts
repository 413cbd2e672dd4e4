// How master and worker talk. The master starts each worker with the listening socket as fd 3
// and one end of a socketpair as fd 4. Over fd 4 the worker sends lines: `ready` once it
// accepts, then `served N` (its cumulative count) now and then. EOF on either side means the
// other process is gone. Commands go the other way as signals, FPM's way.
import * as net from 'evpoll/net';

export const LISTEN_FD = 3;
export const CONTROL_FD = 4;

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
