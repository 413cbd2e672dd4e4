// bench/results/latest.json → bench/results/report.md, chain.svg, scale.svg and pm.svg.
// The targets are issue 4's and issue 13's (accept); each is judged from the figures of the same run. The hand-written
// profiling notes (bench/results/analysis.md) are linked, not regenerated.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLatest, resultsDir, type Machine } from './results.js';
import { barPanels, logLogChart, timeChart, type Panel } from './svg.js';
import { pmTable, type PmModeSummary, type PmSetup } from './pm-table.js';
import { fmt, summarize } from './stats.js';

interface S {
  median: number;
  min: number;
  max: number;
  runs: number;
  samples?: number[];
}
interface ChainSide extends Partial<S> {
  id: string;
  samples?: number[];
  label: string;
  mechanism: string;
  date?: string;
  error?: string;
}
interface ChainSet {
  n: number;
  a: number;
  w: number;
  sides: ChainSide[];
  notes: string[];
}
interface TimerSide {
  id: string;
  label: string;
  cancel: Record<'scheduleMs' | 'cancelMs', S>;
  fire: Record<'scheduleMs' | 'wallMs' | 'lateMeanMs' | 'lateP99Ms' | 'lateMaxMs' | 'afterCount' | 'afterMeanMs' | 'afterP99Ms', S>;
}
interface HttpServer {
  id: string;
  label: string;
  rps?: S;
  cpuUsPerRequest?: S;
  runs?: { othersOnServerCpu?: number; rps: number; cpuUsPerRequest: number }[];
  error?: string;
}
interface ScaleSeries {
  mechanism: string;
  points: (S & { n: number; idle: number })[];
}
interface AcceptCell {
  mechanism: string;
  accept: string;
  load: 'close' | 'keep-alive';
  rps?: S;
  cpuUsPerRequest?: S;
  wakeupsPerConnection?: S;
  wastedPerConnection?: S;
  sleepsPerRequest?: S;
  spread?: S | null;
  runs?: { rps: number; spread: number | null; workers: { accepted: number; open?: number }[] }[];
  error?: string;
}
interface CoreSide {
  id: string;
  label: string;
  ops: Record<string, S>;
}

const latest = readLatest();
const W = latest.workloads as Record<string, any>;
const out: string[] = [];
const push = (...lines: string[]) => out.push(...lines);

const range = (s: Partial<S> | undefined, scale = 1) =>
  s && s.min !== undefined && s.max !== undefined ? `${fmt(s.min * scale)}–${fmt(s.max * scale)}` : '—';
const med = (s: Partial<S> | undefined, scale = 1) => (s?.median !== undefined ? fmt(s.median * scale) : '—');
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? `${fmt(a / b)}×` : '—');

/**
 * The median of run-by-run ratios a[i] / b[i]. The sides of a workload are measured in the same
 * rounds, alternating, so a slow phase of the machine (they come and go here, and can hold for a
 * dozen runs) hits both figures of a pair alike; the ratio of two medians can land one median in
 * a slow phase and the other in a fast one. Falls back to the ratio of medians when the runs do
 * not pair up.
 */
function pairedRatio(a: number[] | undefined, b: number[] | undefined, medA: number, medB: number): number {
  if (a && b && a.length > 0 && a.length === b.length) return summarize(a.map((x, i) => x / b[i])).median;
  return medA / medB;
}
const chainRatio = (a: ChainSide, b: ChainSide) =>
  pairedRatio((a.date ?? '').slice(0, 16) === (b.date ?? '').slice(0, 16) ? a.samples : undefined, b.samples, a.median!, b.median!);

function machineLine(m: Machine | undefined): string {
  if (!m) return 'unknown machine';
  return `${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}${m.commit ? `; evpoll ${m.commit}` : ''}`;
}

// ---- targets ----------------------------------------------------------------------------------

interface Target {
  what: string;
  figure: string;
  met: boolean | undefined;
}
const targets: Target[] = [];
const target = (what: string, met: boolean | undefined, figure: string) => targets.push({ what, met, figure });

