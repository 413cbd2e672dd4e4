// The WebAssembly core on its own (its debug build, dist/core-debug.wasm: the release code with a
// few more exports; no backend, no Events), against the same algorithm over plain JS typed arrays
// (bench/js-core.ts). Per operation, ns:
//   add       timerAdd of M timers with random durations 1..60000 ms
//   next      the ms until the earliest of M queued timers (nextTimeout()'s answer): the wasm side
//             reads the earliest deadline from the core's shared words, as src/loop.ts does,
//             and does its arithmetic in JS (timeoutUntil(), as the loop does); the yardstick calls its nextTimeout()
//   cancel    release() of those M timers, in random order
//   pop       collect() of M due timers in one call (per timer: a dispatch entry, and a heap pop
//             for the first sixteenth; the rest are taken at once: partition, sort, rebuild)
//   watch     watch() of W fds (one Event each)
//   collect   collect() of W ready records, each fanned out to its fd's Event (per record)
//   unwatch   release() of those W fd Events
// Each side runs in its own process (so every call site stays monomorphic); the sides
// alternate round by round; each process does WARMUP untimed passes first (memory grown, and
// the driver's own JIT settled: its first passes deoptimise and re-optimise as each phase is
// reached, and unoptimised JS calls into WebAssembly through a slower generic path).
//
// npm run bench -- core [--timers 100000] [--fds 10000] [--rounds 3] [--quick]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { instantiateCore, timeoutUntil, type DebugCoreExports } from '../src/core.js';
import { JsCore } from './js-core.js';
import { summarize, fmt } from './stats.js';
import { saveWorkload } from './results.js';
import { markLoad, leastDisturbed, RetryBudget } from './load.js';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    timers: { type: 'string' },
    fds: { type: 'string' },
    passes: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

export const OPS = ['add', 'next', 'cancel', 'pop', 'watch', 'collect', 'unwatch'] as const;
type Op = (typeof OPS)[number];
type Pass = Record<Op, number>;

const READ = 2;
const COLLECT_REPEATS = 20;
const WARMUP = 3;

function inputs(m: number) {
  const freq = new Float64Array(m);
  const order = new Int32Array(m);
  let a = 12345;
  const rand = () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 4294967296;
  };
  for (let i = 0; i < m; i++) {
    freq[i] = 1 + Math.floor(rand() * 60000);
    order[i] = i;
  }
  for (let i = m - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return { freq, order };
}

const now = () => process.hrtime.bigint();
const nsPer = (t0: bigint, count: number) => Number(now() - t0) / count;

/** One pass over the WebAssembly core. Written out twice (here and below) on purpose: one call site per side. */
function wasmPass(core: DebugCoreExports, m: number, w: number): Pass {
  const { freq, order } = inputs(m);
  const slots = new Int32Array(m);
  const r = {} as Pass;
  let t = now();
  for (let i = 0; i < m; i++) slots[i] = core.timerAdd(0, freq[i], 0);
  r.add = nsPer(t, m);
  let sink = 0;
  const sharedAt = core.sharedPtr(); // first: it may grow the memory
  const shared = new Float64Array(core.memory.buffer, sharedAt, 3);
  t = now();
  for (let i = 0; i < m; i++) sink += timeoutUntil(shared[2], i & 1023);
  r.next = nsPer(t, m);
  if (timeoutUntil(shared[2], 5) !== core.nextTimeout(5)) throw new Error('next: the shared words disagree with nextTimeout()');
  t = now();
  for (let i = 0; i < m; i++) core.release(slots[order[i]]);
  r.cancel = nsPer(t, m);
  core.collect(0, 0); // retired slots back to the free list
  for (let i = 0; i < m; i++) core.timerAdd(0, freq[i], 0);
  t = now();
  const popped = core.collect(1e12, 0);
  r.pop = nsPer(t, m);
  if (popped !== m) throw new Error(`pop: ${popped} of ${m}`);
  core.collect(0, 0);
  const fdSlots = new Int32Array(w);
  const gens = new Int32Array(w);
  t = now();
  for (let fd = 0; fd < w; fd++) {
    fdSlots[fd] = core.watch(fd, READ);
    gens[fd] = core.lastOpGen();
  }
  r.watch = nsPer(t, w);
  while (core.readyCapacity() < w) core.growReady();
  const rec = new Int32Array(core.memory.buffer, core.readyPtr(), 3 * w);
  for (let fd = 0; fd < w; fd++) {
    rec[3 * fd] = fd;
    rec[3 * fd + 1] = gens[fd];
    rec[3 * fd + 2] = READ;
  }
  t = now();
  for (let k = 0; k < COLLECT_REPEATS; k++) sink += core.collect(0, w);
  r.collect = nsPer(t, COLLECT_REPEATS * w);
  t = now();
  for (let fd = 0; fd < w; fd++) core.release(fdSlots[fd]);
  r.unwatch = nsPer(t, w);
  core.collect(0, 0);
  if (sink === -1) console.log(sink);
  return r;
}

