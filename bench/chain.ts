// libevent's pipe-chain workload (libevent test/bench.c): n socketpairs, each with a persistent
// READ event; a chains started; each callback reads its byte and, while writes remain, writes
// one to pair (i + 1) mod n. Only the dispatch is timed. Prints µs per event (median of runs).
//
// npm run bench:chain -- --mechanism epoll -n 1000 -a 100 [-w WRITES] [--runs 25]
import { parseArgs } from 'node:util';
import { EventLoop, EV, mechanisms } from '../src/index.js';
import * as net from '../src/net.js';
import { summarize, formatRow } from './stats.js';

const { values } = parseArgs({
  options: {
    mechanism: { type: 'string', multiple: true },
    n: { type: 'string', short: 'n', default: '1000' },
    a: { type: 'string', short: 'a', default: '100' },
    w: { type: 'string', short: 'w' },
    runs: { type: 'string', default: '25' },
    json: { type: 'boolean', default: false },
  },
});

const n = Number(values.n);
const active = Number(values.a);
const writes = values.w === undefined ? n : Number(values.w);
const runs = Number(values.runs);

export interface ChainResult {
  mechanism: string;
  n: number;
  a: number;
  w: number;
  usPerEvent: number[];
}

function chain(mechanism: string): ChainResult | string {
  if (mechanism === 'select' && 2 * n + 16 > 1024) return `select: not applicable with ${2 * n} fds (FD_SETSIZE 1024)`;
  const loop = new EventLoop({ mechanism });
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) pairs.push(net.socketpair());
  const byte = new Uint8Array(1);
  let left = 0;
  let fired = 0;
  let count = 0;
  const onRead = (_ev: unknown, _which: number, i: number) => {
    net.read(pairs[i][0], byte);
    count++;
    if (left > 0) {
      left--;
      fired++;
      const next = i + 1 === n ? 0 : i + 1;
      net.write(pairs[next][1], byte);
    }
  };
  const events = pairs.map(([r], i) => loop.event(r, EV.READ | EV.PERSIST, onRead, i));
  const samples: number[] = [];
  const space = Math.floor(n / active);
  for (let run = 0; run < runs; run++) {
    // As bench.c: re-register every event each run, start the chains, then time the dispatch.
    for (const ev of events) {
      ev.del();
      ev.add();
    }
    fired = active;
    for (let i = 0; i < active; i++) net.write(pairs[i * space][1], byte);
    count = 0;
    left = writes;
    const start = process.hrtime.bigint();
    do loop.runOnce(0);
    while (count !== fired);
    const elapsed = Number(process.hrtime.bigint() - start) / 1000;
    samples.push(elapsed / count);
  }
  loop.close();
  for (const [a, b] of pairs) {
    net.close(a);
    net.close(b);
  }
  return { mechanism, n, a: active, w: writes, usPerEvent: samples };
}

const names = values.mechanism ?? mechanisms().filter((m) => m.available).map((m) => m.name);
const results: ChainResult[] = [];
for (const mechanism of names) {
  const r = chain(mechanism);
  if (typeof r === 'string') {
    console.log(r);
    continue;
  }
  results.push(r);
  console.log(formatRow(`chain ${mechanism} n=${n} a=${active} w=${writes}`, summarize(r.usPerEvent), 'µs/event'));
}
if (values.json) console.log(JSON.stringify(results));
