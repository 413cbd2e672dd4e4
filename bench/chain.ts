// libevent's pipe-chain workload (the one of libevent's test/bench.c): n socketpairs, each
// with a persistent READ event; `a` chains started; each callback reads its byte and, while
// writes remain, writes one to pair (i + 1) mod n. Only the dispatch is timed; µs per event.
//
// Sides, each in its own process (several generations of them, see orchestrate()), alternated
// run by run so that a noisy neighbour or a frequency change hits them all alike:
//   evpoll run()/start() on each mechanism, libevent 2.1 (bench/c/chain-libevent.c) on the same
//   backend, raw C epoll (bench/c/chain-epoll.c, the floor), Node net.Socket streams over the
//   same kind of socketpairs, and the npm `epoll` package (4.x) with fs.readSync/writeSync;
//   plus a diagnostic side, JS over evpoll's native backend without the core (see nativeSide).
// A round of runs during which other processes took much of the machine is run again
// (bench/load.ts), within a budget.
//
// npm run bench -- chain [--mechanism epoll] [-n 1000 -a 100] [-w WRITES] [--runs 25] [--quick]
// (all three sets — n=100 a=1, n=1000 a=100, n=9975 a=100 — unless -n/-a name one)
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { readSync, writeSync } from 'node:fs';
import * as nodeNet from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventLoop, EV, mechanisms } from '../src/index.js';
import * as net from '../src/net.js';
import { addon } from '../src/native.js';
import { summarize, formatRow, fmt } from './stats.js';
import { saveWorkload, readLatest } from './results.js';
import { markLoad, loadSince, disturbed } from './load.js';
import { aptEnsure, compileC, npmEpoll, libeventVersion } from './setup.js';
import { SideProcess, serveSide } from './sides.js';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    mode: { type: 'string', default: 'run' },
    deps: { type: 'string' },
    mechanism: { type: 'string', multiple: true },
    n: { type: 'string', short: 'n' },
    a: { type: 'string', short: 'a' },
    w: { type: 'string', short: 'w' },
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

// ---------------------------------------------------------------------------------------------
// Children: one side each, kept alive by the orchestrator (bench/sides.ts's protocol).

interface ChainShape {
  n: number;
  active: number;
  writes: number;
}

/** A FixedBuffer's native read or write: (memory, fd, offset, length) -> bytes | -errno. */
type FixedOp = (memory: ArrayBuffer, fd: number, offset: number, length: number) => number;

/** µs per event of one timed run. */
type RunOnce = () => Promise<number> | number;

/** Untimed runs before the first timed one: enough events for the JIT to settle (~15,000 here). */
const WARMUP_EVENTS = 20_000;
const warmupRuns = (s: ChainShape) => Math.max(2, Math.ceil(WARMUP_EVENTS / (s.active + s.writes)));

function socketpairs(n: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) pairs.push(net.socketpair());
  return pairs;
}

const ONE = new Uint8Array([101]); // 'e'

/**
 * The chain's byte buffers as one net.FixedBuffer (registered memory: a read or write passes
 * three numbers, and the native side need not ask N-API what buffer it was given): byte 0 is
 * read into, byte 1 holds the 'e' every write sends. evpollSide and nativeSide both use it, so
 * that the two stay like for like.
 */
const READ_AT = 0, ONE_AT = 1;
function chainBuffer(): net.FixedBuffer {
  const io = new net.FixedBuffer(2);
  io.bytes[ONE_AT] = ONE[0];
  return io;
}

