// `npm run soak` (not part of `npm test`): wrk against examples/server, with all its workers,
// for a minute; every few seconds the RSS and open fd count of each server process (master
// and workers) are sampled. It prints the samples, whether each process was flat after the
// warm-up, and wrk's figures; it fails on any socket error, non-2xx answer, worker death, or
// growth after the warm-up.
//
// Usage: node scripts/soak.mjs [--duration S] [--connections N] [--threads N] [--interval S]
//          [--warmup S] [--mechanism NAME] [--workers N]
// wrk must be installed (it is installed with apt-get when missing and this runs as root).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from './bin.mjs';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    connections: { type: 'string', default: '100' },
    threads: { type: 'string', default: '2' },
    interval: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '15' },
    mechanism: { type: 'string' },
    workers: { type: 'string' },
  },
});
const durationS = Number(values.duration);
const intervalS = Number(values.interval);
const warmupS = Number(values.warmup);
const MiB = 2 ** 20;

function ensureWrk() {
  if (spawnSync('wrk', ['--version']).error === undefined) return;
  console.log('soak: wrk is not installed; installing it with apt-get (needs root)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const ok = spawnSync('apt-get', ['update'], { stdio: 'inherit', env }).status === 0
    && spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'inherit', env }).status === 0;
  if (!ok || spawnSync('wrk', ['--version']).error !== undefined) {
    console.error('soak: could not install wrk; install it (apt-get install wrk) and run again');
    process.exit(2);
  }
}

