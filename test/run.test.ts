// loop.run() (fpm_event_loop), stop(), and EINTR in the wait.
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { EV } from '../src/index.js';
import { newLoop, iterate, loopNow, pipe, MODE } from './helpers.js';


test('run() returns when nothing is registered any more', () => {
  const loop = newLoop();
  let fires = 0;
  loop.timer(0, (ev) => { if (++fires < 3) ev.add(1); }).add(1);
  loop.run();
  assert.is(fires, 3);
  loop.run(); // nothing registered: returns at once
  loop.close();
});

test('stop() from a callback makes run() return after that iteration', () => {
  const loop = newLoop();
  const [r] = pipe();
  loop.event(r, EV.READ, () => {}).add(); // would keep run() going forever
  let beats = 0;
  let sameBatch = 0;
  loop.timer(EV.PERSIST, () => { if (++beats === 3) loop.stop(); }).add(2);
  loop.timer(EV.PERSIST, () => { if (beats === 3) sameBatch++; }).add(2);
  loop.run();
  assert.is(beats, 3);
  assert.ok(sameBatch <= 1, 'the batch in which stop() was called finishes');
  // run() again continues where it left off.
  loop.timer(0, () => loop.stop()).add(5);
  loop.run();
  assert.ok(beats > 3);
  loop.close();
});

test('runOnce() with nothing registered and no timeout returns 0 at once', async () => {
  const loop = newLoop();
  const start = performance.now();
  assert.is(loop.runOnce(), 0);
  assert.ok(performance.now() - start < 500, 'returned at once'); // roomy: a shared CPU stalls
  loop.close();
});

test('runOnce(timeoutMs) waits at most that long', async () => {
  const loop = newLoop();
  const [r] = pipe();
  loop.event(r, EV.READ, () => {}).add();
  const start = loopNow();
  assert.is(await iterate(loop, 30), 0);
  const took = loopNow() - start;
  assert.ok(took >= 29 && took < 1000, `waited ${took} ms`);
  loop.close();
});

kernelOnly('signals sent by another process interrupt the wait (EINTR)', () => {
  test('EINTR in the wait is not an error: the iteration ends early, timers still run', async () => {
    const loop = newLoop();
    const [r] = pipe();
    loop.event(r, EV.READ, () => {}).add();
    const onSignal = () => {};
    process.on('SIGUSR2', onSignal); // a handler, so the signal interrupts instead of killing
    // Signals every 5 ms from another process while this thread is blocked in the wait.
    const storm = spawn('sh', ['-c', `i=0; while [ $i -lt 40 ]; do kill -USR2 ${process.pid} || exit 0; sleep 0.005; i=$((i+1)); done`], { stdio: 'ignore' });
    try {
      let fired = 0;
      const start = performance.now(); // before add(), which reads the loop's clock
      loop.timer(0, () => fired++).add(120);
      let iterations = 0;
      let errors = 0;
      while (fired === 0 && performance.now() - start < 3000) {
        try {
          await iterate(loop);
        } catch {
          errors++;
        }
        iterations++;
      }
      assert.is(errors, 0);
      assert.is(fired, 1, 'the timer fired');
      assert.ok(performance.now() - start >= 119, 'and not early');
      // In run() mode the signals end blocking waits early; in start() mode Node's loop absorbs them.
      if (MODE === 'run') assert.ok(iterations > 1, `signals ended waits early (${iterations} iterations)`);
    } finally {
      // A kill already under way would find no handler after off() and end this process: the
      // storm is gone first.
      if (storm.exitCode === null && storm.signalCode === null) {
        const gone = new Promise((resolve) => storm.once('exit', resolve));
        storm.kill();
        await gone;
      }
      process.off('SIGUSR2', onSignal);
      loop.close();
    }
  });
});

test.run();
