// The cost of one loop iteration against the number of idle fds: one `runOnce(0)` with 1 active
// fd (a socketpair end kept readable, its callback a no-op, so every iteration dispatches one
// event) and N idle ones (both ends of socketpairs nobody writes to: one fd each, so 19,000 idle
// fds fit in the 20,000 open-file limit). epoll's wait is O(ready); poll's and select's are O(N).
// select stops below FD_SETSIZE (1024): its last point is the largest N whose fds fit.
//
// One process per mechanism sweeps N upwards; mechanisms alternate round by round.
//
// npm run bench -- scale [--mechanism epoll] [--rounds 3] [--quick]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EventLoop, EV, mechanisms } from '../src/index.js';
import * as net from '../src/net.js';
import { summarize, fmt } from './stats.js';
import { readLatest, saveWorkload } from './results.js';
import { markLoad, leastDisturbed, RetryBudget } from './load.js';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    mechanism: { type: 'string', multiple: true },
    samples: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

const NS = [10, 100, 1000, 10000, 19000];
const FD_SETSIZE = 1024;
/** Each sample times this long a batch of iterations. */
const BATCH_MS = 20;

interface Point {
  /** The N asked for, and the N measured (select: what fits below FD_SETSIZE). */
  n: number;
  idle: number;
  nsPerIteration: number[];
}

function child(mechanism: string, samples: number): Point[] {
  const loop = new EventLoop({ mechanism });
  const [active, activePeer] = net.socketpair();
  net.write(activePeer, new Uint8Array([1])); // never read: level-triggered, ready every iteration
  let fired = 0;
  loop.event(active, EV.READ, () => fired++).add();
  const noop = () => {};
  const opened: number[] = [];
  let idle = 0;
  const points: Point[] = [];
  for (const n of NS) {
    let full = false;
    while (idle < n) {
      const [a, b] = net.socketpair();
      if (mechanism === 'select' && b >= FD_SETSIZE) {
        net.close(a);
        net.close(b);
        full = true;
        break;
      }
      opened.push(a, b);
      loop.event(a, EV.READ, noop).add();
      idle++;
      if (idle < n) {
        loop.event(b, EV.READ, noop).add();
        idle++;
      }
    }
    if (full && idle < n / 2) break; // nothing near this N fits
    // Calibrate a batch to ~BATCH_MS, warm up, then time `samples` batches.
    let k = 64;
    for (;;) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < k; i++) loop.runOnce(0);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (ms >= BATCH_MS / 4) {
        k = Math.max(16, Math.round((k * BATCH_MS) / ms));
        break;
      }
      k *= 4;
    }
    for (let i = 0; i < k; i++) loop.runOnce(0);
    const ns: number[] = [];
    for (let s = 0; s < samples; s++) {
      const before = fired;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < k; i++) loop.runOnce(0);
      const elapsed = Number(process.hrtime.bigint() - t0);
      if (fired - before !== k) throw new Error(`expected ${k} dispatches, got ${fired - before}`);
      ns.push(elapsed / k);
    }
    points.push({ n, idle, nsPerIteration: ns });
    if (full) break;
  }
  loop.close();
  for (const fd of opened) net.close(fd);
  return points;
}

export interface ScaleSeries {
  mechanism: string;
  points: { n: number; idle: number; median: number; min: number; max: number; runs: number; samples: number[] }[];
}

async function orchestrate(): Promise<void> {
  const mark = markLoad();
  const retries = new RetryBudget(2);
  const self = fileURLToPath(import.meta.url);
  const quick = values.quick!;
  const names = values.mechanism ?? mechanisms().filter((m) => m.available).map((m) => m.name);
  const rounds = Number(values.rounds ?? (quick ? 1 : 3));
  const samples = Number(values.samples ?? (quick ? 5 : 7));
  const collected = new Map<string, Map<number, { idle: number; ns: number[] }>>(names.map((m) => [m, new Map()]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const m = names[(k + round) % names.length];
      const { value: r } = await leastDisturbed(`scale ${m}`, () =>
        spawnSync(process.execPath, [self, '--child', '--mechanism', m, '--samples', String(samples)], { encoding: 'utf8', timeout: 300_000 }),
        retries,
      );
      if (r.status !== 0) {
        console.log(`scale ${m}: failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
        continue;
      }
      const points = JSON.parse(r.stdout.trim().split('\n').pop()!) as Point[];
      for (const p of points) {
        const slot = collected.get(m)!.get(p.n) ?? { idle: p.idle, ns: [] };
        slot.ns.push(...p.nsPerIteration);
        collected.get(m)!.set(p.n, slot);
      }
      console.log(`scale ${m.padEnd(6)} round ${round + 1}/${rounds}: ` + points.map((p) => `N=${p.idle} ${fmt(summarize(p.nsPerIteration).median / 1000)} µs`).join(', '));
    }
  }
  const series: ScaleSeries[] = names.map((m) => ({
    mechanism: m,
    points: [...collected.get(m)!].map(([n, { idle, ns }]) => ({ n, idle, ...summarize(ns), samples: ns.map((x) => Math.round(x)) })),
  }));
  for (const s of series) {
    console.log(`scale ${s.mechanism.padEnd(6)} µs per runOnce(0): ` + s.points.map((p) => `N=${p.idle} ${fmt(p.median / 1000)}`).join(', '));
  }
  // A run of some mechanisms keeps the others' last series.
  const before = (readLatest().workloads.scale?.series ?? []) as ScaleSeries[];
  const merged = [...before.filter((b) => !names.includes(b.mechanism)), ...series];
  const order = ['epoll', 'poll', 'select'];
  merged.sort((a, b) => order.indexOf(a.mechanism) - order.indexOf(b.mechanism));
  saveWorkload('scale', quick, { rounds, samplesPerRound: samples, batchMs: BATCH_MS, series: merged }, mark);
}

if (values.child) {
  process.stdout.write(JSON.stringify(child(values.mechanism?.[0] ?? 'epoll', Number(values.samples ?? 7))) + '\n');
  process.exit(0);
} else {
  await orchestrate();
}
