// A loopback TCP connection whose two ends are both plain fds of this process, for what only TCP
// has (urgent data). evpoll/net has no connect(): the client end is a node:net socket's, taken
// from its libuv handle (`_handle.fd`: Node's own, undocumented, there on every Unix). The socket
// is paused, so libuv reads nothing from it, and destroyed after the test.
import { connect } from 'node:net';
import * as net from '../src/net.js';
import { onCleanup } from './harness.js';
import { sleep } from './helpers.js';

export interface TcpPair {
  /** The accepted end: evpoll/net's fd, nonblocking. */
  accepted: number;
  /** The connecting end: the fd of a paused node:net socket, nonblocking. */
  client: number;
}

/** A connected loopback TCP pair, both ends closed after the test. */
export async function tcpPair(): Promise<TcpPair> {
  const listener = net.listen('127.0.0.1', 0);
  try {
    const socket = connect(net.localPort(listener), '127.0.0.1');
    socket.on('error', () => {}); // the accepted end closes first or resets: not this test's concern
    onCleanup(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.pause();
    const client = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    // connect() completed, so the connection is in the accept queue; bound the wait all the same.
    for (let tries = 0; tries < 500; tries++) {
      const fds = net.accept(listener, 1);
      if (Array.isArray(fds) && fds.length === 1) {
        const accepted = fds[0];
        onCleanup(() => net.close(accepted));
        return { accepted, client };
      }
      await sleep(10);
    }
    throw new Error('no connection to accept within 5 s');
  } finally {
    net.close(listener);
  }
}
