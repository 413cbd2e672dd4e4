// The server's process manager (issue 14): one run of each --pm mode under the same load step,
// with the same pool size (--max-children 8):
//
//   static    8 workers from the start
//   dynamic   --start-servers 2 --min-spare-servers 1 --max-spare-servers 3
//   ondemand  --process-idle-timeout 3000: no worker until a connection comes
//
// The step: IDLE_BEFORE s with no load, then --duration s of a closed-loop load of CLIENTS
// clients each sending GET /busy?ms=BUSY_MS on a new connection, one after the other, then
// IDLE_AFTER s with no load again: long enough for ondemand to shrink back to no worker (the
// idle timeout, then one worker retired per once-a-second maintenance beat, as FPM's
// fpm_pctl_perform_idle_server_maintenance does: 3 + 8 s for a full pool) and dynamic to its
// max spare (one a beat too). A busy request holds its worker for
// BUSY_MS whatever the CPU does, as a PHP request waiting on its database: CLIENTS of them at once
// need CLIENTS workers, so the pool's size shows in the latency. A new connection per request,
// as nginx opens one per request to FPM: a worker takes the next connection when it is free,
// so a worker the manager adds takes its share at once (kept-alive connections would stay with
// the workers that accepted them, and the ones added later would idle).
//
// Every SAMPLE_MS: the master's worker processes (its children in /proc) and the sum of their
// RSS (VmRSS), and the idle and active counts from the master's own status line (printed every
// SAMPLE_MS with --status-interval). Not from GET /status: a request to the pool is a
// connection like any other — under ondemand a status poll every 250 ms would keep a worker
// alive through the idle periods, and under load it waits in the queue behind the busy ones.
// The status page is read once, after the run: its counters (accepted conn, max active
// processes, max children reached, max listen queue) as a cross-check.
//
// npm run bench -- pm [--duration 10] [--repeats 1] [--quick] [--mechanism epoll] [--only dynamic]
// (--only: some modes only, not saved)
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { summarize, percentile, fmt, type Summary } from './stats.js';
import { outDir, saveWorkload } from './results.js';
import { markLoad, processTree, loadSince } from './load.js';
import { pmTable, type PmModeSummary } from './pm-table.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    repeats: { type: 'string' },
    quick: { type: 'boolean', default: false },
    mechanism: { type: 'string', default: 'epoll' },
    /** Only these modes, comma-separated. */
    only: { type: 'string' },
  },
});

export type PmMode = 'static' | 'dynamic' | 'ondemand';
const MAX_CHILDREN = 8;
const MODES: Record<PmMode, string[]> = {
  static: [],
  dynamic: ['--start-servers', '2', '--min-spare-servers', '1', '--max-spare-servers', '3'],
  ondemand: ['--process-idle-timeout', '3000'],
};
/** The pool each mode starts with, which the run waits for before its idle period. */
const START: Record<PmMode, number> = { static: MAX_CHILDREN, dynamic: 2, ondemand: 0 };
const CLIENTS = 6;
const BUSY_MS = 20;
const SAMPLE_MS = 250;
/** A request not answered in this long counts as failed (none should come near it). */
const REQUEST_TIMEOUT_MS = 10_000;

export interface Sample {
  /** Seconds since the run's start (the step comes at idleBefore). */
  t: number;
  workers: number;
  /** The workers' RSS summed, kB. */
  rssKb: number;
  /** From the master's latest status line. */
  idle?: number;
  active?: number;
}

export interface PmRun {
  samples: Sample[];
  /** When the load began and how long it ran, seconds on the samples' clock. */
  stepAt: number;
  loadSeconds: number;
  idleWorkers: number;
  peakWorkers: number;
  endWorkers: number;
  /** From the step to the first sample at the peak (0: the pool was at its peak already). */
  secondsToPeak: number;
  /** From the step to the first sample with a worker for each client (0: it had them already). */
  secondsToEnough: number;
  /** From the load's end to the first sample from which the pool stays at its end size. */
  secondsToSettle: number;
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  rssIdleMb: number;
  rssPeakMb: number;
  rssEndMb: number;
  masterRssMb: number;
  /** Workers the master started and retired after the pool's start (its `worker PID ready` and `retired` lines). */
  started: number;
  retired: number;
  /** Counters from GET /status?json&full after the run (null: it did not answer). */
  status: Record<string, unknown> | null;
  /** Share of the machine other processes used during the run. */
  otherLoad: number;
}

