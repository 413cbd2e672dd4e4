// scripts/test.mjs's watchdog: a suite process that hangs, or lives on after its totals, is
// killed with its process group, named, and counted as failed — `npm test` always ends. It is
// about the test runner, not a backend, so it runs in one suite only (epoll, run mode).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { packageRoot } from '../src/paths.js';
import { onCleanup, test } from './harness.js';
import { MECHANISM, MODE, eventually } from './helpers.js';

/** scripts/test.mjs on the sabotage fixture, with short watchdog limits; its output and duration. */
function runSabotaged(sabotage: string) {
  const out = `.test-out-watchdog-${process.pid}`;
  onCleanup(() => rmSync(join(packageRoot, out), { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env, EVPOLL_TEST_SABOTAGE: sabotage, EVPOLL_TEST_STALL_MS: '3000' };
  delete env.EVPOLL_TEST_PROGRESS; // the inner run's watchdog gives its own
  const started = performance.now();
  const r = spawnSync(process.execPath, ['scripts/test.mjs', '--mechanism', MECHANISM, '--mode', MODE, '--out', out, '--no-typecheck', 'sabotage'], {
    cwd: packageRoot,
    env,
    encoding: 'utf8',
    timeout: 120_000,
    killSignal: 'SIGKILL',
  });
  return { ...r, lines: r.stdout.trimEnd().split('\n'), seconds: (performance.now() - started) / 1000 };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

if (MECHANISM === 'epoll' && MODE === 'run') {
  test('a failing test and a hanging one: the hung suite is killed, both are named, the run ends', async () => {
    const r = runSabotaged(`${MECHANISM}/${MODE}`);
    assert.is(r.error, undefined, `the run itself ended (${r.seconds.toFixed(1)} s)`);
    assert.is(r.lines.at(-1), 'tests: 1 passed, 2 failed', r.stdout);
    assert.is(r.status, 1);
    assert.match(r.stdout, 'sabotage: fails');
    assert.match(r.stdout, /== watchdog: epoll\/run killed: no progress for \d+ s in sabotage\.test\.mjs "sabotage: hangs"/);
    // The hung test's child went with its process group.
    const child = Number(/sabotage: child (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(child > 0, 'the hung test started its child');
    assert.ok(await eventually(() => !alive(child)), `child ${child} is gone`);
  });

  test('a suite that lives on after its totals is killed and counted as failed', () => {
    const r = runSabotaged(`${MECHANISM}/${MODE}/linger`);
    assert.is(r.error, undefined, `the run itself ended (${r.seconds.toFixed(1)} s)`);
    assert.is(r.lines.at(-1), 'tests: 2 passed, 1 failed', r.stdout);
    assert.match(r.stdout, /== watchdog: epoll\/run killed: still alive 10 s after printing its totals.*sabotage\.test\.mjs "sabotage: leaves an interval running"/);
  });

  test.run();
}
