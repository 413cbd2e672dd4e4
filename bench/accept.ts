// The server's --accept modes (issue 13), pinned: examples/server with 4 workers on CPU 0, wrk
// on CPU 1, on epoll and on poll, each mode (exclusive on epoll only: poll has no exclusive
// wake-ups, which makes it none there), under two loads:
//
//   close       wrk -t1 -c50 -H 'Connection: close': a new connection per request
//   keep-alive  wrk -t1 -c200: 200 connections held for the whole run, each worker capped at
//               --worker-connections 56, whose 7/8 (49) is just under 200/4 = 50: a worker that
//               takes more than its share yields accept turns (nginx's accept_disabled; not
//               with reuseport, whose sockets are the workers' own)
//
// Each measurement: start the server, 1 s of warm-up load, the run; requests/s from wrk; server
// CPU = utime + stime from /proc/PID/stat over the master and its workers during the run, over
// the requests; then a graceful stop, after which the master prints each worker's accept counts
// (`worker PID accept: accepted=A wakeups=W wasted=X waits=Y`, warm-up included): listener
// wake-ups per accepted connection (W/A) and the wasted ones (X/A: woken, nothing accepted).
// Spread: close, max/min of the connections each worker accepted; keep-alive, max/min of the
// connections each worker holds halfway through the run (its sockets in /proc/PID/fd, less
// those it held before the load). Sleeps: the times the workers were woken during the run
// (voluntary context switches), per request: the herd's wake-ups that poll() swallows (a worker
// woken for a connection another has taken already goes back to sleep without returning) show
// only here. Cells alternate; the order turns each repeat. A run during which other
// processes took more than 20% of the server's CPU or of wrk's is measured again (twice at
// most, 8 times in all), and the least disturbed one kept.
//
// npm run bench -- accept [--repeats 4] [--duration 4] [--quick] [--only poll/mutex,none]
// (--only: a diagnostic run; its results are not saved, so the report keeps the full run's)
import { parseArgs } from 'node:util';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { summarize, fmt } from './stats.js';
import { outDir, saveWorkload } from './results.js';
import { markLoad, processTree, cpuTicks, cpuMark, foreignOnCpu } from './load.js';
import { aptEnsure } from './setup.js';

const { values } = parseArgs({
  options: {
    repeats: { type: 'string' },
    duration: { type: 'string' },
    quick: { type: 'boolean', default: false },
    /** Only the cells whose id (mechanism/accept/load) contains one of these, comma-separated. */
    only: { type: 'string' },
  },
});

const SERVER_CPU = '0';
const LOADER_CPU = '1';
const WORKERS = 4;
const WORKER_CONNECTIONS = 56;
const CLOSE_CONNECTIONS = 50;
const KEEP_ALIVE_CONNECTIONS = 200;
/** Other processes' share of the server's or wrk's CPU above which a run is measured again. */
const MAX_OTHERS = 0.2;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

type Load = 'close' | 'keep-alive';
interface Cell {
  mechanism: 'epoll' | 'poll';
  accept: 'exclusive' | 'mutex' | 'reuseport' | 'none';
  load: Load;
}

const CELLS: Cell[] = [];
for (const load of ['close', 'keep-alive'] as const) {
  for (const mechanism of ['epoll', 'poll'] as const) {
    for (const accept of ['exclusive', 'mutex', 'reuseport', 'none'] as const) {
      if (accept === 'exclusive' && mechanism !== 'epoll') continue;
      CELLS.push({ mechanism, accept, load });
    }
  }
}
const cellId = (c: Cell) => `${c.mechanism}/${c.accept}/${c.load}`;
if (values.only) {
  const wanted = values.only.split(',');
  CELLS.splice(0, CELLS.length, ...CELLS.filter((c) => wanted.some((w) => cellId(c).includes(w))));
}

interface WorkerCounts {
  pid: number;
  accepted: number;
  wakeups: number;
  wasted: number;
  waits: number;
  /** keep-alive: connections it held halfway through the run. */
  open?: number;
}

