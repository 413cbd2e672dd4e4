// The pm workload's table, as bench/pm.ts prints it and bench/report.ts writes it into report.md.
import { fmt, type Summary } from './stats.js';

export interface PmSetup {
  maxChildren: number;
  clients: number;
  busyMs: number;
  /** Seconds: the load, and the idle periods before and after it. */
  duration: number;
  idleBefore: number;
  idleAfter: number;
  sampleMs: number;
  mechanism: string;
  repeats: number;
}

export interface PmModeSummary {
  mode: string;
  /** The mode's own flags, beside --max-children. */
  settings: string;
  idleWorkers?: Summary;
  peakWorkers?: Summary;
  endWorkers?: Summary;
  secondsToPeak?: Summary;
  secondsToEnough?: Summary;
  secondsToSettle?: Summary;
  rps?: Summary;
  p50Ms?: Summary;
  p90Ms?: Summary;
  p99Ms?: Summary;
  maxMs?: Summary;
  rssIdleMb?: Summary;
  rssPeakMb?: Summary;
  errors?: number;
  /** Share of the machine other processes used during the mode's runs. */
  otherLoad?: Summary;
  runs?: unknown[];
  error?: string;
}

/** What the table measures, in a sentence. */
export function pmSetupText(s: PmSetup): string {
  const ceiling = (s.clients * 1000) / s.busyMs;
  return `examples/server on ${s.mechanism}, --max-children ${s.maxChildren} in every mode; ${s.idleBefore} s idle, then ${s.duration} s of ${s.clients} closed-loop clients each sending GET /busy?ms=${s.busyMs} ` +
    `(the worker holds the request ${s.busyMs} ms) on a new connection per request, then ${s.idleAfter} s idle; ` +
    `the workers counted and their RSS summed every ${s.sampleMs} ms (the master's own RSS left out). Idle: the last sample before the step; s after the step: until the first sample at the peak; s after the load: until the pool settled at its end size; s to ${s.clients} workers: from the step until there was a worker for each client. ${s.clients} clients need ${s.clients} workers: at most ${fmt(ceiling)} requests/s, ${s.busyMs} ms each. ` +
    `${s.repeats === 1 ? 'One run of each mode' : `Medians of ${s.repeats} runs of each mode`}; ratios against static.`;
}

/** Markdown lines: the table, one row per mode. */
export function pmTable(modes: PmModeSummary[], setup: PmSetup): string[] {
  const num = (x: number) => (x === 0 ? '0' : fmt(x));
  const med = (x: Summary | undefined) => (x ? num(x.median) : '—');
  const whole = (x: Summary | undefined) => (x ? String(Math.round(x.median)) : '—');
  const base = modes.find((m) => m.mode === 'static');
  const vs = (x: Summary | undefined, b: Summary | undefined) => (x && b && b.median > 0 && base ? ` (${num(x.median / b.median)}×)` : '');
  const lines = [
    pmSetupText(setup),
    '',
    `| pm | settings | workers: idle → peak (s after the step) → end (s after the load) | s to ${setup.clients} workers | requests/s | p50 ms | p99 ms | max ms | workers' RSS idle, MB | at the peak, MB |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const m of modes) {
    if (m.error) {
      lines.push(`| ${m.mode} | ${m.settings} | failed: ${m.error.replace(/\|/g, '/').slice(0, 200)} | | | | | | | |`);
      continue;
    }
    const failed = m.errors ? ` (${m.errors} failed)` : '';
    lines.push(
      `| ${m.mode} | ${m.settings || '—'} | ${whole(m.idleWorkers)} → ${whole(m.peakWorkers)} (${med(m.secondsToPeak)} s) → ${whole(m.endWorkers)} (${med(m.secondsToSettle)} s) | ${med(m.secondsToEnough)} | ` +
        `${med(m.rps)}${m === base ? '' : vs(m.rps, base?.rps)}${failed} | ${med(m.p50Ms)} | ${med(m.p99Ms)}${m === base ? '' : vs(m.p99Ms, base?.p99Ms)} | ${med(m.maxMs)}${m === base ? '' : vs(m.maxMs, base?.maxMs)} | ` +
        `${med(m.rssIdleMb)}${m === base ? '' : vs(m.rssIdleMb, base?.rssIdleMb)} | ${med(m.rssPeakMb)}${m === base ? '' : vs(m.rssPeakMb, base?.rssPeakMb)} |`,
    );
  }
  const others = modes.filter((m) => m.otherLoad);
  if (others.length) {
    lines.push('', `Other processes used ${others.map((m) => `${Math.round(m.otherLoad!.median * 100)}%`).join(', ')} of the machine during the ${others.map((m) => m.mode).join(', ')} runs.`);
  }
  return lines;
}
