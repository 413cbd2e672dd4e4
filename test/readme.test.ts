// The README's examples run as written: the quick start on the mechanism under test, and
// evpoll/shm's master and worker (no backend involved: in the epoll/run suite only).
import { kernelOnly, test } from './harness.js';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { MECHANISM, MODE } from './helpers.js';

kernelOnly("the README's examples run in real child processes");

const readme = () => readFileSync(join(packageRoot, 'README.md'), 'utf8');

test('the quick start prints three heartbeats and three reads, then returns', () => {
  const code = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme())?.[1];
  assert.ok(code, 'the README has a quick start code block');
  // Inside the package folder, 'evpoll' resolves to this package (self-reference).
  const file = join(packageRoot, `.quickstart-${process.pid}.mjs`);
  writeFileSync(file, code);
  try {
    const out = execFileSync(process.execPath, [file], {
      env: { ...process.env, EVPOLL_MECHANISM: MECHANISM },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(out.trim().split('\n'), [1, 2, 3].flatMap((i) => [`heartbeat ${i} on ${MECHANISM}`, `read 6 bytes: beat ${i}`]));
  } finally {
    rmSync(file, { force: true });
  }
});

if (MECHANISM === 'epoll' && MODE === 'run') {
  test("evpoll/shm's example: the worker takes the lock and dies holding it, the master frees it", () => {
    const code = /### evpoll\/shm[\s\S]*?```js\n([\s\S]*?)```/.exec(readme())?.[1];
    assert.ok(code, 'the evpoll/shm section has a code block');
    const file = join(packageRoot, `.shm-example-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(out.trim().split('\n'), [
        'worker: tryLock() true',
        'master: held by the dead worker: true',
        'master: forceUnlock() true, tryLock() true',
        'master: served 1',
      ]);
    } finally {
      rmSync(file, { force: true });
    }
  });
}

test.run();
