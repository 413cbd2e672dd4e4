// Not a test of evpoll: the fixture of watchdog.test.ts, and a way to try scripts/test.mjs's
// watchdog by hand. Off unless EVPOLL_TEST_SABOTAGE names this suite (never set in CI):
// - `<mechanism>/<mode>`: one test passes, one fails, one hangs the way the 10,000-SIGTERM test
//   once did (a SIGTERM handler, a child, a pending wait; bounded at two minutes, so that even
//   a copy whose watchdog died ends by itself);
// - `<mechanism>/<mode>/linger`: two tests pass, and one leaves an interval running, so that the
//   process lives on after its totals.
//   EVPOLL_TEST_SABOTAGE=epoll/run node scripts/test.mjs --mechanism epoll --mode run sabotage
import { spawn } from 'node:child_process';
import * as assert from 'uvu/assert';
import { test } from './harness.js';
import { MECHANISM, MODE } from './helpers.js';

const suite = `${MECHANISM}/${MODE}`;
const sabotage = process.env.EVPOLL_TEST_SABOTAGE;

if (sabotage === suite) {
  test('sabotage: passes', () => {});
  test('sabotage: fails', () => {
    assert.unreachable('failed on purpose');
  });
  test('sabotage: hangs', async () => {
    process.on('SIGTERM', () => {});
    const child = spawn('sleep', ['120'], { stdio: 'ignore' });
    process.stdout.write(`sabotage: child ${child.pid}\n`);
    await new Promise((resolve) => setTimeout(resolve, 120_000));
  });
  test.run();
} else if (sabotage === `${suite}/linger`) {
  test('sabotage: passes', () => {});
  test('sabotage: leaves an interval running', () => {
    setInterval(() => {}, 1000);
    setTimeout(() => process.exit(0), 120_000);
  });
  test.run();
}
