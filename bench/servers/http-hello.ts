// The http workload's Node `http` side: `hello\n` from node:http, keep-alive kept open.
//
// node .bench-out/server-http.mjs [--port 0]; prints `listening on http://127.0.0.1:PORT`.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } } });

const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '6' });
  res.end('hello\n');
});

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://${values.host}:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