const STATUS_LINE = /^status: (\d+) workers alive, (\d+) requests served[^;]*(?:; (\d+) idle, (\d+) active, (\d+) total)?/;

/** The master: its lines as they come, its port, its latest status line. */
class PoolServer {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  port = 0;
  status: { alive: number; idle?: number; active?: number; total?: number } | undefined;
  #stderr = '';

  constructor(mode: PmMode, mechanism: string) {
    const args = [join(outDir, 'server-evpoll.mjs'), '--port', '0', '--mechanism', mechanism, '--pm', mode,
      '--max-children', String(MAX_CHILDREN), ...MODES[mode], '--status-interval', String(SAMPLE_MS)];
    this.proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => (this.#stderr = (this.#stderr + d).slice(0, 4000)));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (this.lines.length < 10_000) this.lines.push(line);
      const port = /^listening on http:\/\/[^:]+:(\d+)$/.exec(line)?.[1];
      if (port) this.port = Number(port);
      const s = STATUS_LINE.exec(line);
      if (s) {
        const opt = (x: string | undefined) => (x === undefined ? undefined : Number(x));
        this.status = { alive: Number(s[1]), idle: opt(s[3]), active: opt(s[4]), total: opt(s[5]) };
      }
    });
  }

  get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  async until(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!done()) {
      if (this.exited || Date.now() > end) {
        // The error's line, not the usage text that follows it.
        throw new Error(`server: ${what} did not happen (${this.#stderr.trim().split('\n')[0] || this.lines.slice(-5).join(' | ')})`);
      }
      await sleep(50);
    }
  }

  workers(): number[] {
    return processTree(this.proc.pid!).slice(1);
  }

  /** SIGTERM; SIGKILL to what is left after 20 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const tree = processTree(this.proc.pid!);
    const exited = new Promise((r) => this.proc.once('exit', r));
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
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** VmRSS of a process, kB (0 once it is gone). */
function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** One GET on a new connection: the whole response (headers and body) once the server closes, or null. */
function get(port: number, path: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(ok ? Buffer.concat(chunks).toString('latin1') : null);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d) => chunks.push(d));
    socket.on('end', () => finish(true));
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(chunks.length > 0));
  });
}

