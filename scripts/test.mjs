// `npm test`: build what is missing, type-check, compile the tests, run the whole uvu suite once
// per available mechanism (and per driving mode), then once on evpoll/sim's 'sim' mechanism (run
// mode only: a simulation's clock is virtual, and integrated mode rides on Node's real one), and
// close with a table of the suites and one line over all of them: `tests: N passed, N failed`.
//
// Usage: node scripts/test.mjs [--mechanism NAME]... [--mode run|start]... [file filter]
import { spawnSync, spawn } from 'node:child_process';
import { readdirSync, rmSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { bin, root } from './bin.mjs';
import { parseArgs } from 'node:util';
import { compileTests } from './compile-tests.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    mechanism: { type: 'string', multiple: true },
    mode: { type: 'string', multiple: true },
    'no-typecheck': { type: 'boolean' },
    out: { type: 'string', default: '.test-out' },
  },
});

function step(what, cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${what} failed`);
    console.log('tests: 0 passed, 1 failed');
    process.exit(1);
  }
}

step('build', process.execPath, ['scripts/build.mjs', 'native', 'wasm', 'js', '--if-missing']);
if (!values['no-typecheck']) step('type-check (tsc --noEmit)', process.execPath, [bin('typescript', 'bin/tsc'), '--noEmit', '-p', 'tsconfig.json']);

// Node 20 cannot run .ts: the test files are bundled into .test-out/ (compile-tests.mjs).
const out = resolve(root, values.out); // --out may be relative to the root, or absolute
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => positionals.length === 0 || positionals.some((p) => f.includes(p)))
  .sort();
await compileTests(files.map((f) => join(root, 'test', f)), out);

const { addon } = await import(join(root, 'scripts/load-addon.mjs'));
const mechanisms = values.mechanism ?? [...addon.mechanisms().filter((m) => m.available).map((m) => m.name), 'sim'];
const modes = values.mode ?? ['run', 'start'];
/** The modes a mechanism runs in: 'sim' has no integrated mode (loop.start() refuses it). */
const modesOf = (mechanism) => (mechanism === 'sim' ? modes.filter((m) => m === 'run') : modes);
const uvu = bin('uvu', 'bin.js');

const STALL_MS = Number(process.env.EVPOLL_TEST_STALL_MS) || 45_000;
const EXIT_GRACE_MS = 10_000;

/**
 * uvu's Total/Passed/Skipped lines at the end of a run, or undefined if it printed none. Total
 * counts the tests that ran: skipped ones (kernelOnly on 'sim', or outside an .only) are not in it.
 */
function totals(output) {
  const num = (label) => Number(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm').exec(output)?.[1] ?? NaN);
  const total = num('Total'), passed = num('Passed'), skipped = num('Skipped') || 0;
  if (Number.isNaN(total) || Number.isNaN(passed)) return undefined;
  return { passed, failed: total - passed, skipped };
}

/** What test/harness.ts appends to the progress file: each test's begin, pass or fail, with its file. */
class Progress {
  passed = 0;
  failed = 0;
  current = undefined; // the test begun and not ended: { file, name, at }
  last = undefined; // the last one ended
  failures = []; // `file "name"` of each test that failed
  slowest = []; // the three slowest tests: { ms, test }, slowest first
  #partial = '';

  take(chunk) {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop();
    for (const line of lines) {
      const [what, time, file, name] = line.split('\t');
      if (what === 'begin') this.current = { file, name, at: Number(time) };
      else if (what === 'pass' || what === 'fail') {
        this[what === 'pass' ? 'passed' : 'failed']++;
        const ms = this.current ? Number(time) - this.current.at : 0;
        this.slowest = [...this.slowest, { ms, test: `${file} "${name}"` }].sort((a, b) => b.ms - a.ms).slice(0, 3);
        if (what === 'fail') this.failures.push(`${file} "${name}"`);
        this.last = { file, name };
        this.current = undefined;
      }
    }
  }

  /** Where the suite was: the test running, or the last one that ended. */
  where() {
    if (this.current) return `in ${this.current.file} "${this.current.name}"`;
    if (this.last) return `after ${this.last.file} "${this.last.name}" (between tests or in a hook)`;
    return 'before any test began';
  }
}

/** Kills process group `pgid`, if anything of it is left. */
function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // none left
  }
}

// A suite runs in a process group of its own: if this process is stopped, the group goes too.
let running; // { group, progressDir } of the suite running now
process.on('exit', () => {
  if (!running) return;
  killGroup(running.group);
  rmSync(running.progressDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(128 + os.constants.signals[signal]));

function runSuite(mechanism, mode) {
  return new Promise((resolve) => {
    const progressDir = mkdtempSync(join(tmpdir(), 'evpoll-test-'));
    const progressFile = join(progressDir, 'progress');
    closeSync(openSync(progressFile, 'w'));
    const env = { ...process.env, EVPOLL_MECHANISM: mechanism, EVPOLL_MODE: mode, NO_COLOR: '1', EVPOLL_TEST_PROGRESS: progressFile };
    delete env.FORCE_COLOR;
    // Its own process group: the watchdog kills the suite with every child it left behind.
    const child = spawn(process.execPath, [uvu, out, '\\.mjs$'], {
      cwd: root,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running = { group: child.pid, progressDir };
    const progress = new Progress();
    let output = '';
    let lastActivity = performance.now();
    let totalsAt;
    let killed;
    const active = () => { lastActivity = performance.now(); };
    child.stdout.on('data', (d) => {
      output += d;
      process.stdout.write(d);
      active();
      if (totalsAt === undefined && totals(output)) totalsAt = performance.now();
    });
    child.stderr.on('data', (d) => { output += d; process.stderr.write(d); active(); });
    const progressFd = openSync(progressFile, 'r');
    const chunk = Buffer.alloc(65536);
    const readProgress = () => {
      for (let n; (n = readSync(progressFd, chunk)) > 0;) {
        progress.take(chunk.toString('utf8', 0, n));
        active();
      }
    };
    const watchdog = setInterval(() => {
      readProgress();
      const now = performance.now();
      if (totalsAt !== undefined && now - totalsAt > EXIT_GRACE_MS) {
        killed = `still alive ${EXIT_GRACE_MS / 1000} s after printing its totals: something it left (a handle, a child, a timer) keeps it running; the last test was ${progress.where()}`;
      } else if (totalsAt === undefined && now - lastActivity > STALL_MS) {
        killed = `no progress for ${Math.round((now - lastActivity) / 1000)} s ${progress.where()}`;
      } else return;
      clearInterval(watchdog);
      killGroup(child.pid);
    }, 500);
    child.on('close', (code, signal) => {
      clearInterval(watchdog);
      // Whatever the suite left running in its group (it has ended: nothing of it needs them).
      killGroup(child.pid);
      running = undefined;
      readProgress();
      closeSync(progressFd);
      rmSync(progressDir, { recursive: true, force: true });
      const t = totals(output);
      let result;
      if (killed) {
        console.log(`\n== watchdog: ${mechanism}/${mode} killed: ${killed}`);
        // uvu prints a file's failures after its last test: a killed suite never got there.
        for (const f of progress.failures) console.log(`== failed before that: ${f}`);
        // Killed after its totals: they stand, plus one failure for the process itself.
        // Killed before them: the tests that ended, plus the one it was stuck in.
        result = t ? { ...t, failed: t.failed + 1 } : { passed: progress.passed, failed: progress.failed + 1 };
      } else if (!t) {
        result = { passed: progress.passed, failed: progress.failed + 1 };
        console.log(`\n== ${mechanism}/${mode} exited (${signal ?? `code ${code}`}) without its totals, ${progress.where()}`);
      } else {
        result = t;
        if ((code !== 0 || signal) && t.failed === 0) result.failed = 1; // crashed after counting
      }
      result.slowest = progress.slowest;
      resolve(result);
    });
  });
}

let passed = 0, failed = 0, skipped = 0;
const table = new Map(); // mechanism -> mode -> { passed, failed, skipped }
for (const mechanism of mechanisms) {
  table.set(mechanism, new Map());
  for (const mode of modesOf(mechanism)) {
    console.log(`\n== mechanism ${mechanism}, mode ${mode}`);
    const t = await runSuite(mechanism, mode);
    console.log(`== ${mechanism}/${mode}: ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}`);
    // How close the slowest tests come to the watchdog's limit.
    for (const { ms, test } of t.slowest) console.log(`==   ${(ms / 1000).toFixed(1)} s ${test}`);
    passed += t.passed;
    failed += t.failed;
    skipped += t.skipped ?? 0;
    table.get(mechanism).set(mode, t);
  }
}
// One column per mechanism ('sim' its own), one row per mode: passed (and failed, skipped where any).
const cell = (t) => (t ? `${t.passed}${t.failed ? ` / ${t.failed} failed` : ''}${t.skipped ? ` (${t.skipped} skipped)` : ''}` : '-');
const rows = [['', ...table.keys()], ...modes.map((mode) => [mode, ...[...table.values()].map((byMode) => cell(byMode.get(mode)))])];
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log('');
for (const r of rows) console.log(`== ${r.map((c, i) => c.padEnd(widths[i])).join('   ').trimEnd()}`);
if (passed + failed === 0) failed = 1; // a run that executed no test is a failure
// Skipped tests (kernel-only ones on 'sim') are counted on a line of their own: the last line
// stays exactly `tests: N passed, N failed`.
if (skipped) console.log(`skipped: ${skipped} (by name, each listed above)`);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