/** The server (`npm start`), its output lines, and its workers' pids as it reports them. */
async function startServer() {
  const args = ['--port', '0', '--status-interval', '60000'];
  if (values.mechanism) args.push('--mechanism', values.mechanism);
  if (values.workers) args.push('--workers', values.workers);
  const child = spawn(process.execPath, [join(root, 'scripts/start.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    lines.push(...parts);
  });
  const find = (re) => lines.map((l) => re.exec(l)).find(Boolean);
  const end = Date.now() + 60_000;
  let header;
  while (!(header = find(/^master \d+: (\d+) workers, mechanism (\w+)$/)) || lines.filter((l) => / ready$/.test(l)).length < Number(header[1])) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`the server did not start:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = Number(find(/^listening on http:\/\/[^:]+:(\d+)$/)[1]);
  const workers = lines.map((l) => /^worker (\d+) ready$/.exec(l)?.[1]).filter(Boolean).map(Number);
  return { child, lines, port, workers, mechanism: header[2] };
}

function sample(pid) {
  try {
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
    return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: NaN, fds: NaN }; // gone
  }
}

ensureWrk();
const server = await startServer();
const pids = [server.child.pid, ...server.workers];
const names = ['master', ...server.workers.map((_, i) => `worker ${i + 1}`)];
console.log(`soak: ${server.mechanism}, ${server.workers.length} workers (pids ${server.workers.join(', ')}), master ${server.child.pid}, port ${server.port}`);
console.log(`soak: wrk -t${values.threads} -c${values.connections} -d${durationS}s for ${durationS} s; samples every ${intervalS} s, warm-up ${warmupS} s`);

const wrk = spawn('wrk', [`-t${values.threads}`, `-c${values.connections}`, `-d${durationS}s`, '--latency', `http://127.0.0.1:${server.port}/`], { stdio: ['ignore', 'pipe', 'inherit'] });
let wrkOut = '';
wrk.stdout.setEncoding('utf8').on('data', (d) => { wrkOut += d; });
const wrkDone = new Promise((resolve) => wrk.on('close', resolve));

const samples = [];
const t0 = Date.now();
const header = ['   t', ...names.map((n) => `${n.padStart(18)}`)].join(' ');
console.log(`\n${header}\n${' '.repeat(5)}${names.map(() => '      RSS MiB  fds'.padStart(18)).join(' ')}`);
const takeSample = () => {
  const t = (Date.now() - t0) / 1000;
  const s = pids.map(sample);
  samples.push({ t, s });
  console.log([`${t.toFixed(0).padStart(4)}`, ...s.map(({ rss, fds }) => `${(rss / MiB).toFixed(1).padStart(12)} ${String(fds).padStart(4)}`)].join(' '));
};
takeSample();
const timer = setInterval(takeSample, intervalS * 1000);
const wrkCode = await wrkDone;
clearInterval(timer);
const underLoad = samples.length;
await new Promise((r) => setTimeout(r, 1000)); // wrk's connections closed on the server side
takeSample();

// The verdict.
const problems = [];
if (wrkCode !== 0) problems.push(`wrk exited with ${wrkCode}`);
const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(wrkOut);
const errorCount = socketErrors ? socketErrors.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0;
if (errorCount > 0) problems.push(`socket errors: ${socketErrors[0]}`);
const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(wrkOut)?.[1] ?? 0);
if (non2xx > 0) problems.push(`${non2xx} non-2xx answers`);
const died = server.lines.filter((l) => /^worker \d+ died/.test(l));
if (died.length) problems.push(`workers died: ${died.join('; ')}`);

console.log('\nper process, under load after the warm-up, then once wrk is gone:');
const steady = samples.slice(0, underLoad).filter((x) => x.t >= warmupS);
const first = samples[0].s;
const last = samples[samples.length - 1].s;
pids.forEach((pid, i) => {
  const rss = steady.map((x) => x.s[i].rss);
  const fds = steady.map((x) => x.s[i].fds);
  if (rss.some(Number.isNaN)) return problems.push(`${names[i]} (${pid}) went away`);
  const growth = rss[rss.length - 1] - rss[0];
  // Flat: RSS ends within 10% (and 8 MiB) of where the steady state began; the fd count
  // (listener, control socket, wrk's connections) does not change.
  const rssFlat = growth <= Math.max(8 * MiB, 0.1 * rss[0]);
  const fdFlat = Math.max(...fds) - Math.min(...fds) === 0;
  const fdsBack = last[i].fds === first[i].fds;
  console.log(`  ${names[i].padEnd(9)} pid ${pid}: RSS ${(Math.min(...rss) / MiB).toFixed(1)}-${(Math.max(...rss) / MiB).toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${(growth / MiB).toFixed(1)} MiB) ${rssFlat ? 'flat' : 'GROWING'}; fds ${Math.min(...fds)}-${Math.max(...fds)} ${fdFlat ? 'flat' : 'CHANGING'}; after the load ${last[i].fds} fds (${first[i].fds} before)${fdsBack ? '' : ' LEAKED'}`);
  if (!rssFlat) problems.push(`${names[i]}: RSS grew by ${(growth / MiB).toFixed(1)} MiB after the warm-up`);
  if (!fdFlat) problems.push(`${names[i]}: fd count changed after the warm-up (${Math.min(...fds)}-${Math.max(...fds)})`);
  if (!fdsBack) problems.push(`${names[i]}: ${last[i].fds} fds open after the load, ${first[i].fds} before`);
});

const rps = /Requests\/sec:\s+([\d.]+)/.exec(wrkOut)?.[1];
const total = /(\d+) requests in/.exec(wrkOut)?.[1];
const p99 = /99%\s+(\S+)/.exec(wrkOut)?.[1];
console.log(`\nwrk: ${total} requests, ${rps} requests/s, p99 latency ${p99}; socket errors: ${socketErrors ? socketErrors[0].replace('Socket errors: ', '') : 'none'}; non-2xx: ${non2xx}`);

server.child.kill('SIGTERM');
await new Promise((resolve) => server.child.on('exit', resolve));
console.log(problems.length ? `\nsoak: FAILED\n  ${problems.join('\n  ')}` : '\nsoak: ok (zero socket errors; every server process flat after the warm-up, and back to its fds after the load)');
process.exit(problems.length ? 1 : 0);
