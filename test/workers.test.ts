// worker_threads: each thread runs its own loops, independent of the others; a thread that
// exits with a loop open (even started, even watching signals) releases it.
import { kernelOnly, onCleanup, test } from './harness.js';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { EV } from '../src/index.js';
import { CHILD_PRELUDE, newLoop, iterate, pipe, writeByte, drain, openFds, sleep, eventually } from './helpers.js';

kernelOnly('worker_threads, each loading the package without a Simulation');


/** A worker running `body` (an ES module body with CHILD_PRELUDE's names, parentPort and workerData in scope). */
function worker(body: string): Worker & { exited: Promise<number> } {
  const code = `${CHILD_PRELUDE}import { parentPort, workerData } from 'node:worker_threads';
${body}`;
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`)) as Worker & { exited: Promise<number> };
  // Listen from the start: a worker may be gone before the test gets round to waiting for it.
  w.exited = new Promise((resolve) => {
    w.on('error', () => {});
    w.once('exit', resolve);
  });
  // A failed test must not leave it keeping this process alive (terminate() cannot interrupt
  // a loop blocked in run(): unref() lets the process end anyway).
  onCleanup(() => {
    w.unref();
    void w.terminate();
  });
  return w;
}

const exited = (w: { exited: Promise<number> }) => w.exited;

test('loops in four threads run at once, each on its own fds and timers', async () => {
  const workers = Array.from({ length: 4 }, (_, i) => worker(`
    const loop = new EventLoop({ mechanism: MECHANISM });
    const [r, w] = net.pipe();
    let reads = 0, beats = 0;
    loop.event(r, EV.READ, () => { reads++; net.read(r, new Uint8Array(16)); if (reads === 20) loop.stop(); }).add();
    loop.timer(EV.PERSIST, () => { beats++; net.write(w, new Uint8Array([${i}])); }).add(1);
    loop.run();
    loop.close();
    net.close(r); net.close(w);
    parentPort.postMessage({ reads, beats });
  `));
  const results = await Promise.all(workers.map((w) => new Promise<{ reads: number; beats: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })));
  for (const r of results) {
    assert.is(r.reads, 20);
    assert.ok(r.beats >= 20);
  }
  await Promise.all(workers.map(exited));
});

test('the main thread\'s loop is not disturbed by worker loops coming and going', async () => {
  const loop = newLoop();
  const [r, w] = pipe();
  let reads = 0;
  loop.event(r, EV.READ, () => { reads++; drain(r); }).add();
  const churn = Array.from({ length: 3 }, () => worker(`
    for (let i = 0; i < 50; i++) {
      const loop = new EventLoop({ mechanism: MECHANISM });
      const [r, w] = net.pipe();
      loop.event(r, EV.READ, () => {}).add();
      loop.timer(0, () => {}).add(0);
      loop.runOnce(0);
      loop.close();
      net.close(r); net.close(w);
    }
  `));
  for (let i = 0; i < 10; i++) {
    writeByte(w);
    await iterate(loop, 100);
    await sleep(1);
  }
  assert.is(reads, 10);
  assert.equal(await Promise.all(churn.map(exited)), [0, 0, 0]);
  loop.close();
});

test('a thread that exits with loops open — idle, started, watching signals — releases them', async () => {
  // The first signal watched in a process opens a few fds for good (the native side's private
  // libuv loop): take the baseline after that.
  const warm = newLoop();
  warm.signal('SIGUSR2', () => {});
  warm.close();
  const before = openFds();
  for (const how of ['return', 'process.exit', 'throw']) {
    const ws = Array.from({ length: 4 }, () => worker(`
      const idle = new EventLoop({ mechanism: MECHANISM });
      const started = new EventLoop({ mechanism: MECHANISM });
      const [r, w] = net.pipe();
      started.event(r, EV.READ, () => {}).add();
      started.timer(EV.PERSIST, () => {}).add(5);
      started.signal('SIGUSR2', () => {});
      started.start();
      setTimeout(() => {
        ${how === 'return' ? 'started.unref();' : how === 'process.exit' ? 'process.exit(0);' : "throw new Error('worker dies');"}
      }, 20);
    `));
    const codes = await Promise.all(ws.map(exited));
    assert.is(codes.length, 4, how);
  }
  // A terminate() while the loop is started.
  const t = worker(`
    const loop = new EventLoop({ mechanism: MECHANISM });
    const [r] = net.pipe();
    loop.event(r, EV.READ, () => {}).add();
    loop.start();
    parentPort.postMessage('started');
  `);
  await new Promise((resolve) => t.once('message', resolve));
  await t.terminate();
  // The workers' pipes were not closed by their code; their loops' own fds (epoll's, the
  // helper's wake fd, the signal pipes) must be gone: at most the workers' pipes remain.
  let leaked: number[] = [];
  const settled = () => (leaked = openFds().filter((fd) => !before.includes(fd))).length <= 2 * 13;
  await eventually(settled); // asserted below
  assert.ok(leaked.length <= 2 * 13, `${leaked.length} fds left after 13 workers that each left one pipe open`);
});

test.run();