const chainSets = (W.chain?.sets ?? []) as ChainSet[];
const set1000 = chainSets.find((s) => s.n === 1000 && s.a === 100);
/** Tables and charts list sides by backend, then evpoll run/start, libevent, the floors, the others. */
const SIDE_ORDER = ['evpoll-run', 'evpoll-start', 'libevent', 'c-epoll', 'js-native', 'node-net', 'npm-epoll'];
function sideRank(s: ChainSide): number {
  const mech = ['epoll', 'poll', 'select'].indexOf(s.mechanism);
  return mech * 10 + SIDE_ORDER.findIndex((k) => s.id.startsWith(k));
}
const side = (set: ChainSet | undefined, id: string) => set?.sides.find((x) => x.id === id && x.median !== undefined);
{
  const ev = side(set1000, 'evpoll-run-epoll');
  const evStart = side(set1000, 'evpoll-start-epoll');
  const le = side(set1000, 'libevent-epoll');
  const npm = side(set1000, 'npm-epoll');
  const nodeNet = side(set1000, 'node-net');
  const evPoll = side(set1000, 'evpoll-run-poll');
  const lePoll = side(set1000, 'libevent-poll');
  const t = (a?: ChainSide, b?: ChainSide) => (a && b ? chainRatio(a, b) : undefined);
  const medians = (a: ChainSide, b: ChainSide) => `medians ${fmt(a.median!)} vs ${fmt(b.median!)} µs`;
  const r1 = t(ev, le);
  target('chain epoll n=1000 a=100: evpoll ≤ 1.15× libevent\'s µs/event', r1 === undefined ? undefined : r1 <= 1.15,
    r1 === undefined ? 'not measured' : `${fmt(r1)}× (${medians(ev!, le!)})`);
  const r2 = t(npm, ev);
  target('chain epoll n=1000 a=100: ≥ 8× faster than npm epoll', r2 === undefined ? undefined : r2 >= 8,
    r2 === undefined ? 'not measured' : `${fmt(r2)}× faster (${medians(npm!, ev!)})`);
  const r3 = t(nodeNet, ev);
  target('chain epoll n=1000 a=100: ≥ 3× faster than Node net streams', r3 === undefined ? undefined : r3 >= 3,
    r3 === undefined ? 'not measured' : `${fmt(r3)}× faster (${medians(nodeNet!, ev!)})`);
  const r4 = t(evStart, ev);
  target('chain epoll n=1000 a=100: start() within 1.2× of run()', r4 === undefined ? undefined : r4 <= 1.2,
    r4 === undefined ? 'not measured' : `${fmt(r4)}× (${medians(evStart!, ev!)})`);
  const r5 = t(evPoll, lePoll);
  target('chain poll n=1000 a=100: evpoll within 1.2× of libevent\'s poll', r5 === undefined ? undefined : r5 <= 1.2,
    r5 === undefined ? 'not measured' : `${fmt(r5)}× (${medians(evPoll!, lePoll!)})`);
}
const timerSides = (W.timers?.sides ?? []) as TimerSide[];
/** Schedule + cancel, repeat by repeat. */
const totals = (t: TimerSide) => t.cancel.scheduleMs.samples?.map((x, i) => x + t.cancel.cancelMs.samples![i]);
{
  const ev = timerSides.find((s) => s.id === 'evpoll-run');
  const node = timerSides.find((s) => s.id === 'node');
  if (ev && node) {
    const evT = ev.cancel.scheduleMs.median + ev.cancel.cancelMs.median;
    const nodeT = node.cancel.scheduleMs.median + node.cancel.cancelMs.median;
    const r = pairedRatio(totals(node), totals(ev), nodeT, evT);
    const floor = timerSides.find((s) => s.id === 'floor');
    const floorT = floor ? floor.cancel.scheduleMs.median + floor.cancel.cancelMs.median : undefined;
    const floorNote = floor && floorT !== undefined
      ? `; the floor side, handles without a queue, is ${fmt(pairedRatio(totals(node), totals(floor), nodeT, floorT))}× (${fmt(floorT)} ms)`
      : '';
    target('timers: schedule+cancel of 1M ≥ 10× faster than Node', r >= 10, `${fmt(r)}× faster (${fmt(evT)} vs ${fmt(nodeT)} ms${floorNote})`);
    const p99 = ev.fire.afterP99Ms.median;
    const floorP99 = floor ? `; floor side: p99 ${fmt(floor.fire.afterP99Ms.median)} ms` : '';
    target('timers: timers due after scheduling finished fire with p99 lateness ≤ 5 ms', p99 <= 5,
      `p99 ${fmt(p99)} ms (mean ${fmt(ev.fire.afterMeanMs.median)} ms; Node: p99 ${fmt(node.fire.afterP99Ms.median)} ms${floorP99})`);
  } else {
    target('timers: schedule+cancel of 1M ≥ 10× faster than Node', undefined, 'not measured');
    target('timers: timers due after scheduling finished fire with p99 lateness ≤ 5 ms', undefined, 'not measured');
  }
}
const httpServers = (W.http?.servers ?? []) as HttpServer[];
{
  const get = (id: string) => httpServers.find((s) => s.id === id && s.rps);
  const ev = get('evpoll');
  const nginx = get('nginx');
  const nodeNet = get('node-net');
  const rr = (a?: HttpServer, b?: HttpServer) =>
    a && b ? pairedRatio(a.runs?.map((r) => r.rps), b.runs?.map((r) => r.rps), a.rps!.median, b.rps!.median) : undefined;
  const r1 = rr(ev, nginx);
  target('http pinned: ≥ 1.0× nginx\'s requests/s', r1 === undefined ? undefined : r1 >= 1,
    r1 === undefined ? 'not measured' : `${fmt(r1)}× (medians ${fmt(ev!.rps!.median)} vs ${fmt(nginx!.rps!.median)} req/s)`);
  const r2 = rr(ev, nodeNet);
  target('http pinned: ≥ 1.15× the Node net responder\'s requests/s', r2 === undefined ? undefined : r2 >= 1.15,
    r2 === undefined ? 'not measured' : `${fmt(r2)}× (medians ${fmt(ev!.rps!.median)} vs ${fmt(nodeNet!.rps!.median)} req/s)`);
  if (ev && nginx && nodeNet) {
    const cpu = (x: HttpServer) => x.runs?.map((r) => r.cpuUsPerRequest);
    const c = ev.cpuUsPerRequest!.median;
    const vsNginx = pairedRatio(cpu(ev), cpu(nginx), c, nginx.cpuUsPerRequest!.median);
    const vsNet = pairedRatio(cpu(ev), cpu(nodeNet), c, nodeNet.cpuUsPerRequest!.median);
    target('http pinned: less server CPU per request than nginx and Node net', vsNginx < 1 && vsNet < 1,
      `${fmt(vsNginx)}× nginx's, ${fmt(vsNet)}× Node net's (medians ${fmt(c)} vs ${fmt(nginx.cpuUsPerRequest!.median)} and ${fmt(nodeNet.cpuUsPerRequest!.median)} µs)`);
  } else target('http pinned: less server CPU per request than nginx and Node net', undefined, 'not measured');
}
const scaleSeries = (W.scale?.series ?? []) as ScaleSeries[];
{
  const ep = scaleSeries.find((s) => s.mechanism === 'epoll');
  if (ep && ep.points.length >= 2) {
    const meds = ep.points.map((p) => p.median);
    const first = ep.points[0];
    const last = ep.points[ep.points.length - 1];
    const spread = Math.max(...meds) / Math.min(...meds);
    target(`scale: epoll's iteration cost flat within 1.5× from N=${first.idle} to N=${last.idle}`, spread <= 1.5,
      `${fmt(first.median / 1000)} → ${fmt(last.median / 1000)} µs; max/min over all N ${fmt(spread)}×`);
  } else target('scale: epoll\'s iteration cost flat within 1.5× from N=10 to N=19000', undefined, 'not measured');
}
const acceptCells = (W.accept?.cells ?? []) as AcceptCell[];
const acceptCell = (mechanism: string, accept: string, load: string) =>
  acceptCells.find((c) => c.mechanism === mechanism && c.accept === accept && c.load === load && c.rps);