/** The same pass over the JS typed-array yardstick. */
function jsPass(core: JsCore, m: number, w: number): Pass {
  const { freq, order } = inputs(m);
  const slots = new Int32Array(m);
  const r = {} as Pass;
  let t = now();
  for (let i = 0; i < m; i++) slots[i] = core.timerAdd(0, freq[i], 0);
  r.add = nsPer(t, m);
  let sink = 0;
  t = now();
  for (let i = 0; i < m; i++) sink += core.nextTimeout(i & 1023);
  r.next = nsPer(t, m);
  t = now();
  for (let i = 0; i < m; i++) core.release(slots[order[i]]);
  r.cancel = nsPer(t, m);
  core.collect(0, 0);
  for (let i = 0; i < m; i++) core.timerAdd(0, freq[i], 0);
  t = now();
  const popped = core.collect(1e12, 0);
  r.pop = nsPer(t, m);
  if (popped !== m) throw new Error(`pop: ${popped} of ${m}`);
  core.collect(0, 0);
  const fdSlots = new Int32Array(w);
  t = now();
  for (let fd = 0; fd < w; fd++) fdSlots[fd] = core.watch(fd, READ);
  r.watch = nsPer(t, w);
  core.ensureReady(w);
  const rec = core.ready;
  for (let fd = 0; fd < w; fd++) {
    rec[3 * fd] = fd;
    rec[3 * fd + 1] = core.generation(fd);
    rec[3 * fd + 2] = READ;
  }
  t = now();
  for (let k = 0; k < COLLECT_REPEATS; k++) sink += core.collect(0, w);
  r.collect = nsPer(t, COLLECT_REPEATS * w);
  t = now();
  for (let fd = 0; fd < w; fd++) core.release(fdSlots[fd]);
  r.unwatch = nsPer(t, w);
  core.collect(0, 0);
  if (sink === -1) console.log(sink);
  return r;
}

function child(side: string): Pass[] {
  const m = Number(values.timers);
  const w = Number(values.fds);
  const passes = Number(values.passes);
  const out: Pass[] = [];
  if (side === 'wasm') {
    const core = instantiateCore('dist/core-debug.wasm');
    for (let p = 0; p < WARMUP; p++) wasmPass(core, m, w); // untimed: JIT, and the linear memory grown to size
    for (let p = 0; p < passes; p++) out.push(wasmPass(core, m, w));
  } else {
    const core = new JsCore();
    for (let p = 0; p < WARMUP; p++) jsPass(core, m, w);
    for (let p = 0; p < passes; p++) out.push(jsPass(core, m, w));
  }
  return out;
}

export interface CoreSide {
  id: string;
  label: string;
  ops: Record<Op, { median: number; min: number; max: number; runs: number }>;
}

async function orchestrate(): Promise<void> {
  const mark = markLoad();
  const retries = new RetryBudget(2);
  const self = fileURLToPath(import.meta.url);
  const quick = values.quick!;
  const m = Number(values.timers ?? 100_000);
  const w = Number(values.fds ?? 10_000);
  const rounds = Number(values.rounds ?? (quick ? 2 : 5));
  const passes = Number(values.passes ?? (quick ? 3 : 5));
  const sides = [
    { id: 'wasm', label: 'WebAssembly core' },
    { id: 'js', label: 'JS typed arrays' },
  ];
  const got = new Map<string, Pass[]>(sides.map((s) => [s.id, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < sides.length; k++) {
      const s = sides[(k + round) % sides.length];
      const { value: r } = await leastDisturbed(`core ${s.label}`, () =>
        spawnSync(process.execPath, [self, '--child', s.id, '--timers', String(m), '--fds', String(w), '--passes', String(passes)], {
          encoding: 'utf8',
          timeout: 300_000,
        }),
        retries,
      );
      if (r.status !== 0) throw new Error(`core ${s.id} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
      const passesOut = JSON.parse(r.stdout.trim().split('\n').pop()!) as Pass[];
      got.get(s.id)!.push(...passesOut);
      const med = (op: Op) => fmt(summarize(passesOut.map((p) => p[op])).median);
      console.log(`core ${s.label.padEnd(18)} round ${round + 1}/${rounds}: ` + OPS.map((op) => `${op} ${med(op)}`).join(', ') + ' ns');
    }
  }
  const results: CoreSide[] = sides.map((s) => ({
    id: s.id,
    label: s.label,
    ops: Object.fromEntries(OPS.map((op) => [op, summarize(got.get(s.id)!.map((p) => p[op]))])) as CoreSide['ops'],
  }));
  const [wasm, js] = results;
  for (const op of OPS) {
    const ratio = js.ops[op].median / wasm.ops[op].median;
    console.log(`core ${op.padEnd(8)} wasm ${fmt(wasm.ops[op].median).padStart(6)} ns, JS ${fmt(js.ops[op].median).padStart(6)} ns: wasm is ${fmt(ratio)}× the yardstick's speed`);
  }
  saveWorkload('core', quick, { timers: m, fds: w, collectRepeats: COLLECT_REPEATS, rounds, passesPerRound: passes, sides: results }, mark);
}

if (values.child) {
  process.stdout.write(JSON.stringify(child(values.child)) + '\n');
  process.exit(0);
} else {
  await orchestrate();
}