/** CLIENTS closed-loop clients until `until` (performance.now()): each request's latency, ms, and the failures. */
async function load(port: number, until: number): Promise<{ latencies: number[]; errors: number; seconds: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const client = async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      const response = await get(port, `/busy?ms=${BUSY_MS}`, REQUEST_TIMEOUT_MS);
      if (response?.startsWith('HTTP/1.1 200') && response.trimEnd().endsWith(`busy ${BUSY_MS}`)) latencies.push(performance.now() - t0);
      else {
        errors++;
        await sleep(10); // a refused connect fails at once: not a spin
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return { latencies, errors, seconds: (performance.now() - start) / 1000 };
}

async function measure(mode: PmMode, mechanism: string, idleBefore: number, duration: number, idleAfter: number): Promise<PmRun> {
  const server = new PoolServer(mode, mechanism);
  let sampler: NodeJS.Timeout | undefined;
  try {
    // The pool at its start size, every worker ready and idle, before the clock starts (the
    // status line counts a worker still starting as idle: the ready lines say when it is not).
    const ready = () => server.lines.filter((l) => /^worker \d+ ready$/.test(l)).length;
    await server.until(`${START[mode]} idle workers`, () =>
      server.port > 0 && ready() === START[mode] && server.status !== undefined && server.status.alive === START[mode] &&
      (server.status.idle ?? START[mode]) === START[mode] && server.workers().length === START[mode]);
    const mark = markLoad();
    const linesBefore = server.lines.length;
    const t0 = performance.now();
    const samples: Sample[] = [];
    const sample = () => {
      const pids = server.workers();
      samples.push({
        t: +((performance.now() - t0) / 1000).toFixed(3),
        workers: pids.length,
        rssKb: pids.reduce((sum, pid) => sum + rssKb(pid), 0),
        idle: server.status?.idle,
        active: server.status?.active,
      });
    };
    sample();
    sampler = setInterval(sample, SAMPLE_MS);
    await sleep(idleBefore * 1000);
    const stepAt = (performance.now() - t0) / 1000;
    const loaded = await load(server.port, performance.now() + duration * 1000);
    await sleep(idleAfter * 1000);
    clearInterval(sampler);
    sample();
    const otherLoad = loadSince(mark).others;
    const during = server.lines.slice(linesBefore);
    const started = during.filter((l) => /^worker \d+ ready$/.test(l)).length;
    const retired = during.filter((l) => /^worker \d+ retired /.test(l)).length;
    const masterRssMb = rssKb(server.proc.pid!) / 1024;
    const statusText = await get(server.port, '/status?json&full', 2000);
    let status: Record<string, unknown> | null = null;
    try {
      const json = JSON.parse(statusText?.slice(statusText.indexOf('\r\n\r\n') + 4) ?? '') as Record<string, unknown>;
      const keep = ['accepted conn', 'max active processes', 'max children reached', 'max listen queue', 'slow requests'];
      status = Object.fromEntries(keep.filter((k) => k in json).map((k) => [k, json[k]]));
      if (Array.isArray(json.processes)) status.requestsPerProcess = json.processes.map((p: Record<string, unknown>) => p.requests);
    } catch {}
    await server.stop();
    if (loaded.latencies.length === 0) throw new Error(`no request answered (${loaded.errors} failed)`);

    const before = samples.filter((s) => s.t < stepAt);
    const peakWorkers = Math.max(...samples.map((s) => s.workers));
    const reached = (n: number) => (before.at(-1)!.workers >= n ? stepAt : samples.find((s) => s.t >= stepAt && s.workers >= n)?.t ?? NaN);
    const peakAt = reached(peakWorkers);
    const loadEnd = stepAt + loaded.seconds;
    const endWorkers = samples.at(-1)!.workers;
    let settled = samples.length - 1;
    while (settled > 0 && samples[settled - 1].workers === endWorkers) settled--;
    const settledAt = Math.max(loadEnd, samples[settled].t);
    const sorted = Float64Array.from(loaded.latencies).sort();
    const mb = (kb: number) => kb / 1024;
    return {
      samples,
      stepAt: +stepAt.toFixed(3),
      loadSeconds: +loaded.seconds.toFixed(3),
      idleWorkers: before.at(-1)!.workers,
      peakWorkers,
      endWorkers,
      secondsToPeak: +(peakAt - stepAt).toFixed(2),
      secondsToEnough: +(reached(CLIENTS) - stepAt).toFixed(2),
      secondsToSettle: +(settledAt - loadEnd).toFixed(2),
      requests: loaded.latencies.length,
      errors: loaded.errors,
      rps: loaded.latencies.length / loaded.seconds,
      p50Ms: percentile(sorted, 50),
      p90Ms: percentile(sorted, 90),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? NaN,
      rssIdleMb: mb(before.at(-1)!.rssKb),
      rssPeakMb: mb(Math.max(...samples.map((s) => s.rssKb))),
      rssEndMb: mb(samples.at(-1)!.rssKb),
      masterRssMb,
      started,
      retired,
      status,
      otherLoad: +otherLoad.toFixed(3),
    };
  } finally {
    clearInterval(sampler);
    await server.stop();
  }
}

async function main(): Promise<void> {
  const mark = markLoad();
  const quick = values.quick!;
  const duration = Number(values.duration ?? (quick ? 5 : 10));
  const repeats = Number(values.repeats ?? 1);
  const idleBefore = quick ? 2 : 3;
  // Ondemand's idle timeout (3 s), then one of up to 8 workers retired a second, and a margin.
  const idleAfter = 13;
  const mechanism = values.mechanism!;
  const modes = (Object.keys(MODES) as PmMode[]).filter((m) => !values.only || values.only.split(',').includes(m));
  const runs = new Map<PmMode, PmRun[]>(modes.map((m) => [m, []]));
  const errors = new Map<PmMode, string>();
  for (let rep = 0; rep < repeats; rep++) {
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(k + rep) % modes.length];
      if (errors.has(mode)) continue;
      try {
        const r = await measure(mode, mechanism, idleBefore, duration, idleAfter);
        runs.get(mode)!.push(r);
        console.log(
          `pm ${mode.padEnd(8)} workers ${r.idleWorkers} → ${CLIENTS} (${fmt(r.secondsToEnough)} s after the step) → peak ${r.peakWorkers} (${fmt(r.secondsToPeak)} s) → ${r.endWorkers} (${fmt(r.secondsToSettle)} s after the load), ` +
            `${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms)} ms, p90 ${fmt(r.p90Ms)} ms, p99 ${fmt(r.p99Ms)} ms, max ${fmt(r.maxMs)} ms, ${r.errors} failed; ` +
            `RSS ${fmt(r.rssIdleMb)} MB idle, ${fmt(r.rssPeakMb)} MB peak, ${fmt(r.rssEndMb)} MB at the end (master ${fmt(r.masterRssMb)} MB); ` +
            `${r.started} workers started, ${r.retired} retired; ` +
            `others ${(r.otherLoad * 100).toFixed(0)}% of the machine` +
            (r.status ? `; status: ${JSON.stringify(r.status)}` : '; status page: no answer'),
        );
        console.log(`  workers: ${r.samples.map((s) => s.workers).join(' ')}`);
      } catch (err) {
        errors.set(mode, (err as Error).message);
        console.log(`pm ${mode}: failed: ${(err as Error).message}`);
      }
    }
  }
  const s = (rs: PmRun[], f: (r: PmRun) => number): Summary => summarize(rs.map(f));
  const summaries: PmModeSummary[] = modes.map((mode) => {
    const rs = runs.get(mode)!;
    if (rs.length === 0) return { mode, settings: MODES[mode].join(' '), error: errors.get(mode) ?? 'no runs' };
    return {
      mode,
      settings: MODES[mode].join(' '),
      idleWorkers: s(rs, (r) => r.idleWorkers),
      peakWorkers: s(rs, (r) => r.peakWorkers),
      endWorkers: s(rs, (r) => r.endWorkers),
      secondsToPeak: s(rs, (r) => r.secondsToPeak),
      secondsToEnough: s(rs, (r) => r.secondsToEnough),
      secondsToSettle: s(rs, (r) => r.secondsToSettle),
      rps: s(rs, (r) => r.rps),
      p50Ms: s(rs, (r) => r.p50Ms),
      p90Ms: s(rs, (r) => r.p90Ms),
      p99Ms: s(rs, (r) => r.p99Ms),
      maxMs: s(rs, (r) => r.maxMs),
      rssIdleMb: s(rs, (r) => r.rssIdleMb),
      rssPeakMb: s(rs, (r) => r.rssPeakMb),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      otherLoad: s(rs, (r) => r.otherLoad),
      runs: rs,
    };
  });
  const setup = { maxChildren: MAX_CHILDREN, clients: CLIENTS, busyMs: BUSY_MS, duration, idleBefore, idleAfter, sampleMs: SAMPLE_MS, mechanism, repeats };
  console.log('');
  console.log(pmTable(summaries, setup).join('\n'));
  if (values.only) return console.log('pm: --only: results not saved');
  saveWorkload('pm', quick, { ...setup, modes: summaries }, mark);
}

await main();