/** A cell's requests/s over none's (same mechanism and load), repeat by repeat. */
function vsNone(c: AcceptCell): number | undefined {
  const none = acceptCell(c.mechanism, 'none', c.load);
  if (!none || !c.rps) return undefined;
  return pairedRatio(c.runs?.map((r) => r.rps), none.runs?.map((r) => r.rps), c.rps.median, none.rps!.median);
}
/** A spread summary as text: a worker that got nothing makes it infinite. */
const spreadText = (c: AcceptCell) => (c.spread ? `${fmt(c.spread.median)}×` : '∞');
{
  const cells = acceptCells.filter((c) => c.rps);
  const wake = cells.filter((c) => c.mechanism === 'poll' && (c.accept === 'mutex' || c.accept === 'reuseport'));
  const what1 = 'accept: mutex and reuseport on poll: ≤ 1.2 listener wake-ups per accepted connection';
  if (wake.length) {
    const none = cells.filter((c) => c.mechanism === 'poll' && c.accept === 'none');
    const list = (cs: AcceptCell[]) => cs.map((c) => `${c.accept} ${c.load} ${fmt(c.wakeupsPerConnection!.median)} (sleeps/request ${fmt(c.sleepsPerRequest!.median)})`).join(', ');
    target(what1, wake.every((c) => c.wakeupsPerConnection!.median <= 1.2), `${list(wake)}; none: ${list(none)}`);
  } else target(what1, undefined, 'not measured');
  const capped = cells.filter((c) => c.load === 'keep-alive' && c.accept !== 'reuseport');
  const what2 = `accept: keep-alive spread ≤ 1.5× with --worker-connections ${W.accept?.workerConnections ?? 56} (accept_disabled: exclusive, mutex, none)`;
  if (capped.length) {
    const reuse = cells.filter((c) => c.load === 'keep-alive' && c.accept === 'reuseport');
    target(what2, capped.every((c) => c.spread && c.spread.median <= 1.5),
      `${capped.map((c) => `${c.mechanism} ${c.accept} ${spreadText(c)}`).join(', ')}; reuseport (the kernel's hash, no accept_disabled): ${reuse.map((c) => `${c.mechanism} ${spreadText(c)}`).join(', ')}`);
  } else target(what2, undefined, 'not measured');
  const others = cells.filter((c) => c.accept !== 'none' && vsNone(c) !== undefined);
  const what3 = "accept: every mode's requests/s ≥ 0.9× none's (same mechanism and load)";
  if (others.length) {
    target(what3, others.every((c) => vsNone(c)! >= 0.9), others.map((c) => `${c.mechanism} ${c.load} ${c.accept} ${fmt(vsNone(c)!)}×`).join(', '));
  } else target(what3, undefined, 'not measured');
}
const coreSides = (W.core?.sides ?? []) as CoreSide[];
{
  const wasm = coreSides.find((s) => s.id === 'wasm');
  const js = coreSides.find((s) => s.id === 'js');
  if (wasm && js) {
    const slower = Object.keys(wasm.ops).filter((op) => js.ops[op].median / wasm.ops[op].median < 1);
    const figures = Object.keys(wasm.ops).map((op) => `${op} ${fmt(js.ops[op].median / wasm.ops[op].median)}×`).join(', ');
    target('core: the wasm core at least as fast as the JS typed-array yardstick on every operation', slower.length === 0,
      `yardstick time / wasm time: ${figures}${slower.length ? ` — slower on ${slower.join(', ')}` : ''}`);
  } else target('core: the wasm core at least as fast as the JS typed-array yardstick on every operation', undefined, 'not measured');
}

