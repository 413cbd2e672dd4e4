// The http workload's Node `net` side: the same minimal responder as examples/server — the
// same request-head scanner and the same pre-built responses (imported from it), keep-alive and
// pipelining, every complete head of a read answered in one write — on Node's own net.Server.
//
// node .bench-out/server-net.mjs [--port 0]; prints `listening on http://127.0.0.1:PORT`.
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { head, refreshDate, responses, scanHead } from '../../examples/server/http.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } } });

refreshDate(Date.now());
setInterval(() => refreshDate(Date.now()), 1000).unref();

const server = net.createServer({ noDelay: true }, (socket) => {
  let carry: Buffer | null = null;
  let skip = 0; // body bytes of the last request still to come
  socket.on('data', (chunk: Buffer) => {
    let buf = carry === null ? chunk : Buffer.concat([carry, chunk]);
    carry = null;
    let p = 0;
    if (skip > 0) {
      const n = Math.min(skip, buf.length);
      skip -= n;
      p = n;
    }
    const out: Buffer[] = [];
    let close = false;
    while (p < buf.length) {
      const end = scanHead(buf, p, buf.length);
      if (end < 0) {
        carry = Buffer.from(buf.subarray(p)); // outlives this chunk
        break;
      }
      if (head.status !== 200) {
        out.push(responses[head.status as 400 | 431 | 501 | 505].bytes);
        close = true;
        break;
      }
      out.push(!head.keepAlive ? responses.helloClose.bytes : head.keepAlive10 ? responses.helloKeepAlive10.bytes : responses.hello.bytes);
      if (!head.keepAlive) {
        close = true;
        break;
      }
      p = end + head.bodyLength;
      if (p > buf.length) {
        skip = p - buf.length;
        p = buf.length;
      }
    }
    if (out.length === 0) return;
    const bytes = out.length === 1 ? out[0] : Buffer.concat(out);
    if (close) socket.end(bytes);
    else socket.write(bytes);
  });
  socket.on('error', () => socket.destroy());
});

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as net.AddressInfo;
  console.log(`listening on http://${values.host}:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
