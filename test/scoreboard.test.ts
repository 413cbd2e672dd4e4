// The server's scoreboard (examples/server/scoreboard.ts): a worker process writes its record
// request after request while this process reads it, and every copy read is one the writer
// wrote whole (the sequence lock); the master's release() moves a gone worker's accepted
// connections into the pool's count, and evens a sequence word left odd by a worker killed
// mid-write. This file runs itself as the writer (WRITER set, the region as fd 3). No backend
// is involved: in the epoll/run suite only.
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SharedRegion } from '../src/shm.js';
import { Scoreboard, State, reads as copies, regionBytes } from '../examples/server/scoreboard.js';
import { MECHANISM, MODE, killOnCleanup } from './helpers.js';

const WRITER = 'EVPOLL_SCOREBOARD_WRITER';
const THIS_FILE = fileURLToPath(import.meta.url);
const RECORDS = 4;

/** The writer: request `n` has URI /r/n and is the record's n-th, until `count` requests, odd ones as pages, even ones answered at once; then exits. */
function writer(count: number): void {
  const board = new Scoreboard(SharedRegion.open(3));
  const buf = Buffer.alloc(64);
  for (let n = 1; n <= count; n++) {
    const length = buf.write(`GET /r/${n}`, 'latin1');
    if (n % 2 === 1) { // a page: begun, then ended
      board.requestStart(0, buf, 0, 3, 4, length, n);
      board.countAccepted(0);
      board.requestEnd(0, n + 0.5, false);
    } else { // answered at once: one write
      board.countAccepted(0);
      board.requestDone(0, buf, 0, 3, 4, length, n, false);
    }
  }
}

test('a record read while its worker writes it is always one the worker wrote whole', async () => {
  const region = SharedRegion.create(regionBytes(RECORDS));
  try {
    const board = new Scoreboard(region, RECORDS);
    board.claim(0, 1, 0);
    const COUNT = 300_000;
    const stdio: ('ignore' | 'inherit' | number)[] = ['ignore', 'inherit', 'inherit', region.fd];
    const child = killOnCleanup(spawn(process.execPath, [THIS_FILE], { env: { ...process.env, [WRITER]: String(COUNT) }, stdio }));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let reads = 0, running = 0, torn = 0;
    const seen = new Set<number>();
    copies.stale = 0;
    const bad: string[] = [];
    // Reads for as long as the writer writes (synchronously: this process only reads).
    for (let last = 0; last < COUNT && child.exitCode === null; reads++) {
      const r = board.record(0);
      const n = r.requestSeq;
      if (n === 0) continue;
      last = n;
      seen.add(n);
      const whole = r.uri === `/r/${n}` && r.method === 'GET' && r.requestStart === n &&
        (r.state === State.Active ? r.requests === n - 1 && (r.accepted === n - 1 || r.accepted === n) && r.requestEnd === (n === 1 ? 0 : n - 1)
          : r.state === State.Idle && r.requests === n && r.requestEnd === (n % 2 === 1 ? n + 0.5 : n) && (r.accepted === n || r.accepted === n + 1));
      if (r.state === State.Active) running++;
      if (!whole) {
        torn++;
        if (bad.length < 3) bad.push(JSON.stringify(r));
      }
      if (reads % 4096 === 0) await new Promise((resolve) => setImmediate(resolve)); // let the exit event in
    }
    assert.is(await exited, 0);
    // A copy may mix two writes only where the reader gave up waiting on a writer stopped
    // mid-write for ~1 ms (descheduled on a busy machine; or killed, until the master reaps it).
    assert.ok(torn <= copies.stale, `${torn} of ${reads} reads mixed two requests, ${copies.stale} taken stale: ${bad.join('\n')}`);
    // The reads overlapped the writes: they saw the record at more than one request (how many,
    // and how many mid-request, depends on how the two processes were scheduled).
    assert.ok(seen.size >= 2, `${reads} reads saw ${seen.size} requests (${running} mid-request)`);
    const final = board.record(0);
    assert.equal([final.requests, final.accepted, final.uri], [COUNT, COUNT, `/r/${COUNT}`]);
  } finally {
    region.close();
  }
});

test('release(): a gone worker\'s accepted connections stay in the pool\'s count, its record is freed, and an odd sequence word left by a killed writer does not stall readers', () => {
  const region = SharedRegion.create(regionBytes(RECORDS));
  try {
    const board = new Scoreboard(region, RECORDS);
    board.initPool('dynamic', 1000);
    board.claim(1, 4242, 5);
    board.claim(2, 4343, 6);
    for (let i = 0; i < 7; i++) board.countAccepted(1);
    board.countAccepted(2);
    assert.equal(board.read().accepted, 8);
    // A writer killed between its two adds leaves the word odd; a reader still returns (after its bounded retries).
    const seq = new Int32Array(region.buffer, 512 + RECORD_BYTES_OF(1), 1);
    Atomics.add(seq, 0, 1);
    assert.is(board.record(1).pid, 4242);
    board.release(1);
    assert.is(Atomics.load(seq, 0) % 2, 0, 'evened');
    const pool = board.read();
    assert.equal([pool.accepted, pool.records.map((r) => r.pid), pool.pm, pool.start], [8, [4343], 'dynamic', 1000]);
    board.noteActive(3);
    board.noteActive(2);
    board.countMaxChildrenReached();
    board.countSlow();
    board.setListenQueue(5, 511);
    board.noteListenQueue(2);
    const after = board.read();
    assert.equal([after.maxActive, after.maxChildrenReached, after.slow, after.listenQueue, after.listenQueueLen, after.maxListenQueue], [3, 1, 1, 5, 511, 5]);
  } finally {
    region.close();
  }
});

function RECORD_BYTES_OF(i: number): number {
  return i * 512;
}

if (process.env[WRITER]) writer(Number(process.env[WRITER]));
else if (MECHANISM === 'epoll' && MODE === 'run') test.run();