// ---- the report ----------------------------------------------------------------------------------

push('# evpoll benchmarks', '');
push(`Machine: ${machineLine(latest.machine)}${W.chain?.libevent ? `; libevent ${W.chain.libevent}` : ''}.`, '');
const dates = Object.entries(W).map(
  ([k, v]) =>
    `${k} ${String(v.date).slice(0, 16).replace('T', ' ')} UTC${v.quick ? ' (--quick)' : ''}` +
    (typeof v.otherLoad === 'number' ? ` (other processes: ${(v.otherLoad * 100).toFixed(0)}% of the machine)` : '') +
    (v.machine?.commit && v.machine.commit !== latest.machine?.commit ? ` on ${v.machine.commit}` : ''),
);
push(`Measured: ${dates.join(', ')}. Generated by \`npm run bench\` (bench/report.ts) from bench/results/latest.json; each side of a workload measured in the same run, alternating. Medians, with min–max. The machine may be shared: "other processes" is the share of all CPU time that processes outside the benchmark used while a workload ran; a measurement (a chain round of every side, a timers case, a scale or core process) during which other processes ran and no CPU was left idle is taken again, within a budget, and the least disturbed take kept.`, '');
if (Object.values(W).some((v) => v.quick)) push('**Some workloads ran with `--quick` (fewer runs): their figures are rougher.**', '');
if (existsSync(join(resultsDir, 'analysis.md'))) push('Where the time goes, for the targets missed: [analysis.md](analysis.md).', '');

