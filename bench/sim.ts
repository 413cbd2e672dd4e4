// What a simulation run costs (evpoll/sim): the more schedules a second, the more bugs a user's
// CI finds in the same minutes.
//
// 1. Simulated events per second: libevent's pipe chain (bench:chain's workload: n socketpairs,
//    `a` chains, each callback reads its byte and writes one to the next pair) on virtual
//    socketpairs in a loop on 'sim', beside the same chain on real socketpairs in a loop on
//    epoll, in this one process, runs alternated. Both sides use the same JS (net.read/write).
// 2. The real time of a ten-minute idle timeout: examples/server's connection handling with a
//    600,000 ms idle timeout and one idle client (test/sim-server.ts's idle scenario).
// 3. Seeds per second of the example server's test: 1,000 virtual clients under faults per seed
//    (test/sim-server.ts's runSeed), over a run of seeds.
//
// npm run bench -- sim [-n 1000 -a 100] [-w 20000] [--runs 15] [--seeds 20] [--quick]
import { parseArgs } from 'node:util';
import { EventLoop, EV } from 'evpoll';
import * as net from 'evpoll/net';
import { Simulation } from 'evpoll/sim';
import { summarize, formatRow, fmt } from './stats.js';
import { saveWorkload } from './results.js';
import { markLoad } from './load.js';
import { runSeed, runIdle } from '../test/sim-server.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', short: 'n' },
    a: { type: 'string', short: 'a' },
    w: { type: 'string', short: 'w' },
    runs: { type: 'string' },
    seeds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const quick = values.quick!;
const n = Number(values.n ?? 1000);
const active = Number(values.a ?? 100);
const writes = Number(values.w ?? 20000);
const runs = Number(values.runs ?? (quick ? 5 : 15));
const seeds = Number(values.seeds ?? (quick ? 5 : 20));

/** One chain on `loop`: its socketpairs made by evpoll/net (virtual while a Simulation is installed). */
function chain(loop: EventLoop) {
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) pairs.push(net.socketpair());
  const one = new Uint8Array([101]);
  const into = new Uint8Array(1);
  let left = 0;
  let fired = 0;
  let count = 0;
  const onRead = (_ev: unknown, _which: number, i: number) => {
    const got = net.read(pairs[i][0], into);
    if (got > 0) count += got;
    if (left > 0) {
      left--;
      fired++;
      net.write(pairs[i + 1 === n ? 0 : i + 1][1], one);
    }
  };
  const events = pairs.map(([r], i) => loop.event(r, EV.READ | EV.PERSIST, onRead, i));
  const space = Math.floor(n / active);
  /** µs per event of one run (the dispatch only, as bench:chain times it). */
  const run = (): number => {
    for (const ev of events) {
      ev.del();
      ev.add();
    }
    fired = active;
    for (let i = 0; i < active; i++) net.write(pairs[i * space][1], one);
    count = 0;
    left = writes;
    const start = process.hrtime.bigint();
    do loop.runOnce(0);
    while (count !== fired);
    return Number(process.hrtime.bigint() - start) / 1000 / count;
  };
  const close = () => {
    for (const ev of events) ev.del();
    for (const [a, b] of pairs) {
      net.close(a);
      net.close(b);
    }
  };
  return { run, close };
}

const mark = markLoad();

// 1. The chain: the real side's socketpairs are made before the simulation is installed.
console.log(`chain: n=${n} a=${active} w=${writes}, ${runs} runs each, alternated`);
const realLoop = new EventLoop({ mechanism: 'epoll' });
const real = chain(realLoop);
const sim = Simulation.install({ seed: 1 });
const simLoop = new EventLoop();
const virtual = chain(simLoop);
const samples: Record<'sim' | 'epoll', number[]> = { sim: [], epoll: [] };
for (let i = 0; i < 3; i++) {
  virtual.run();
  real.run();
}
for (let i = 0; i < runs; i++) {
  samples.sim.push(virtual.run());
  samples.epoll.push(real.run());
}
const simStats = sim.stats();
virtual.close();
simLoop.close();
sim.uninstall();
real.close();
realLoop.close();
const simSummary = summarize(samples.sim);
const epollSummary = summarize(samples.epoll);
console.log(formatRow("evpoll on 'sim' (virtual socketpairs)", simSummary, 'µs/event'));
console.log(formatRow('evpoll on epoll (real socketpairs)', epollSummary, 'µs/event'));
const simEventsPerSecond = 1e6 / simSummary.median;
console.log(
  `simulated events/s: ${fmt(simEventsPerSecond)} (epoll: ${fmt(1e6 / epollSummary.median)}); sim/epoll time per event ${fmt(simSummary.median / epollSummary.median)}×` +
    ` (${simStats.waits} simulated waits, ${simStats.records} records)`,
);

// 2. Ten minutes of idle timeout.
const idleRuns: number[] = [];
let idle: ReturnType<typeof runIdle> | undefined;
for (let i = 0; i < (quick ? 3 : 9); i++) {
  const start = performance.now();
  idle = runIdle(600_000);
  idleRuns.push(performance.now() - start);
}
const idleSummary = summarize(idleRuns);
console.log(formatRow('ten-minute idle timeout, real time', idleSummary, 'ms'));
console.log(`  (the server closed it at virtual ${fmt(idle!.closedAt - idle!.answeredAt)} ms after answering; ${idle!.violations.length} violations)`);

// 3. Seeds per second of the server test.
const seedTimes: number[] = [];
let clientsTotal = 0;
let requestsTotal = 0;
for (let seed = 0; seed < seeds; seed++) {
  const start = performance.now();
  const r = runSeed(seed, { clients: 1000 }); // the faults the seed picks (faultsFor), as the test's
  if (r.violations.length > 0) throw new Error(`seed ${seed}: ${r.violations.join('; ')}`);
  seedTimes.push(performance.now() - start);
  clientsTotal += r.clients;
  requestsTotal += r.requests;
}
const seedSummary = summarize(seedTimes);
console.log(formatRow('server test, one seed of 1,000 clients', seedSummary, 'ms'));
console.log(`seeds/s: ${fmt(1000 / seedSummary.median)} (${fmt(requestsTotal / seeds)} requests per seed, ${clientsTotal} clients in all)`);

saveWorkload(
  'sim',
  quick,
  {
    chain: { n, active, writes, sim: simSummary, epoll: epollSummary, simEventsPerSecond },
    idle: { timeoutMs: 600_000, realMs: idleSummary },
    server: { clients: 1000, seeds, msPerSeed: seedSummary, seedsPerSecond: 1000 / seedSummary.median, requestsPerSeed: requestsTotal / seeds },
  },
  mark,
);