export interface AcceptRun {
  rps: number;
  requests: number;
  cpuUsPerRequest: number;
  wakeupsPerConnection: number;
  wastedPerConnection: number;
  /** Loop waits of all workers per request served (each wake-up of any kind). */
  waitsPerRequest: number;
  /** Times the workers were woken (voluntary context switches) during the run, per request. */
  sleepsPerRequest: number;
  /** max/min over the workers (Infinity when one got none). */
  spread: number;
  workers: WorkerCounts[];
  latencyAvg: string;
  errors: string;
  othersOnServerCpu: number;
  othersOnLoaderCpu: number;
}

/** The server: lines as they come, the 4 worker pids once ready, its port. */
class ServerProcess {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly workers: number[] = [];
  port = 0;
  #waiters: (() => void)[] = [];

  constructor(cell: Cell) {
    const args = [join(outDir, 'server-evpoll.mjs'), '--port', '0', '--workers', String(WORKERS), '--mechanism', cell.mechanism, '--accept', cell.accept, '--status-interval', '600000'];
    if (cell.load === 'keep-alive') args.push('--worker-connections', String(WORKER_CONNECTIONS), '--idle-timeout', '60000');
    this.proc = spawn('taskset', ['-c', SERVER_CPU, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let errors = '';
    this.proc.stderr!.on('data', (d) => (errors = (errors + d).slice(-2000)));
    this.proc.once('exit', () => this.#wake());
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      this.lines.push(line);
      const port = /^listening on http:\/\/[^:]+:(\d+)$/.exec(line)?.[1];
      if (port) this.port = Number(port);
      const ready = /^worker (\d+) ready$/.exec(line)?.[1];
      if (ready) this.workers.push(Number(ready));
      this.#wake();
    });
    this.errors = () => errors.trim();
  }

  errors: () => string;

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async until(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!done()) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null || Date.now() > end) {
        throw new Error(`server: ${what} did not happen (${this.errors() || this.lines.slice(-5).join(' | ')})`);
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** SIGTERM, then the workers' accept counts once the master has exited. */
  async stop(): Promise<WorkerCounts[]> {
    const tree = processTree(this.proc.pid!);
    const exited = new Promise((r) => (this.proc.exitCode !== null ? r(null) : this.proc.once('exit', r)));
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }, 20_000);
    await exited;
    clearTimeout(timer);
    // None left to take CPU 0 from the next cell.
    for (let i = 0; i < 100 && tree.slice(1).some((pid) => existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const counts: WorkerCounts[] = [];
    for (const line of this.lines) {
      const m = /^worker (\d+) accept: accepted=(\d+) wakeups=(\d+) wasted=(\d+) waits=(\d+)$/.exec(line);
      if (m) counts.push({ pid: Number(m[1]), accepted: Number(m[2]), wakeups: Number(m[3]), wasted: Number(m[4]), waits: Number(m[5]) });
    }
    return counts;
  }
}

/**
 * Times process `pid` went to sleep and was woken (voluntary context switches, /proc/PID/status):
 * a worker woken with the herd that finds the listener's backlog empty again goes back to sleep
 * inside poll() without returning to the loop, so only this counts that wake-up.
 */
function sleeps(pid: number): number {
  try {
    return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The sockets process `pid` holds (listeners, its control socket and connections). */
function sockets(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    }).length;
  } catch {
    return 0;
  }
}

interface WrkResult {
  requests: number;
  rps: number;
  latencyAvg: string;
  errors: string;
  /** Share of the loader's CPU that other processes used while wrk ran. */
  othersOnLoaderCpu: number;
}