push('## Targets (issues 4 and 13)', '', '| target | figure | |', '|---|---|---|');
for (const t of targets) push(`| ${t.what} | ${t.figure} | ${t.met === undefined ? 'not measured' : t.met ? '**met**' : '**missed**'} |`);
push('');

if (chainSets.length) {
  push('## chain — libevent\'s pipe chain, µs per event', '');
  push(`n socketpairs with a persistent READ event each, a chains in flight, w = n writes; only the dispatch is timed; ${W.chain.runs} runs per side, alternated run by run, each side in its own process (fresh processes every quarter of the runs), after a warm-up of ~20,000 events. "JS + evpoll backend, no core" is a diagnostic floor: evpoll's native epoll backend and fd helpers called straight from JS, without the WebAssembly core and the loop. Ratios are this side's time over the anchor's (below 1: faster than the anchor), the median of the run-by-run ratios (the machine has slow phases that last a dozen runs; a pair of runs taken together shares its phase).`, '');
  // A partial re-run (`-- chain --mechanism poll`) replaces some sides of a set only.
  const mixed = chainSets.filter((set) => new Set(set.sides.map((x) => (x.date ?? '').slice(0, 16))).size > 1);
  if (mixed.length) {
    push(`**Partial re-runs: the sides of ${mixed.map((set) => `n=${set.n} a=${set.a}`).join(', ')} were measured at different times (see latest.json); ratios between sides of different runs are rougher.**`, '');
  }
  push('![chain: µs per event by side and mechanism](chain.svg)', '');
  for (const set of chainSets) {
    push(`### n=${set.n} a=${set.a} w=${set.w}`, '');
    push('| side | backend | median µs/event | min–max | / libevent (same backend) | / raw C epoll | / Node net | / npm epoll |', '|---|---|---|---|---|---|---|---|');
    const vs = (s: ChainSide, id: string) => {
      const a = side(set, id);
      return a ? `${fmt(chainRatio(s, a))}×` : '—';
    };
    for (const s of [...set.sides].sort((a, b) => sideRank(a) - sideRank(b))) {
      if (s.median === undefined) {
        push(`| ${s.label} | ${s.mechanism} | failed: ${s.error ?? 'no result'} | | | | | |`);
        continue;
      }
      push(
        `| ${s.label} | ${s.mechanism} | ${fmt(s.median)} | ${range(s)} | ${s.id === `libevent-${s.mechanism}` ? '1' : vs(s, `libevent-${s.mechanism}`)} | ` +
          `${vs(s, 'c-epoll')} | ${vs(s, 'node-net')} | ${vs(s, 'npm-epoll')} |`,
      );
    }
    for (const note of set.notes) push('', `- ${note}`);
    push('');
  }
}

if (timerSides.length) {
  const t = W.timers;
  push('## timers — 1,000,000 timers', '');
  push(`Cancel: ${t.count.toLocaleString('en-US')} timers of random durations 1..60000 ms scheduled, then all cancelled. Fire: ${t.count.toLocaleString('en-US')} of random 0..1000 ms scheduled, then run until all fired; lateness = firing time − (time asked + duration). "Due after scheduling": the timers whose due time came after the last one was scheduled. Median of ${t.repeats} repeat(s), each case in a fresh process, sides alternating.`, '');
  const node = timerSides.find((s) => s.id === 'node');
  const nodeTotal = node ? node.cancel.scheduleMs.median + node.cancel.cancelMs.median : undefined;
  push('| side | schedule 1M (ms) | cancel 1M (ms) | schedule+cancel (ms) | Node / this |', '|---|---|---|---|---|');
  for (const s of timerSides) {
    const total = s.cancel.scheduleMs.median + s.cancel.cancelMs.median;
    const vsNode = node && nodeTotal !== undefined ? `${fmt(pairedRatio(totals(node), totals(s), nodeTotal, total))}×` : '—';
    push(`| ${s.label} | ${med(s.cancel.scheduleMs)} (${range(s.cancel.scheduleMs)}) | ${med(s.cancel.cancelMs)} (${range(s.cancel.cancelMs)}) | ${fmt(total)} | ${vsNode} |`);
  }
  push('');
  push('| side | schedule (ms) | until all fired (ms) | late mean (ms) | late p99 (ms) | due after scheduling | their late mean (ms) | their p99 (ms) |', '|---|---|---|---|---|---|---|---|');
  for (const s of timerSides) {
    const f = s.fire;
    push(`| ${s.label} | ${med(f.scheduleMs)} | ${med(f.wallMs)} | ${med(f.lateMeanMs)} | ${med(f.lateP99Ms)} | ${Math.round(f.afterCount.median).toLocaleString('en-US')} | ${med(f.afterMeanMs)} | ${med(f.afterP99Ms)} (${range(f.afterP99Ms)}) |`);
  }
  push('');
}

