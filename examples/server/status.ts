// FPM's status page (pm.status_path, fpm_status.c): the pool's counters and, with `full`, one
// block per worker, read from the shared scoreboard by whichever worker takes the request. The
// names are FPM's, so that what reads FPM's page (monitoring agents, Prometheus exporters)
// reads this one: text by default, `?json`, `?openmetrics`, and `full` with any of them.
import { State, type PoolCounts, type WorkerRecord } from './scoreboard.js';

export const POOL_NAME = 'www';

export interface StatusPage {
  type: string;
  body: string;
}

/** What the page shows beside the scoreboard: the listener's queue now (TCP_INFO), and the time. */
export interface StatusNow {
  listenQueue: number;
  listenQueueLen: number;
  now: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** FPM's time format, `%d/%b/%Y:%H:%M:%S %z`, in UTC. */
function fpmTime(epochMs: number): string {
  const d = new Date(epochMs);
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** The query's parameter names (`?json&full` → json, full), as FPM looks for them. */
export function queryFlags(target: string): Set<string> {
  const q = target.indexOf('?');
  if (q < 0) return new Set();
  return new Set(target.slice(q + 1).split('&').map((p) => p.split('=')[0]));
}

interface Process {
  pid: number;
  state: string;
  'start time': number;
  'start since': number;
  requests: number;
  'request duration': number;
  'request method': string;
  'request uri': string;
  'content length': number;
  user: string;
  script: string;
  'last request cpu': number;
  'last request memory': number;
}

function processOf(r: WorkerRecord, now: number): Process {
  // FPM: the running request's duration so far; an idle worker's last request's.
  const running = r.state === State.Active;
  const durationMs = r.requestStart === 0 ? 0 : (running ? now : r.requestEnd) - r.requestStart;
  return {
    pid: r.pid,
    state: r.stateName,
    'start time': Math.floor(r.started / 1000),
    'start since': Math.max(0, Math.floor((now - r.started) / 1000)),
    requests: r.requests,
    'request duration': Math.max(0, Math.round(durationMs * 1000)), // µs, as FPM
    'request method': r.method || '-',
    'request uri': r.uri || '-',
    'content length': 0,
    user: '-',
    script: '-',
    'last request cpu': Math.round(r.cpuPercent * 100) / 100,
    'last request memory': r.rss,
  };
}

export function renderStatus(target: string, pool: PoolCounts, live: StatusNow): StatusPage {
  const flags = queryFlags(target);
  const full = flags.has('full');
  let idle = 0;
  let active = 0;
  for (const r of pool.records) {
    if (r.state === State.Active) active++;
    else if (r.state === State.Idle || r.state === State.Starting) idle++;
  }
  const fields = {
    pool: POOL_NAME,
    'process manager': pool.pm,
    'start time': pool.start,
    'start since': Math.max(0, Math.floor((live.now - pool.start) / 1000)),
    'accepted conn': pool.accepted,
    'listen queue': live.listenQueue,
    'max listen queue': Math.max(pool.maxListenQueue, live.listenQueue),
    'listen queue len': live.listenQueueLen,
    'idle processes': idle,
    'active processes': active,
    'total processes': idle + active,
    'max active processes': Math.max(pool.maxActive, active),
    'max children reached': pool.maxChildrenReached,
    'slow requests': pool.slow,
  };
  // Finishing workers are leaving: counted in neither (FPM counts a child only while it takes requests).
  const processes = full ? pool.records.filter((r) => r.state !== State.Free).map((r) => processOf(r, live.now)) : [];

  if (flags.has('json')) {
    const json: Record<string, unknown> = { ...fields, 'start time': Math.floor(pool.start / 1000) };
    if (full) json.processes = processes;
    return { type: 'application/json', body: JSON.stringify(json) };
  }
  if (flags.has('openmetrics')) return { type: 'application/openmetrics-text; version=1.0.0; charset=utf-8', body: openMetrics(fields, processes, full) };
  const lines = Object.entries(fields).map(([k, v]) => `${(k + ':').padEnd(21)} ${k === 'start time' ? fpmTime(v as number) : v}`);
  for (const p of processes) {
    lines.push('', '************************');
    for (const [k, v] of Object.entries(p)) {
      const label = k === 'request uri' ? 'request URI' : k;
      lines.push(`${(label + ':').padEnd(21)} ${k === 'start time' ? fpmTime((v as number) * 1000) : k === 'last request cpu' ? (v as number).toFixed(2) : v}`);
    }
  }
  return { type: 'text/plain', body: lines.join('\n') + '\n' };
}

function openMetrics(f: Record<string, string | number>, processes: Process[], full: boolean): string {
  const out: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number | string) => {
    out.push(`# HELP phpfpm_${name} ${help}`, `# TYPE phpfpm_${name} ${type}`, `phpfpm_${name}${type === 'counter' ? '_total' : ''} ${value}`);
  };
  metric('up', 'gauge', `Could pool ${f.pool} using a ${f['process manager']} PM be reached?`, 1);
  metric('start_since', 'counter', 'The number of seconds since the pool has started.', f['start since']);
  metric('accepted_connections', 'counter', 'The number of requests accepted by the pool.', f['accepted conn']);
  metric('listen_queue', 'gauge', 'The number of requests in the queue of pending connections.', f['listen queue']);
  metric('max_listen_queue', 'counter', 'The maximum number of requests in the queue of pending connections since the pool has started.', f['max listen queue']);
  metric('listen_queue_length', 'gauge', 'The size of the socket queue of pending connections.', f['listen queue len']);
  metric('idle_processes', 'gauge', 'The number of idle processes.', f['idle processes']);
  metric('active_processes', 'gauge', 'The number of active processes.', f['active processes']);
  metric('total_processes', 'gauge', 'The number of idle + active processes.', f['total processes']);
  metric('max_active_processes', 'counter', 'The maximum number of active processes since the pool has started.', f['max active processes']);
  metric('max_children_reached', 'counter', "The number of times the process limit has been reached when the pm tried to start more children (dynamic and ondemand only).", f['max children reached']);
  metric('slow_requests', 'counter', "The number of requests that exceeded the request slowlog timeout.", f['slow requests']);
  if (full) {
    const per = (name: string, help: string, type: 'gauge' | 'counter', value: (p: Process) => number) => {
      out.push(`# HELP phpfpm_process_${name} ${help}`, `# TYPE phpfpm_process_${name} ${type}`);
      for (const p of processes) out.push(`phpfpm_process_${name}${type === 'counter' ? '_total' : ''}{pid="${p.pid}"} ${value(p)}`);
    };
    per('requests', 'The number of requests the process has served.', 'counter', (p) => p.requests);
    per('request_duration', 'The duration in microseconds of the current or last request.', 'gauge', (p) => p['request duration']);
    per('last_request_cpu', 'The percentage of CPU the process used over its last second or last request.', 'gauge', (p) => p['last request cpu']);
    per('last_request_memory', 'The resident memory of the process, in bytes.', 'gauge', (p) => p['last request memory']);
    out.push('# HELP phpfpm_process_state The state of the process (Starting, Idle, Running, Finishing).', '# TYPE phpfpm_process_state stateset');
    for (const p of processes) {
      for (const s of ['Idle', 'Running', 'Finishing']) out.push(`phpfpm_process_state{pid="${p.pid}",phpfpm_process_state="${s}"} ${p.state === s ? 1 : 0}`);
    }
  }
  out.push('# EOF');
  return out.join('\n') + '\n';
}
