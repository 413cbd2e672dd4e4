// How much of the machine something else used while a workload ran. The benchmarks share a
// 2-core machine with whatever else runs there (builds, test suites): the report says how much
// CPU time other processes took, so a noisy figure can be told from a slow one.
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Jiffies of the whole machine (all CPUs) or of one CPU: in all, and spent in processes (user,
 * nice, system). Interrupt and softirq time is left out of the latter: the network stack's
 * softirq work for our own sockets lands there, charged to no process.
 */
function cpuStat(cpu?: number): { total: number; busy: number; idle: number } {
  const name = cpu === undefined ? 'cpu' : `cpu${cpu}`;
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(name + ' '))!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, busy: f[0] + f[1] + f[2], idle: f[3] + f[4] };
}

/** The pid and every live descendant's. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const task of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').trim();
        if (kids) out.push(...kids.split(/\s+/).map(Number));
      }
    } catch {}
  }
  return out;
}

/** utime + stime (and, with `reaped`, the children's it has waited for) of each pid, in jiffies. */
export function cpuTicks(pids: number[], reaped = false): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // proc(5) fields 14-17: utime, stime, cutime, cstime
      out.set(pid, Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0));
    } catch {}
  }
  return out;
}

const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

export interface LoadMark {
  machine: { total: number; busy: number; idle: number };
  own: number;
}

/** This process and its descendants, live or reaped. */
function ownTicks(): number {
  return sum(cpuTicks(processTree(process.pid), true));
}

export function markLoad(): LoadMark {
  return { machine: cpuStat(), own: ownTicks() };
}

/** The share (0..1) of the machine's CPU time since `mark` that other processes used. */
export function foreignLoad(mark: LoadMark): number {
  return loadSince(mark).others;
}

/** Since `mark`: the share of the machine's CPU time other processes used, and the share left idle. */
export function loadSince(mark: LoadMark): { others: number; idle: number } {
  const now = cpuStat();
  const total = now.total - mark.machine.total;
  const busy = now.busy - mark.machine.busy;
  const own = ownTicks() - mark.own;
  if (total <= 0) return { others: 0, idle: 1 };
  const idle = now.idle - mark.machine.idle;
  return { others: Math.max(0, busy - own) / total, idle: Math.max(0, idle) / total };
}

/**
 * Whether other processes may have taken CPU time from a measurement: they ran, and no CPU was
 * left idle for them elsewhere. (A workload that keeps one CPU busy loses nothing to processes
 * that fit on the other one.)
 */
export function disturbed(load: { others: number; idle: number }): boolean {
  return load.others > MIN_OTHERS && load.idle < MIN_IDLE;
}

/** One CPU's busy share not accounted for by `pids` (all pinned to it) between two marks. */
export function cpuMark(cpu: number): { total: number; busy: number; idle: number } {
  return cpuStat(cpu);
}

export function foreignOnCpu(cpu: number, before: { total: number; busy: number }, ownTicks: number): number {
  const now = cpuStat(cpu);
  const total = now.total - before.total;
  return total > 0 ? Math.max(0, now.busy - before.busy - ownTicks) / total : 0;
}

/** See disturbed(). */
const MIN_OTHERS = 0.1;
const MIN_IDLE = 0.1;

/** How many measurements a workload may take again in all: a machine busy all along gains nothing from more. */
export class RetryBudget {
  constructor(public left: number) {}
}

/**
 * Runs `attempt` and, while it was disturbed (see disturbed()) and `budget` allows, again; keeps the least disturbed result. Interference only ever slows
 * a measurement down, so a repeat taken on a quieter machine is the better figure.
 */
export async function leastDisturbed<T>(what: string, attempt: () => Promise<T> | T, budget: RetryBudget): Promise<{ value: T; otherLoad: number }> {
  let best: { value: T; otherLoad: number } | undefined;
  for (;;) {
    const mark = markLoad();
    const value = await attempt();
    const load = loadSince(mark);
    if (!best || load.others < best.otherLoad) best = { value, otherLoad: load.others };
    if (!disturbed(load) || budget.left <= 0) break;
    budget.left--;
    console.log(`  ${what}: other processes took ${(load.others * 100).toFixed(0)}% of the machine, none left idle; measuring again`);
  }
  return best!;
}