if (httpServers.length) {
  const h = W.http;
  push('## http — hello over keep-alive, pinned', '');
  push(`wrk -t1 -c${h.connections} -d${h.seconds}s on CPU ${h.loaderCpu}, the server on CPU ${h.serverCpu} (taskset); 1 s of warm-up load first; a run with failed requests or with other processes taking more than 20% of the server's CPU is measured again (twice at most) and the least disturbed kept; server CPU = utime+stime from /proc/PID/stat over the server's processes (evpoll: master + its 1 worker; nginx: master + its 1 worker) during the run, over the requests served — the network stack's softirq work is charged to no process and not counted. Median of ${h.repeats} repeat(s), servers alternating; ratios are medians of the repeat-by-repeat ratios.`, '');
  const get = (id: string) => httpServers.find((s) => s.id === id && s.rps);
  push('| server | requests/s | min–max | / nginx | / Node net | server CPU µs/request | min–max | others on the server\'s CPU |', '|---|---|---|---|---|---|---|---|');
  for (const s of httpServers) {
    if (!s.rps) {
      push(`| ${s.label} | failed: ${s.error ?? ''} | | | | | | |`);
      continue;
    }
    const others = (s.runs ?? []).map((r) => `${Math.round((r.othersOnServerCpu ?? 0) * 100)}%`).join(', ');
    const vsServer = (id: string) => {
      const o = get(id);
      return o ? `${fmt(pairedRatio(s.runs?.map((r) => r.rps), o.runs?.map((r) => r.rps), s.rps!.median, o.rps!.median))}×` : '—';
    };
    push(`| ${s.label} | ${fmt(s.rps.median)} | ${range(s.rps)} | ${vsServer('nginx')} | ${vsServer('node-net')} | ${med(s.cpuUsPerRequest)} | ${range(s.cpuUsPerRequest)} | ${others} |`);
  }
  push('');
}