function wrk(port: number, load: Load, seconds: number, halfway?: () => void): Promise<WrkResult> {
  const connections = load === 'close' ? CLOSE_CONNECTIONS : KEEP_ALIVE_CONNECTIONS;
  const args = ['-c', LOADER_CPU, 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, ...(load === 'close' ? ['-H', 'Connection: close'] : []), `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    const cpu1 = cpuMark(Number(LOADER_CPU));
    const p = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const mid = halfway ? setTimeout(halfway, (seconds * 1000) / 2) : undefined;
    // wrk's own CPU time, sampled while it runs (its /proc entry goes with it): a wrk that
    // shares its CPU with another process serves fewer requests whatever the server does.
    let wrkTicks = 0;
    const sample = setInterval(() => { wrkTicks = cpuTicks([p.pid!]).get(p.pid!) ?? wrkTicks; }, 100);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      clearInterval(sample);
      const othersOnLoaderCpu = foreignOnCpu(Number(LOADER_CPU), cpu1, wrkTicks);
      if (mid) clearTimeout(mid);
      const total = /(\d+) requests in ([\d.]+)(m?s)/.exec(out);
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      if (code !== 0 || !total || !rps) return reject(new Error(`wrk failed (${code}): ${out.trim()}`));
      const errs = [/Non-2xx or 3xx responses: \d+/.exec(out)?.[0], /Socket errors: .*/.exec(out)?.[0]].filter(Boolean).join('; ');
      resolve({ requests: Number(total[1]), rps: Number(rps[1]), latencyAvg: /Latency\s+(\S+)/.exec(out)?.[1] ?? '', errors: errs, othersOnLoaderCpu });
    });
  });
}

const spreadOf = (xs: number[]) => (xs.length === 0 ? NaN : Math.min(...xs) === 0 ? Infinity : Math.max(...xs) / Math.min(...xs));

async function measure(cell: Cell, seconds: number, warmupSeconds: number): Promise<AcceptRun> {
  const server = new ServerProcess(cell);
  let counts: WorkerCounts[] = [];
  try {
    await server.until(`${WORKERS} workers ready`, () => server.port > 0 && server.workers.length === WORKERS);
    const baseline = new Map(server.workers.map((pid) => [pid, sockets(pid)]));
    await wrk(server.port, cell.load, warmupSeconds); // JIT, connection set-up paths
    const pids = processTree(server.proc.pid!);
    const cpu0 = cpuMark(Number(SERVER_CPU));
    const before = cpuTicks(pids);
    const sleptBefore = server.workers.reduce((n, pid) => n + sleeps(pid), 0);
    let open: Map<number, number> | undefined;
    const r = await wrk(server.port, cell.load, seconds, cell.load === 'keep-alive' ? () => {
      open = new Map(server.workers.map((pid) => [pid, sockets(pid) - baseline.get(pid)!]));
    } : undefined);
    const after = cpuTicks(pids);
    const slept = server.workers.reduce((n, pid) => n + sleeps(pid), 0) - sleptBefore;
    let ticks = 0;
    for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
    const othersOnServerCpu = foreignOnCpu(Number(SERVER_CPU), cpu0, ticks);
    counts = await server.stop();
    const mine = counts.filter((c) => server.workers.includes(c.pid));
    if (mine.length !== WORKERS) throw new Error(`accept counts for ${mine.length} of ${WORKERS} workers: ${server.lines.slice(-8).join(' | ')}`);
    if (open) for (const c of mine) c.open = open.get(c.pid);
    const total = (k: 'accepted' | 'wakeups' | 'wasted' | 'waits') => mine.reduce((s, c) => s + c[k], 0);
    return {
      rps: r.rps,
      requests: r.requests,
      cpuUsPerRequest: ((ticks / CLK_TCK) * 1e6) / r.requests,
      wakeupsPerConnection: total('wakeups') / total('accepted'),
      wastedPerConnection: total('wasted') / total('accepted'),
      waitsPerRequest: total('waits') / r.requests,
      sleepsPerRequest: slept / r.requests,
      spread: spreadOf(mine.map((c) => (cell.load === 'keep-alive' ? c.open ?? 0 : c.accepted))),
      workers: mine,
      latencyAvg: r.latencyAvg,
      errors: r.errors,
      othersOnServerCpu: +othersOnServerCpu.toFixed(3),
      othersOnLoaderCpu: +r.othersOnLoaderCpu.toFixed(3),
    };
  } finally {
    if (server.proc.exitCode === null && server.proc.signalCode === null) await server.stop();
  }
}

function line(cell: Cell, r: AcceptRun): string {
  const per = r.workers.map((w) => (cell.load === 'keep-alive' ? w.open : w.accepted)).join('/');
  return `accept ${cellId(cell).padEnd(26)} ${fmt(r.rps).padStart(7)} req/s, ${fmt(r.cpuUsPerRequest)} µs CPU/req, ` +
    `${fmt(r.wakeupsPerConnection)} wake-ups/conn (${fmt(r.wastedPerConnection)} wasted), ${fmt(r.sleepsPerRequest)} sleeps/req, spread ${fmt(r.spread)}× (${per}), ` +
    `others on CPU ${SERVER_CPU}/${LOADER_CPU}: ${(r.othersOnServerCpu * 100).toFixed(0)}%/${(r.othersOnLoaderCpu * 100).toFixed(0)}%${r.errors ? `, ${r.errors}` : ''}`;
}

async function main(): Promise<void> {
  const mark = markLoad();
  const quick = values.quick!;
  const repeats = Number(values.repeats ?? (quick ? 1 : 4));
  const seconds = Number(values.duration ?? (quick ? 2 : 4));
  const warmupSeconds = 1; // wrk takes whole seconds
  if (!aptEnsure('wrk', 'the accept load generator')) {
    console.log('accept: skipped: wrk is not available');
    return;
  }
  const runs = new Map<string, AcceptRun[]>(CELLS.map((c) => [cellId(c), []]));
  const errors = new Map<string, string>();
  let retryBudget = 8;
  for (let rep = 0; rep < repeats; rep++) {
    for (let k = 0; k < CELLS.length; k++) {
      const cell = CELLS[(k + rep * 5) % CELLS.length];
      const id = cellId(cell);
      if (errors.has(id)) continue;
      try {
        // A run during which other processes took much of the server's or wrk's CPU is
        // measured again (twice at most); the least disturbed one is kept.
        const disturbance = (x: AcceptRun) => Math.max(x.othersOnServerCpu, x.othersOnLoaderCpu);
        let r = await measure(cell, seconds, warmupSeconds);
        for (let retry = 0; retry < 2 && retryBudget > 0 && disturbance(r) > MAX_OTHERS; retry++) {
          retryBudget--;
          console.log(`accept ${id}: other processes took ${(r.othersOnServerCpu * 100).toFixed(0)}% of CPU ${SERVER_CPU}, ${(r.othersOnLoaderCpu * 100).toFixed(0)}% of CPU ${LOADER_CPU}; measuring again`);
          const again = await measure(cell, seconds, warmupSeconds);
          if (disturbance(again) < disturbance(r)) r = again;
        }
        runs.get(id)!.push(r);
        console.log(line(cell, r));
      } catch (err) {
        errors.set(id, (err as Error).message);
        console.log(`accept ${id}: failed: ${(err as Error).message}`);
      }
    }
  }
  const cells = CELLS.map((c) => {
    const rs = runs.get(cellId(c))!;
    if (rs.length === 0) return { ...c, error: errors.get(cellId(c)) ?? 'no runs' };
    const s = (f: (r: AcceptRun) => number) => summarize(rs.map(f));
    return {
      ...c,
      rps: s((r) => r.rps),
      cpuUsPerRequest: s((r) => r.cpuUsPerRequest),
      wakeupsPerConnection: s((r) => r.wakeupsPerConnection),
      wastedPerConnection: s((r) => r.wastedPerConnection),
      waitsPerRequest: s((r) => r.waitsPerRequest),
      sleepsPerRequest: s((r) => r.sleepsPerRequest),
      // JSON has no Infinity: a worker that got nothing is a spread of null.
      spread: rs.some((r) => !Number.isFinite(r.spread)) ? null : s((r) => r.spread),
      runs: rs.map((r) => ({ ...r, spread: Number.isFinite(r.spread) ? r.spread : null })),
      ...(errors.has(cellId(c)) ? { error: errors.get(cellId(c)) } : {}),
    };
  });
  if (values.only) return console.log('accept: --only: results not saved');
  saveWorkload('accept', quick, {
    repeats,
    seconds,
    warmupSeconds,
    workers: WORKERS,
    workerConnections: WORKER_CONNECTIONS,
    closeConnections: CLOSE_CONNECTIONS,
    keepAliveConnections: KEEP_ALIVE_CONNECTIONS,
    serverCpu: SERVER_CPU,
    loaderCpu: LOADER_CPU,
    cells,
  }, mark);
}

await main();