/** evpoll in run() mode (runOnce(0) until done, as bench.c's EVLOOP_NONBLOCK) or start() mode. */
function evpollSide(mechanism: string, mode: string, { n, active, writes }: ChainShape) {
  const loop = new EventLoop({ mechanism });
  const pairs = socketpairs(n);
  const io = chainBuffer();
  let left = 0;
  let fired = 0;
  let count = 0;
  let endedAt = 0n;
  let finish: (() => void) | undefined;
  const onRead = (_ev: unknown, _which: number, i: number) => {
    const got = io.read(pairs[i][0], READ_AT, 1);
    if (got > 0) count += got;
    if (left > 0) {
      left--;
      fired++;
      io.write(pairs[i + 1 === n ? 0 : i + 1][1], ONE_AT, 1);
    }
    if (count === fired && finish) {
      endedAt = process.hrtime.bigint();
      finish();
    }
  };
  const events = pairs.map(([r], i) => loop.event(r, EV.READ | EV.PERSIST, onRead, i));
  const space = Math.floor(n / active);
  const prepare = () => {
    // As bench.c: every event deleted and added again before each run (untimed).
    for (const ev of events) {
      ev.del();
      ev.add();
    }
    fired = active;
    for (let i = 0; i < active; i++) io.write(pairs[i * space][1], ONE_AT, 1);
    count = 0;
    left = writes;
  };
  const runMode: RunOnce = () => {
    prepare();
    const start = process.hrtime.bigint();
    do loop.runOnce(0);
    while (count !== fired);
    return Number(process.hrtime.bigint() - start) / 1000 / count;
  };
  // start(): from start() to the callback that reads the last byte.
  const startMode: RunOnce = async () => {
    prepare();
    const done = new Promise<void>((resolve) => (finish = resolve));
    const start = process.hrtime.bigint();
    loop.start();
    await done;
    finish = undefined;
    loop.stop();
    return Number(endedAt - start) / 1000 / count;
  };
  const close = () => {
    loop.close();
    for (const [a, b] of pairs) {
      net.close(a);
      net.close(b);
    }
  };
  return { runOnce: mode === 'start' ? startMode : runMode, close };
}

/**
 * A diagnostic floor for any Node binding: evpoll's own native epoll backend and fd helpers
 * called straight from JS — one wait per iteration into an ArrayBuffer, records walked in JS,
 * no WebAssembly core, no Events, no loop. evpoll run() minus this is what the loop machinery
 * costs; this minus raw C epoll is what N-API and JS cost. Its reads and writes are a
 * FixedBuffer's, as evpollSide's are (like for like), but its native functions called
 * directly, without the JS wrapper's argument checks.
 */
function nativeSide({ n, active, writes }: ChainShape) {
  const backend = new addon.Backend('epoll', 1 << 20);
  const fixed = addon as unknown as { fixedBuffer(size: number): ArrayBuffer; fixedRead: FixedOp; fixedWrite: FixedOp };
  const memory = fixed.fixedBuffer(2);
  const { fixedRead: read, fixedWrite: write } = fixed;
  new Uint8Array(memory)[ONE_AT] = ONE[0];
  const pairs = socketpairs(n);
  const indexOf = new Int32Array(2 * n + 1024).fill(-1);
  pairs.forEach(([r], i) => (indexOf[r] = i));
  const records = new Int32Array(3 * n);
  const space = Math.floor(n / active);
  const runOnce: RunOnce = () => {
    for (const [r] of pairs) {
      backend.remove(r);
      backend.add(r, EV.READ, 0);
    }
    let fired = active;
    for (let i = 0; i < active; i++) write(memory, pairs[i * space][1], ONE_AT, 1);
    let count = 0;
    let left = writes;
    const start = process.hrtime.bigint();
    do {
      const got = backend.wait(0, records.buffer, 0, n);
      for (let k = 0; k < got; k++) {
        const i = indexOf[records[3 * k]];
        const r = read(memory, pairs[i][0], READ_AT, 1);
        if (r > 0) count += r;
        if (left > 0) {
          left--;
          fired++;
          write(memory, pairs[i + 1 === n ? 0 : i + 1][1], ONE_AT, 1);
        }
      }
    } while (count !== fired);
    return Number(process.hrtime.bigint() - start) / 1000 / count;
  };
  const close = () => {
    backend.close();
    for (const [a, b] of pairs) {
      net.close(a);
      net.close(b);
    }
  };
  return { runOnce, close };
}

/** Node's own streams: net.Socket over each end (libuv's epoll underneath). */
function nodeNetSide({ n, active, writes }: ChainShape) {
  const pairs = socketpairs(n);
  let left = 0;
  let fired = 0;
  let count = 0;
  let endedAt = 0n;
  let finish: (() => void) | undefined;
  const writers = pairs.map(([, w]) => new nodeNet.Socket({ fd: w, readable: false, writable: true }));
  const readers = pairs.map(([r], i) => {
    const s = new nodeNet.Socket({ fd: r, readable: true, writable: false });
    const next = writers[i + 1 === n ? 0 : i + 1];
    s.on('data', (chunk: Buffer) => {
      // One write per byte read, as one callback per byte would do.
      for (let k = 0; k < chunk.length; k++) {
        count++;
        if (left > 0) {
          left--;
          fired++;
          next.write(ONE);
        }
      }
      if (count === fired && finish) {
        endedAt = process.hrtime.bigint();
        finish();
      }
    });
    return s;
  });
  const space = Math.floor(n / active);
  const runOnce: RunOnce = async () => {
    fired = active;
    count = 0;
    left = writes;
    const done = new Promise<void>((resolve) => (finish = resolve));
    for (let i = 0; i < active; i++) writers[i * space].write(ONE);
    const start = process.hrtime.bigint();
    await done;
    finish = undefined;
    return Number(endedAt - start) / 1000 / count;
  };
  const close = () => {
    for (const s of readers) s.destroy();
    for (const s of writers) s.destroy();
  };
  return { runOnce, close };
}