if (acceptCells.length) {
  const a = W.accept;
  push("## accept — the server's --accept modes, 4 workers pinned to one CPU", '');
  push(`examples/server with ${a.workers} workers (and its master) on CPU ${a.serverCpu}, wrk -t1 on CPU ${a.loaderCpu} (taskset), on epoll and poll, for each --accept mode (exclusive on epoll only: poll has no exclusive wake-ups, which makes it none). close: wrk -c${a.closeConnections} -H 'Connection: close', a new connection per request. keep-alive: wrk -c${a.keepAliveConnections}, the connections held for the run, each worker capped at --worker-connections ${a.workerConnections} (7/8 of it, ${Math.floor(a.workerConnections - a.workerConnections / 8)}, is just under ${a.keepAliveConnections}/${a.workers}: a worker taking more than its share yields accept turns; not with reuseport, whose sockets are the workers' own). ${a.warmupSeconds} s of warm-up load, then ${a.seconds} s measured; median of ${a.repeats} repeat(s), cells alternating; a run during which other processes took more than 20% of the server's CPU or of wrk's is measured again (twice at most) and the least disturbed kept. Listener wake-ups: the listener's callbacks per connection accepted, summed over the workers (their accept counts as the master prints them at a graceful stop after the run, warm-up included); wasted: callbacks that accepted nothing. Sleeps: the workers' voluntary context switches during the run per request — with poll a worker woken for a connection another worker has taken already goes back to sleep inside poll() without returning, so the herd shows there and not in the callbacks. Spread: max/min over the workers of the connections each accepted (close) or held halfway through the run (keep-alive, from /proc/PID/fd); ∞: a worker got none. Server CPU: utime+stime of master and workers during the run, per request. / none: requests/s over none's, the median of the repeat-by-repeat ratios.`, '');
  push('| mechanism | load | accept | requests/s | min–max | / none | server CPU µs/request | listener wake-ups / connection | wasted / connection | worker sleeps / request | spread | per worker (last run) |', '|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of acceptCells) {
    if (!c.rps) {
      push(`| ${c.mechanism} | ${c.load} | ${c.accept} | failed: ${c.error ?? ''} | | | | | | | | |`);
      continue;
    }
    const r = vsNone(c);
    const last = c.runs?.at(-1)?.workers.map((w) => (c.load === 'keep-alive' ? w.open ?? '?' : w.accepted)).join(' / ') ?? '';
    push(`| ${c.mechanism} | ${c.load} | ${c.accept} | ${fmt(c.rps.median)} | ${range(c.rps)} | ${c.accept === 'none' ? '1' : r === undefined ? '—' : `${fmt(r)}×`} | ${med(c.cpuUsPerRequest)} | ${med(c.wakeupsPerConnection)} | ${med(c.wastedPerConnection)} | ${med(c.sleepsPerRequest)} | ${spreadText(c)} | ${last} |`);
  }
  push('');
}

const pmModes = (W.pm?.modes ?? []) as (Omit<PmModeSummary, 'runs'> & { runs?: { samples: { t: number; workers: number }[]; stepAt: number; loadSeconds: number }[] })[];
if (pmModes.length) {
  const p = W.pm as PmSetup;
  push('## pm — the process manager\'s modes under a load step', '');
  push(`${pmTable(pmModes, p).join('\n')}`, '');
  push(`Workers: the master's child processes (/proc); RSS: their VmRSS. Requests/s and latencies: over the load, from the clients (connect to the server's close), the pool's ramp after the step included: that is what starting small costs.`, '');
  push('![pm: workers over time under a load step](pm.svg)', '');
}

if (scaleSeries.length) {
  push('## scale — one runOnce(0) with 1 active and N idle fds, µs', '');
  push('![scale: µs per iteration against idle fds](scale.svg)', '');
  const ns = [...new Set(scaleSeries.flatMap((s) => s.points.map((p) => p.n)))].sort((a, b) => a - b);
  push(`| mechanism | ${ns.map((n) => `N=${n}`).join(' | ')} |`, `|---|${ns.map(() => '---').join('|')}|`);
  for (const s of scaleSeries) {
    const cells = ns.map((n) => {
      const p = s.points.find((q) => q.n === n);
      if (!p) return s.mechanism === 'select' ? 'n/a (FD_SETSIZE)' : '—';
      return `${fmt(p.median / 1000)} (${range(p, 1e-3)})${p.idle !== p.n ? ` at N=${p.idle}` : ''}`;
    });
    push(`| ${s.mechanism} | ${cells.join(' | ')} |`);
  }
  push('', 'select: not applicable above FD_SETSIZE (1024) fds.', '');
}

if (coreSides.length) {
  const c = W.core;
  const [wasm, js] = [coreSides.find((s) => s.id === 'wasm')!, coreSides.find((s) => s.id === 'js')!];
  push('## core — the WebAssembly core alone vs the JS typed-array yardstick, ns per operation', '');
  push(`${c.timers.toLocaleString('en-US')} timers, ${c.fds.toLocaleString('en-US')} fds; collect() of ${c.fds.toLocaleString('en-US')} ready records repeated ${c.collectRepeats}×. The yardstick (bench/js-core.ts) is the same algorithm over JS typed arrays. Speed ratio = yardstick time / wasm time (≥ 1: wasm at least as fast).`, '');
  push('| operation | wasm ns | min–max | JS ns | min–max | speed ratio |', '|---|---|---|---|---|---|');
  for (const op of Object.keys(wasm.ops)) {
    push(`| ${op} | ${med(wasm.ops[op])} | ${range(wasm.ops[op])} | ${med(js.ops[op])} | ${range(js.ops[op])} | ${fmt(js.ops[op].median / wasm.ops[op].median)}× |`);
  }
  push('');
}

