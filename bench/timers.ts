// Timers, libuv's benchmark-million-timers turned into two questions:
//  cancel: 1,000,000 timers of random durations 1..60000 ms scheduled, then all cancelled —
//          how long each half takes;
//  fire:   1,000,000 timers of random durations 0..1000 ms scheduled, then run until all have
//          fired — the wall time, and how late they fire (mean and p99), overall and for the
//          timers due after the scheduling finished (the ones a loop could have been on time for).
// Lateness is the firing time minus (the time the timer was asked for + its duration), both from
// performance.now(). Sides: evpoll in run() and in start() mode, Node's setTimeout/clearTimeout.
// Each case runs in a fresh process (same seeded durations for every side); sides alternate.
//
// npm run bench -- timers [--count 1000000] [--repeats 3] [--quick]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { EventLoop, type Event } from '../src/index.js';
import { summarize, fmt, mean, percentile } from './stats.js';
import { saveWorkload } from './results.js';
import { markLoad, leastDisturbed, RetryBudget } from './load.js';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    side: { type: 'string' },
    count: { type: 'string' },
    repeats: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

const SIDES = [
  { id: 'evpoll-run', label: 'evpoll run()' },
  { id: 'evpoll-start', label: 'evpoll start()' },
  { id: 'node', label: 'Node setTimeout' },
  { id: 'floor', label: 'floor: handles, no queue' },
];

/**
 * The floor side: what any API that hands out one object per timer pays on this machine before
 * it keeps a queue at all. Schedule allocates an object of evpoll's Event shape per timer and
 * keeps it (as the other sides' callers keep theirs) plus, for fire, appends it to a list per
 * whole ms of its due time; cancel marks each object; fire spins over the ms lists as the clock
 * passes them (no sleeping, no ordering within a ms). Not a timer library: the lower bound
 * that says how much of a side's time is the workload's own.
 */
class Handle {
  _slot = -1;
  constructor(
    readonly loop: unknown,
    readonly fd: number,
    readonly flags: number,
    readonly callback: (h: Handle, which: number, arg: number) => void,
    readonly arg: number,
  ) {}
}

/** mulberry32: the same durations for every side and every repeat. */
function durations(count: number, min: number, max: number, seed: number): Float64Array {
  const out = new Float64Array(count);
  let a = seed >>> 0;
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = min + Math.floor(r * (max - min + 1));
  }
  return out;
}

export interface CancelResult {
  scheduleMs: number;
  cancelMs: number;
}

export interface FireResult {
  scheduleMs: number;
  wallMs: number;
  lateMeanMs: number;
  lateP99Ms: number;
  lateMaxMs: number;
  /** Timers due after the last one was scheduled. */
  afterCount: number;
  afterMeanMs: number;
  afterP99Ms: number;
}

function cancelCase(side: string, count: number): CancelResult {
  const d = durations(count, 1, 60000, 1);
  const noop = () => {};
  if (side === 'node') {
    const handles: NodeJS.Timeout[] = new Array(count);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) handles[i] = setTimeout(noop, d[i]);
    const t1 = performance.now();
    for (let i = 0; i < count; i++) clearTimeout(handles[i]);
    const t2 = performance.now();
    return { scheduleMs: t1 - t0, cancelMs: t2 - t1 };
  }
  if (side === 'floor') {
    const handles: Handle[] = new Array(count);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const h = new Handle(null, -1, 0, noop, 0);
      h._slot = i;
      handles[i] = h;
    }
    const t1 = performance.now();
    for (let i = 0; i < count; i++) handles[i]._slot = -1;
    const t2 = performance.now();
    return { scheduleMs: t1 - t0, cancelMs: t2 - t1 };
  }
  const loop = new EventLoop();
  if (side === 'evpoll-start') loop.start();
  const timers: Event[] = new Array(count);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) timers[i] = loop.timer(0, noop).add(d[i]);
  const t1 = performance.now();
  for (let i = 0; i < count; i++) timers[i].del();
  const t2 = performance.now();
  loop.close();
  return { scheduleMs: t1 - t0, cancelMs: t2 - t1 };
}