interface NpmEpoll {
  add(fd: number, events: number): void;
  remove(fd: number): void;
  close(): void;
}
interface NpmEpollModule {
  Epoll: { new (cb: (err: Error | null, fd: number, events: number) => void): NpmEpoll; EPOLLIN: number };
}

/** The npm `epoll` package: one watcher-thread round trip per event; fs.readSync / writeSync. */
function npmEpollSide(deps: string, { n, active, writes }: ChainShape) {
  const { Epoll } = createRequire(join(deps, 'package.json'))('epoll') as NpmEpollModule;
  const pairs = socketpairs(n);
  const indexOf = new Int32Array(2 * n + 1024).fill(-1);
  pairs.forEach(([r], i) => (indexOf[r] = i));
  const byte = Buffer.alloc(1);
  const one = Buffer.from('e');
  let left = 0;
  let fired = 0;
  let count = 0;
  let endedAt = 0n;
  let finish: (() => void) | undefined;
  const poller = new Epoll((err, fd) => {
    if (err) throw err;
    const i = indexOf[fd];
    count += readSync(fd, byte, 0, 1, null);
    if (left > 0) {
      left--;
      fired++;
      writeSync(pairs[i + 1 === n ? 0 : i + 1][1], one, 0, 1);
    }
    if (count === fired && finish) {
      endedAt = process.hrtime.bigint();
      finish();
    }
  });
  for (const [r] of pairs) poller.add(r, Epoll.EPOLLIN);
  const space = Math.floor(n / active);
  const runOnce: RunOnce = async () => {
    fired = active;
    count = 0;
    left = writes;
    const done = new Promise<void>((resolve) => (finish = resolve));
    for (let i = 0; i < active; i++) writeSync(pairs[i * space][1], one, 0, 1);
    const start = process.hrtime.bigint();
    await done;
    finish = undefined;
    return Number(endedAt - start) / 1000 / count;
  };
  const close = () => {
    for (const [r] of pairs) poller.remove(r);
    poller.close();
    for (const [a, b] of pairs) {
      net.close(a);
      net.close(b);
    }
  };
  return { runOnce, close };
}

async function child(kind: string): Promise<void> {
  const n = Number(values.n);
  const active = Number(values.a);
  const shape = { n, active, writes: values.w === undefined ? n : Number(values.w) };
  const side =
    kind === 'evpoll' ? evpollSide(values.mechanism?.[0] ?? 'epoll', values.mode!, shape)
    : kind === 'native' ? nativeSide(shape)
    : kind === 'node-net' ? nodeNetSide(shape)
    : kind === 'npm-epoll' ? npmEpollSide(values.deps!, shape)
    : undefined;
  if (!side) throw new Error(`unknown side ${kind}`);
  await serveSide(side.runOnce, warmupRuns(shape), side.close);
}

// ---------------------------------------------------------------------------------------------
// The orchestrator: every side of every set, alternated run by run.

export interface ChainSide {
  id: string;
  label: string;
  /** The OS mechanism underneath (Node net: libuv's epoll). */
  mechanism: string;
  samples: number[];
  /** When this side was measured (a partial re-run replaces some sides only). */
  date: string;
  median?: number;
  min?: number;
  max?: number;
  error?: string;
}

export interface ChainSet {
  n: number;
  a: number;
  w: number;
  sides: ChainSide[];
  notes: string[];
}

interface Plan {
  id: string;
  label: string;
  mechanism: string;
  cmd: string;
  args: (shape: ChainShape) => string[];
}

/** select's fd_set holds fds below FD_SETSIZE; Node itself has ~20 open. */
const FD_SETSIZE = 1024;
const selectFits = (n: number) => 2 * n + 40 <= FD_SETSIZE;