writeFileSync(join(resultsDir, 'report.md'), out.join('\n') + '\n');

// ---- charts -----------------------------------------------------------------------------------

const COLORS: Record<string, string> = {
  'evpoll run()': '#1f6feb',
  'evpoll start()': '#79b8ff',
  libevent: '#d73a49',
  'raw C epoll': '#6a737d',
  'JS + evpoll backend': '#b392f0',
  'Node net': '#2ea043',
  'npm epoll': '#e36209',
};
const colorOf = (s: ChainSide) =>
  s.id.startsWith('evpoll-run') ? COLORS['evpoll run()']
  : s.id.startsWith('evpoll-start') ? COLORS['evpoll start()']
  : s.id.startsWith('libevent') ? COLORS.libevent
  : s.id === 'c-epoll' ? COLORS['raw C epoll']
  : s.id === 'js-native' ? COLORS['JS + evpoll backend']
  : s.id === 'node-net' ? COLORS['Node net']
  : COLORS['npm epoll'];
if (chainSets.length) {
  const panels: Panel[] = chainSets.map((set) => ({
    title: `n=${set.n} a=${set.a}`,
    bars: set.sides
      .filter((s) => s.median !== undefined)
      .sort((a, b) => sideRank(a) - sideRank(b))
      .map((s) => ({ label: s.id === 'node-net' ? 'Node net.Socket (epoll)' : s.id === 'npm-epoll' ? 'npm epoll (epoll)' : s.label, value: s.median!, color: colorOf(s) })),
    note: set.notes.find((n) => n.startsWith('select')),
  }));
  const legend = Object.entries(COLORS).map(([label, color]) => ({ label, color }));
  writeFileSync(
    join(resultsDir, 'chain.svg'),
    barPanels('chain: µs per event (median), by side and mechanism', 'µs per event (medians; report.md compares sides by run-by-run ratios)', panels, legend),
  );
}
if (scaleSeries.length) {
  const colors: Record<string, string> = { epoll: '#1f6feb', poll: '#d73a49', select: '#2ea043' };
  writeFileSync(
    join(resultsDir, 'scale.svg'),
    logLogChart(
      'scale: one runOnce(0), 1 active fd + N idle (median)',
      'idle fds N (log)',
      'µs per iteration (log)',
      scaleSeries.map((s) => ({ label: s.mechanism, color: colors[s.mechanism] ?? '#333', points: s.points.map((p) => ({ x: p.idle, y: p.median / 1000 })) })),
    ),
  );
}

const pmCharted = pmModes.filter((m) => m.runs?.length);
if (pmCharted.length) {
  const p = W.pm as PmSetup;
  const styles: Record<string, { color: string; dash?: string }> = {
    static: { color: '#6a737d' },
    dynamic: { color: '#1f6feb', dash: '7 3' },
    ondemand: { color: '#e36209', dash: '2 2' },
  };
  writeFileSync(
    join(resultsDir, 'pm.svg'),
    timeChart(
      `pm: workers over time, --max-children ${p.maxChildren}, under a load step${p.repeats > 1 ? ' (last run)' : ''}`,
      'seconds',
      'worker processes',
      pmCharted.map((m) => ({
        label: m.mode,
        ...(styles[m.mode] ?? { color: '#333' }),
        points: m.runs!.at(-1)!.samples.map((s) => ({ x: s.t, y: s.workers })),
      })),
      [{ from: pmCharted[0].runs!.at(-1)!.stepAt, to: pmCharted[0].runs!.at(-1)!.stepAt + pmCharted[0].runs!.at(-1)!.loadSeconds, label: `${p.clients} clients × GET /busy?ms=${p.busyMs}` }],
    ),
  );
}

console.log(`report: bench/results/report.md${chainSets.length ? ', chain.svg' : ''}${scaleSeries.length ? ', scale.svg' : ''}${pmCharted.length ? ', pm.svg' : ''}`);
for (const t of targets) console.log(`  ${t.met === undefined ? 'not measured' : t.met ? 'met   ' : 'MISSED'}  ${t.what}: ${t.figure}`);
