// `npm test`: build what is missing, type-check, compile the tests, run the whole uvu suite once
// per available mechanism (and per driving mode), and close with one line over all of them:
// `tests: N passed, N failed`.
//
// Usage: node scripts/test.mjs [--mechanism NAME]... [--mode run|start]... [file filter]
import { spawnSync, spawn } from 'node:child_process';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bin, root } from './bin.mjs';
import { parseArgs } from 'node:util';
import { compileTests } from './compile-tests.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    mechanism: { type: 'string', multiple: true },
    mode: { type: 'string', multiple: true },
    'no-typecheck': { type: 'boolean' },
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
const out = join(root, '.test-out');
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => positionals.length === 0 || positionals.some((p) => f.includes(p)))
  .sort();
await compileTests(files.map((f) => join(root, 'test', f)), out);

const { addon } = await import(join(root, 'scripts/load-addon.mjs'));
const mechanisms = values.mechanism ?? addon.mechanisms().filter((m) => m.available).map((m) => m.name);
const modes = values.mode ?? ['run', 'start'];
const uvu = bin('uvu', 'bin.js');

/** uvu prints Total/Passed/Skipped lines at the end of a run; a run that printed none failed. */
function tally(output) {
  const num = (label) => Number(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm').exec(output)?.[1] ?? NaN);
  const total = num('Total'), passed = num('Passed'), skipped = num('Skipped') || 0;
  if (Number.isNaN(total) || Number.isNaN(passed)) return { passed: Number.isNaN(passed) ? 0 : passed, failed: 1 };
  return { passed, failed: total - passed - skipped, skipped };
}

function runSuite(mechanism, mode) {
  return new Promise((resolve) => {
    const env = { ...process.env, EVPOLL_MECHANISM: mechanism, EVPOLL_MODE: mode, NO_COLOR: '1' };
    delete env.FORCE_COLOR;
    const child = spawn(process.execPath, [uvu, '.test-out', '\\.mjs$'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => { output += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { output += d; process.stderr.write(d); });
    child.on('close', (code, signal) => {
      const t = tally(output);
      if ((code !== 0 || signal) && t.failed === 0) t.failed = 1; // crashed after counting
      resolve(t);
    });
  });
}

let passed = 0, failed = 0, skipped = 0;
for (const mechanism of mechanisms) {
  for (const mode of modes) {
    console.log(`\n== mechanism ${mechanism}, mode ${mode}`);
    const t = await runSuite(mechanism, mode);
    console.log(`== ${mechanism}/${mode}: ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}`);
    passed += t.passed;
    failed += t.failed;
    skipped += t.skipped ?? 0;
  }
}
if (passed + failed === 0) failed = 1; // a run that executed no test is a failure
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