function plans(names: string[], self: string): { plans: Plan[]; notes: string[] } {
  const notes: string[] = [];
  const list: Plan[] = [];
  const shapeArgs = (s: ChainShape) => ['-n', String(s.n), '-a', String(s.active), '-w', String(s.writes)];
  const nodeArgs = (extra: string[]) => (s: ChainShape) => [self, '--child', ...extra, ...shapeArgs(s)];
  const cArgs = (extra: string[]) => (s: ChainShape) => [...extra, ...shapeArgs(s), '-W', String(warmupRuns(s))];
  const haveLibevent = aptEnsure('libevent-dev', 'the libevent 2.1 anchor of chain');
  const libevent = haveLibevent ? compileC('chain-libevent', ['-levent_core']) : null;
  const cEpoll = compileC('chain-epoll');
  for (const m of names) {
    for (const mode of ['run', 'start']) {
      list.push({ id: `evpoll-${mode}-${m}`, label: `evpoll ${mode}() ${m}`, mechanism: m, cmd: process.execPath, args: nodeArgs(['evpoll', '--mode', mode, '--mechanism', m]) });
    }
    if (libevent) {
      list.push({
        id: `libevent-${m}`, label: `libevent ${m}`, mechanism: m, cmd: libevent,
        args: cArgs(['-m', m]),
      });
    } else notes.push('libevent: not available (libevent-dev could not be installed or the program not built)');
  }
  if (names.includes('epoll')) {
    if (cEpoll) list.push({ id: 'c-epoll', label: 'raw C epoll', mechanism: 'epoll', cmd: cEpoll, args: cArgs([]) });
    list.push({ id: 'js-native', label: 'JS + evpoll backend, no core', mechanism: 'epoll', cmd: process.execPath, args: nodeArgs(['native']) });
    list.push({ id: 'node-net', label: 'Node net.Socket', mechanism: 'epoll', cmd: process.execPath, args: nodeArgs(['node-net']) });
    const deps = npmEpoll();
    if (deps) list.push({ id: 'npm-epoll', label: 'npm epoll 4.x', mechanism: 'epoll', cmd: process.execPath, args: nodeArgs(['npm-epoll', '--deps', deps]) });
    else notes.push('npm epoll: not available (npm install epoll@4 failed)');
  }
  return { plans: list, notes };
}

