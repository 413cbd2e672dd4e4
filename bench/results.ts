// bench/results/latest.json: every workload's last results, with the machine they came from.
// A workload run on its own replaces only its own entry, so the report always shows each
// workload's latest figures.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { foreignLoad, type LoadMark } from './load.js';

/** The repository root: the bundles run from .bench-out/, one level below it. */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const resultsDir = join(root, 'bench', 'results');
export const latestPath = join(resultsDir, 'latest.json');
/** Where bench artefacts that are never committed go (compiled C anchors, configs). */
export const outDir = join(root, '.bench-out');

export interface Machine {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  /** The commit measured, with "+ local changes" when src/, native/ or assembly/ differ from it. */
  commit?: string;
}

function commit(): string | undefined {
  const git = (args: string[]) => {
    const r = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (!head) return undefined;
  const dirty = git(['status', '--porcelain', '--', 'src', 'native', 'assembly', 'examples']);
  return dirty ? `${head} + local changes` : head;
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    // /proc/cpuinfo's model name is what lscpu shows; the same string as os.cpus() on Linux.
    const m = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {}
  return { cpu, cores: cpus().length, kernel: release(), node: process.version, commit: commit() };
}

export interface Latest {
  machine: Machine;
  workloads: Record<string, WorkloadResult>;
}

export interface WorkloadResult {
  date: string;
  quick: boolean;
  machine: Machine;
  [key: string]: unknown;
}

export function readLatest(): Latest {
  if (existsSync(latestPath)) {
    try {
      return JSON.parse(readFileSync(latestPath, 'utf8')) as Latest;
    } catch {}
  }
  return { machine: machine(), workloads: {} };
}

/**
 * Records one workload's results (replacing its previous ones), with the share of the machine
 * other processes used since `mark` (bench/load.ts).
 */
export function saveWorkload(name: string, quick: boolean, data: Record<string, unknown>, mark?: LoadMark): void {
  const latest = readLatest();
  const m = machine();
  latest.machine = m;
  const otherLoad = mark ? +foreignLoad(mark).toFixed(3) : undefined;
  if (otherLoad !== undefined) console.log(`${name}: other processes used ${(otherLoad * 100).toFixed(0)}% of the machine meanwhile`);
  latest.workloads[name] = { date: new Date().toISOString(), quick, machine: m, otherLoad, ...data };
  mkdirSync(dirname(latestPath), { recursive: true });
  const temp = `${latestPath}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(latest, null, 1) + '\n');
  renameSync(temp, latestPath);
}