async function fireCase(side: string, count: number): Promise<FireResult> {
  const d = durations(count, 0, 1000, 2);
  const due = new Float64Array(count);
  const firedAt = new Float64Array(count);
  let fired = 0;
  let allFired: () => void = () => {};
  const done = new Promise<void>((resolve) => (allFired = resolve));
  const onFire = (i: number) => {
    firedAt[i] = performance.now();
    if (++fired === count) allFired();
  };
  let t0: number, t1: number;
  if (side === 'node') {
    t0 = performance.now();
    for (let i = 0; i < count; i++) {
      due[i] = performance.now() + d[i];
      setTimeout(onFire, d[i], i);
    }
    t1 = performance.now();
    await done;
  } else if (side === 'floor') {
    const cb = (_h: Handle, _which: number, i: number) => onFire(i);
    const lists: Handle[][] = [];
    t0 = performance.now();
    const base = Math.floor(t0);
    for (let i = 0; i < count; i++) {
      due[i] = performance.now() + d[i];
      const h = new Handle(null, -1, 0, cb, i);
      const ms = Math.ceil(due[i]) - base;
      (lists[ms] ??= []).push(h);
    }
    t1 = performance.now();
    for (let ms = 0; fired < count; ms++) {
      while (performance.now() < base + ms) {}
      const list = lists[ms];
      if (list) for (const h of list) h.callback(h, 1, h.arg);
    }
  } else {
    const loop = new EventLoop();
    const cb = (_ev: Event, _which: number, i: number) => onFire(i);
    if (side === 'evpoll-start') loop.start();
    t0 = performance.now();
    for (let i = 0; i < count; i++) {
      due[i] = performance.now() + d[i];
      loop.timer(0, cb, i).add(d[i]);
    }
    t1 = performance.now();
    if (side === 'evpoll-start') await done;
    else loop.run();
    loop.close();
  }
  let last = 0;
  const late = new Float64Array(count);
  let after = 0;
  for (let i = 0; i < count; i++) {
    late[i] = firedAt[i] - due[i];
    if (firedAt[i] > last) last = firedAt[i];
    if (due[i] > t1) after++;
  }
  const lateAfter = new Float64Array(after);
  for (let i = 0, k = 0; i < count; i++) if (due[i] > t1) lateAfter[k++] = late[i];
  late.sort();
  lateAfter.sort();
  return {
    scheduleMs: t1 - t0,
    wallMs: last - t0,
    lateMeanMs: mean(late),
    lateP99Ms: percentile(late, 99),
    lateMaxMs: late[count - 1],
    afterCount: after,
    afterMeanMs: mean(lateAfter),
    afterP99Ms: percentile(lateAfter, 99),
  };
}

async function child(kind: string): Promise<void> {
  const count = Number(values.count);
  const result = kind === 'cancel' ? cancelCase(values.side!, count) : await fireCase(values.side!, count);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

function runCase(self: string, kind: string, side: string, count: number): CancelResult | FireResult {
  const r = spawnSync(process.execPath, ['--max-old-space-size=4096', self, '--child', kind, '--side', side, '--count', String(count)], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`timers ${kind} ${side} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Medians over the repeats, field by field; the samples are kept too. */
function medians<T extends object>(runs: T[]): Record<string, { median: number; min: number; max: number; samples: number[] }> {
  const out: Record<string, { median: number; min: number; max: number; samples: number[] }> = {};
  for (const key of Object.keys(runs[0]) as (keyof T & string)[]) {
    const samples = runs.map((r) => r[key] as unknown as number);
    const s = summarize(samples);
    out[key] = { median: s.median, min: s.min, max: s.max, samples: samples.map((x) => +x.toFixed(3)) };
  }
  return out;
}

async function orchestrate(): Promise<void> {
  const mark = markLoad();
  const retries = new RetryBudget(3);
  const self = fileURLToPath(import.meta.url);
  const quick = values.quick!;
  const count = Number(values.count ?? 1_000_000);
  const repeats = Number(values.repeats ?? (quick ? 1 : 3));
  const results: Record<string, { cancel: CancelResult[]; fire: FireResult[] }> = {};
  for (const s of SIDES) results[s.id] = { cancel: [], fire: [] };
  for (let rep = 0; rep < repeats; rep++) {
    for (const kind of ['cancel', 'fire'] as const) {
      for (let k = 0; k < SIDES.length; k++) {
        const side = SIDES[(k + rep) % SIDES.length];
        const { value: r } = await leastDisturbed(`timers ${kind} ${side.label}`, () => runCase(self, kind, side.id, count), retries);
        if (kind === 'cancel') {
          const c = r as CancelResult;
          results[side.id].cancel.push(c);
          console.log(`timers cancel ${side.label.padEnd(16)} repeat ${rep + 1}/${repeats}: schedule ${fmt(c.scheduleMs)} ms, cancel ${fmt(c.cancelMs)} ms`);
        } else {
          const f = r as FireResult;
          results[side.id].fire.push(f);
          console.log(
            `timers fire   ${side.label.padEnd(16)} repeat ${rep + 1}/${repeats}: schedule ${fmt(f.scheduleMs)} ms, wall ${fmt(f.wallMs)} ms, ` +
              `late mean ${fmt(f.lateMeanMs)} p99 ${fmt(f.lateP99Ms)} ms; due after scheduling (${f.afterCount}): mean ${fmt(f.afterMeanMs)} p99 ${fmt(f.afterP99Ms)} ms`,
          );
        }
      }
    }
  }
  const sides = SIDES.map((s) => ({
    id: s.id,
    label: s.label,
    cancel: medians(results[s.id].cancel),
    fire: medians(results[s.id].fire),
  }));
  const node = sides.find((s) => s.id === 'node')!;
  for (const s of sides) {
    const total = s.cancel.scheduleMs.median + s.cancel.cancelMs.median;
    const nodeTotal = node.cancel.scheduleMs.median + node.cancel.cancelMs.median;
    console.log(
      `timers ${s.label.padEnd(16)} schedule+cancel ${fmt(total)} ms (Node/this ${fmt(nodeTotal / total)}×); ` +
        `fire: late p99 ${fmt(s.fire.lateP99Ms.median)} ms, due after scheduling p99 ${fmt(s.fire.afterP99Ms.median)} ms`,
    );
  }
  saveWorkload('timers', quick, { count, repeats, sides }, mark);
}

if (values.child) await child(values.child);
else await orchestrate();