async function orchestrate(): Promise<void> {
  const mark = markLoad();
  const self = fileURLToPath(import.meta.url);
  const available = mechanisms().filter((m) => m.available).map((m) => m.name);
  const names = values.mechanism ?? available;
  const quick = values.quick!;
  const runs = Number(values.runs ?? (quick ? 7 : 25));
  const sets: { n: number; a: number; w?: number }[] =
    values.n !== undefined || values.a !== undefined
      ? [{ n: Number(values.n ?? 1000), a: Number(values.a ?? 100), w: values.w === undefined ? undefined : Number(values.w) }]
      : [{ n: 100, a: 1 }, { n: 1000, a: 100 }, { n: 9975, a: 100 }];
  const { plans: all, notes: setupNotes } = plans(names, self);
  const results: ChainSet[] = [];
  for (const set of sets) {
    const shape: ChainShape = { n: set.n, active: set.a, writes: set.w ?? set.n };
    const notes = [...setupNotes];
    const sides = all.filter((p) => p.mechanism !== 'select' || selectFits(shape.n));
    if (names.includes('select') && !selectFits(shape.n)) {
      notes.push(`select: not applicable — ${2 * shape.n} socket fds do not fit below FD_SETSIZE (${FD_SETSIZE})`);
    }
    console.log(`chain n=${shape.n} a=${shape.active} w=${shape.writes}: ${sides.length} sides, ${runs} runs each, alternated run by run`);
    const samples = new Map<string, number[]>(sides.map((p) => [p.id, []]));
    const errors = new Map<string, string>();
    // Every side sets up and warms up in its own process, then waits for "run 1". A process
    // keeps what it got at set-up (where its sockets landed in memory, its JIT's choices) for
    // life, and that alone moves a side's figure by 20% here: so each side's runs are spread over
    // several generations of processes, started afresh.
    const generations = Math.min(runs, quick ? 2 : 4);
    const t0 = Date.now();
    // A round (one run of every side) that other processes may have disturbed (they ran and no
    // CPU was left idle) is run again, within a budget; the least disturbed take is kept.
    let redoBudget = Math.ceil(runs / 5);
    let redone = 0;
    let run = 0;
    for (let g = 0; g < generations; g++) {
      const procs = new Map<string, SideProcess>();
      for (const p of sides) {
        if (errors.has(p.id)) continue;
        try {
          procs.set(p.id, await SideProcess.start(p.cmd, p.args(shape)));
        } catch (err) {
          errors.set(p.id, (err as Error).message);
          console.log(`  ${p.label}: failed to start: ${errors.get(p.id)}`);
        }
      }
      const until = Math.round(((g + 1) * runs) / generations);
      for (; run < until; run++) {
        let kept: Map<string, number> | undefined;
        let keptLoad = Infinity;
        for (;;) {
          const roundMark = markLoad();
          const got = new Map<string, number>();
          // Rotate the order each run, so that no side always comes first or last.
          for (let k = 0; k < sides.length; k++) {
            const p = sides[(k + run) % sides.length];
            const proc = procs.get(p.id);
            if (!proc || errors.has(p.id)) continue;
            try {
              got.set(p.id, (await proc.run(1))[0]);
            } catch (err) {
              errors.set(p.id, (err as Error).message);
              console.log(`  ${p.label}: failed: ${errors.get(p.id)}`);
            }
          }
          const load = loadSince(roundMark);
          if (load.others < keptLoad) {
            kept = got;
            keptLoad = load.others;
          }
          if (!disturbed(load) || redoBudget === 0) break;
          redoBudget--;
          redone++;
        }
        for (const [id, v] of kept!) samples.get(id)!.push(v);
        if ((run + 1) % 5 === 0 || run + 1 === runs) {
          console.log(
            `  run ${run + 1}/${runs} of every side (${((Date.now() - t0) / 1000).toFixed(1)} s, process generation ${g + 1}/${generations}` +
              `${redone ? `; ${redone} disturbed round${redone > 1 ? 's' : ''} run again` : ''})`,
          );
        }
      }
      await Promise.all([...procs.values()].map((p) => p.quit()));
    }
    const measured = new Date().toISOString();
    const sideResults: ChainSide[] = sides.map((p) => {
      const s = samples.get(p.id)!;
      const r: ChainSide = { id: p.id, label: p.label, mechanism: p.mechanism, date: measured, samples: s.map((x) => +x.toFixed(4)) };
      if (s.length) Object.assign(r, summarize(s));
      if (errors.has(p.id)) r.error = errors.get(p.id);
      return r;
    });
    for (const r of sideResults) {
      if (r.median === undefined) continue;
      const anchor = sideResults.find((x) => x.id === `libevent-${r.mechanism}`);
      // The median of run-by-run ratios: a pair of runs shares the machine's phase.
      const paired = anchor && anchor.samples.length === r.samples.length ? summarize(r.samples.map((x, i) => x / anchor.samples[i])).median : undefined;
      const vs = paired !== undefined && r.id !== anchor!.id ? `  ${fmt(paired)}× libevent ${r.mechanism}` : '';
      console.log(`  ${formatRow(r.label, summarize(samples.get(r.id)!), 'µs/event')}${vs}`);
    }
    for (const note of notes) console.log(`  note: ${note}`);
    results.push({ n: shape.n, a: shape.active, w: shape.writes, sides: sideResults, notes });
  }
  saveWorkload('chain', quick, { runs, libevent: libeventVersion(), sets: merged(results) }, mark);
}

/**
 * A run of some mechanisms or one set (`--mechanism poll`, `-n 1000 -a 100`) replaces only
 * those sides of those sets in latest.json; the rest of the previous results stay.
 */
function merged(fresh: ChainSet[]): ChainSet[] {
  const before = (readLatest().workloads.chain?.sets ?? []) as ChainSet[];
  const out = before.map((set) => ({ ...set, sides: [...set.sides], notes: [...set.notes] }));
  for (const set of fresh) {
    const old = out.find((s) => s.n === set.n && s.a === set.a && s.w === set.w);
    if (!old) {
      out.push(set);
      continue;
    }
    for (const side of set.sides) {
      const k = old.sides.findIndex((s) => s.id === side.id);
      if (k >= 0) old.sides[k] = side;
      else old.sides.push(side);
    }
    old.notes = [...new Set([...old.notes, ...set.notes])];
  }
  return out.sort((x, y) => x.n - y.n || x.a - y.a);
}

if (values.child) await child(values.child);
else await orchestrate();
