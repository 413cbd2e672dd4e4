// The server of `npm start` (examples/server via scripts/start.mjs) as a child process, for
// the end-to-end tests (server.test.ts, server-accept.test.ts, faults.test.ts): its output
// lines, its pids, waiting for them to be gone, and clients that keep requesting.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { MECHANISM, sleep } from './helpers.js';

/** The server's master process, its output lines, and every pid it reported. */
export class Server {
  readonly lines: string[] = [];
  readonly pids = new Set<number>();
  port = 0;
  exited: Promise<{ code: number | null; signal: string | null }>;
  #waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    this.pids.add(child.pid!);
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        this.lines.push(line);
        const pid = /^worker (\d+) ready/.exec(line)?.[1];
        if (pid) this.pids.add(Number(pid));
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(...args: string[]): Promise<Server> {
    const child = spawn(process.execPath, [join(packageRoot, 'scripts/start.mjs'), '--port', '0', '--mechanism', MECHANISM, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, FORCE_COLOR: undefined },
    });
    const server = new Server(child);
    running.add(server);
    server.port = Number((await server.waitFor(/^listening on http:\/\/127\.0\.0\.1:(\d+)$/, 60_000))[1]); // may build first
    return server;
  }

  /** The first line from index `from` on matching `re` (waits for it). */
  async waitFor(re: RegExp, timeoutMs = 5000, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) {
        const m = re.exec(this.lines[i]);
        if (m) return m;
      }
      const exited = this.child.exitCode !== null || this.child.signalCode !== null;
      if (exited || Date.now() > end) {
        throw new Error(`no line matching ${re} ${exited ? 'before the server exited' : `within ${timeoutMs} ms`}; got:\n${this.lines.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Pids of the workers currently serving (ready and not yet gone). */
  workers(): number[] {
    const gone = new Set(this.lines.map((l) => /^worker (\d+) (died|exited|retired)/.exec(l)?.[1]).filter(Boolean).map(Number));
    return [...this.pids].filter((p) => p !== this.child.pid && !gone.has(p));
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGQUIT (graceful stop), then waits for the master and its workers to be gone. */
  async stop(): Promise<void> {
    const pids = [...this.pids];
    this.child.kill('SIGQUIT');
    await this.exited;
    await allGone(pids);
  }
}

/** Every server started, so a file's `after` hook can make sure none is left behind. */
export const running = new Set<Server>();

/** Whether `pid` is gone: exited, and reaped or a zombie waiting for whoever inherited it. */
export function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // vanished meanwhile
  }
}

export async function allGone(pids: Iterable<number>, limitMs = 3000): Promise<number[]> {
  const end = Date.now() + limitMs;
  let left = [...pids];
  while ((left = left.filter((p) => !gone(p))).length > 0 && Date.now() < end) await sleep(20);
  return left;
}

/** The stop() of every load still running: a test that fails before it stops its load leaves it here. */
const loads = new Set<() => Promise<unknown>>();

/**
 * Stops every load still running. A file's `after` hook calls it first: a load left running
 * would go on requesting from a server that is gone, and the run would never end.
 */
export async function stopLoads(): Promise<void> {
  await Promise.all([...loads].map((stop) => stop()));
}

/**
 * Load for the end-to-end tests: `n` loops, each calling `one(agent)` over a shared keep-alive
 * agent until stop(); stop() resolves with `result` once every loop's last request is done.
 */
export function keepRequesting<R>(n: number, result: R, one: (agent: http.Agent) => Promise<void>) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n });
  let stopping = false;
  const loops = Array.from({ length: n }, async () => {
    while (!stopping) await one(agent);
  });
  const stop = async (): Promise<R> => {
    stopping = true;
    loads.delete(stop);
    await Promise.all(loops);
    agent.destroy();
    return result;
  };
  loads.add(stop);
  return {
    result,
    stop,
  };
}

/**
 * An error of get(): whether its request went out on a kept-alive connection, and how long
 * before the error that connection was last given a request (this one, on a fresh connection:
 * when it began to connect), in ms.
 */
export type GetError = NodeJS.ErrnoException & { reusedSocket?: boolean; quietMs?: number };

/** When each socket was last given a request. */
const lastUse = new WeakMap<object, number>();

export function get(port: number, agent: http.Agent, path = '/'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    let previous = Infinity;
    req.on('socket', (socket) => {
      const now = performance.now();
      previous = lastUse.get(socket) ?? now;
      lastUse.set(socket, now);
    });
    req.on('error', (e: GetError) => reject(Object.assign(e, { reusedSocket: req.reusedSocket, quietMs: performance.now() - previous })));
  });
}

/**
 * Keeps `n` keep-alive requests going until stop(); stop() resolves once the last one is answered.
 *
 * It behaves as a careful HTTP/1.1 client may (RFC 9112 §9.3.1; Node's own advice under
 * `request.reusedSocket`): an idempotent GET that met a reset before any answer is sent again.
 * A stopping worker closes connections that have been quiet for a tick. When this process
 * stalls (a GC pause, a starved CPU; CI saw it under ASan) between an answer and its next
 * request, or between connecting and its first, that request can go out on a connection the
 * server has just closed, and no server can tell such a client from one that went away.
 *
 * Only that case is forgiven: the reset must come at least a tick (`tickMs`, the server's sweep
 * period) after the connection was last given a request (or began to connect): the server read
 * nothing from it for a whole tick, so it was quiet that long at least. A server that dropped a request it had read resets
 * at once, and is caught; so is a second failure, or a wrong answer.
 */
export function steadyClient(port: number, tickMs: number, n = 4) {
  const result = { ok: 0, resent: 0, failures: [] as string[] };
  return keepRequesting(n, result, async (agent) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await get(port, agent);
        if (r.status === 200 && r.body === 'hello\n') result.ok++;
        else result.failures.push(`status ${r.status}`);
        return;
      } catch (e) {
        const error = e as GetError;
        if (error.code === 'ECONNRESET' && error.quietMs! >= tickMs && attempt <= n) {
          result.resent++;
          continue;
        }
        result.failures.push(`${error.message} (${error.reusedSocket ? 'a kept-alive' : 'a fresh'} connection, ${error.quietMs!.toFixed(0)} ms after it was given a request)`);
        return;
      }
    }
  });
}

export interface Answer { status: number; body: string; type: string }

/** One GET on a new connection (Connection: close). */
export function getFresh(port: number, path = '/', timeoutMs = 30_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode!, body, type: String(res.headers['content-type']) }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** `n` loops each requesting `/` on a new connection per request until stop(); no failure is forgiven. */
export function freshClient(port: number, n = 2) {
  const result = { ok: 0, failures: [] as string[] };
  return keepRequesting(n, result, async () => {
    try {
      const answer = await getFresh(port);
      if (answer.status === 200 && answer.body === 'hello\n') result.ok++;
      else result.failures.push(`${answer.status} ${answer.body}`);
    } catch (e) {
      result.failures.push((e as Error).message);
    }
  });
}
