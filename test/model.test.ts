// Model-based test: random sequences of operations on a real loop (fd events and timers
// created, added, re-added, deleted — also from inside callbacks —, pipes written, drained,
// closed and their numbers reused, the clock advanced) checked against a plain model of FPM's
// semantics as the README states them. EVPOLL_FUZZ_RUNS raises the number of sequences.
//
// The loop runs on a clock the test advances by hand, so timer behaviour is exact. The order
// of fd callbacks across different fds is the backend's (epoll reports in readiness order),
// so the model replays the callbacks in the order they happened and checks each was allowed.
//
// Events have priorities (ev.priority: a batch runs 2 first, fd events before timers within a
// priority) and, in run() mode, are activated (ev.activate(): nginx's posted events, run after
// the batch by priority then activation order, with which bits combined). start() mode leaves
// activation to test/priority.test.ts: there a batch need not hold every ready fd, so the model
// cannot tell where the posted events begin.
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EV, type Event, type EventLoop } from '../src/index.js';
import * as net from '../src/net.js';
import { MODE, newLoop, iterate } from './helpers.js';

type Action =
  | { kind: 'none' }
  | { kind: 'del'; target: number }
  | { kind: 'add'; target: number; ms: number }
  | { kind: 'drain' }
  | { kind: 'activate'; target: number; which: number };

/** Whether sequences activate events (see the top). */
const ACTIVATE = MODE === 'run';
/** activate()'s which: 0 for the default. */
const whichArb = fc.constantFrom(0, 0, EV.READ, EV.WRITE, EV.TIMEOUT, EV.ERROR);
const priorityArb = fc.constantFrom(0, 0, 0, 1, -1, 2, -2);

type Command =
  | { op: 'pipe' }
  | { op: 'fdEvent'; pipe: number; end: 'r' | 'w'; action: Action; priority: number }
  | { op: 'timer'; persist: boolean; action: Action; priority: number }
  | { op: 'priority'; ev: number; priority: number }
  | { op: 'activate'; ev: number; which: number }
  | { op: 'add'; ev: number; ms: number }
  | { op: 'del'; ev: number }
  | { op: 'write'; pipe: number }
  | { op: 'drain'; pipe: number }
  | { op: 'reopen'; pipe: number }
  | { op: 'advance'; ms: number }
  | { op: 'iterate' };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('del' as const), target: fc.nat(15) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('add' as const), target: fc.nat(15), ms: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'drain' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('activate' as const), target: fc.nat(15), which: whichArb }) },
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ op: 'pipe' as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('fdEvent' as const), pipe: fc.nat(7), end: fc.constantFrom('r' as const, 'w' as const), action: actionArb, priority: priorityArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('timer' as const), persist: fc.boolean(), action: actionArb, priority: priorityArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('priority' as const), ev: fc.nat(15), priority: priorityArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('activate' as const), ev: fc.nat(15), which: whichArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), ev: fc.nat(15), ms: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('del' as const), ev: fc.nat(15) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('write' as const), pipe: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const), pipe: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const), pipe: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 6, arbitrary: fc.constant({ op: 'iterate' as const }) },
);

interface MPipe { r: number; w: number; bytes: number; open: boolean }
interface MEvent {
  id: number;
  kind: 'fd' | 'timer';
  pipe: number; // fd events
  end: 'r' | 'w';
  persist: boolean;
  action: Action;
  dead: boolean; // its pipe was closed: never used again
  pending: boolean; // as ev.pending reports it
  inHeap: boolean;
  deadline: number;
  freq: number;
  seq: number;
  priority: number;
  /** activate()'s which bits not yet delivered (0: not posted), and which activation is current. */
  posted: number;
  postSeq: number;
  real: Event;
}
/** `level`: the event's priority when the batch was collected. */
interface Entry { ev: MEvent; live: boolean; called: boolean; level: number }
interface Posted { ev: MEvent; level: number; seq: number }
/** `activated`: its action activated its target (at most ACTIVATIONS a batch, so no chain runs forever). */
interface Call { id: number; which: number; pendingInCallback: boolean; delResult?: boolean; activated?: boolean }
const ACTIVATIONS = 8;

/** Runs one sequence on a fresh loop; throws on the first divergence from the model. */
async function runSequence(commands: Command[], strictFdCompleteness: boolean): Promise<void> {
  let now = 1000;
  const loop: EventLoop = newLoop({ clock: () => now });
  const pipes: MPipe[] = [];
  const events: MEvent[] = [];
  const watchers = new Map<string, MEvent[]>(); // `${pipe}:${end}` -> fd events in add order
  let seq = 0;
  let postSeq = 0;
  let activationsLeft = 0; // by callbacks, this batch
  let posted: Posted[] = [];
  let calls: Call[] = [];
  let batch: { fd: Entry[]; timers: Entry[] } | undefined;
  const key = (e: MEvent) => `${e.pipe}:${e.end}`;
  const entryOf = (e: MEvent) => batch && [...batch.fd, ...batch.timers].find((x) => x.ev === e && x.live && !x.called);
  const buf = new Uint8Array(256);

  try {
    // ---- the model's operations (applied to the model only) ----
    const mAdd = (e: MEvent, ms: number) => {
      if (e.dead) return;
      if (e.kind === 'fd') {
        if (e.pending) return; // no-op
        e.pending = true;
        const list = watchers.get(key(e)) ?? [];
        list.push(e);
        watchers.set(key(e), list);
        return;
      }
      if (e.pending && !e.inHeap) {
        // A due one-shot whose callback has not run: added again, it is a new registration and
        // the due firing is dropped (see README: add() of a fired one-shot).
        const en = entryOf(e);
        if (en) en.live = false;
      }
      e.pending = true;
      e.inHeap = true;
      e.deadline = now + ms;
      e.freq = ms;
      e.seq = seq++;
    };
    const mDel = (e: MEvent): boolean => {
      if (!e.dead) e.posted = 0; // an activation not yet run is dropped, pending or not
      if (e.dead || !e.pending) return false;
      e.pending = false;
      e.inHeap = false;
      if (e.kind === 'fd') watchers.set(key(e), watchers.get(key(e))!.filter((x) => x !== e));
      const en = entryOf(e);
      if (en) en.live = false;
      return true;
    };
    const mActivate = (e: MEvent, which: number) => {
      if (which === 0) which = e.kind === 'timer' ? EV.TIMEOUT : e.end === 'r' ? EV.READ : EV.WRITE;
      if (e.posted !== 0) {
        e.posted |= which;
        return;
      }
      e.posted = which;
      e.postSeq = ++postSeq;
      posted.push({ ev: e, level: e.priority, seq: e.postSeq });
    };
    /** The posted event that runs next (highest priority, then the earliest activation), taken off. */
    const takePosted = (): MEvent | undefined => {
      posted = posted.filter((p) => p.ev.postSeq === p.seq && p.ev.posted !== 0);
      if (posted.length === 0) return undefined;
      const next = posted.reduce((best, p) => (p.level > best.level ? p : best));
      posted.splice(posted.indexOf(next), 1);
      return next.ev;
    };
    const readyFd = (e: MEvent) => pipes[e.pipe].open && (e.end === 'w' || pipes[e.pipe].bytes > 0);

    // ---- the real callbacks: record, then act as the model says the action does ----
    const onCallback = (ev: Event, which: number, m: MEvent) => {
      const call: Call = { id: m.id, which, pendingInCallback: ev.pending };
      calls.push(call);
      const a = m.action;
      const target = a.kind === 'del' || a.kind === 'add' || a.kind === 'activate' ? events[a.target % events.length] : undefined;
      if (a.kind === 'del' && !target!.dead) call.delResult = target!.real.del();
      else if (a.kind === 'add' && !target!.dead) target!.real.add(a.ms);
      else if (a.kind === 'activate' && ACTIVATE && !target!.dead && activationsLeft > 0) {
        activationsLeft--;
        call.activated = true;
        target!.real.activate(a.which === 0 ? undefined : a.which);
      }
      else if (a.kind === 'drain' && m.kind === 'fd' && pipes[m.pipe].open) while (net.read(pipes[m.pipe].r, buf) > 0);
    };

    // ---- replay a batch against the model ----
    const replay = (ran: number) => {
      // The batch as collect() builds it: ready fd watchers, then due timers in order.
      const fd: Entry[] = [];
      for (const list of watchers.values()) for (const e of list) if (readyFd(e)) fd.push({ ev: e, live: true, called: false, level: e.priority });
      const due = events.filter((e) => e.kind === 'timer' && e.inHeap && e.deadline <= now).sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
      const timers: Entry[] = due.map((e) => ({ ev: e, live: true, called: false, level: e.priority }));
      for (const e of due) {
        if (e.persist) {
          e.deadline = now + e.freq;
          e.seq = seq++;
        } else {
          e.inHeap = false; // pending (as JS sees it) until its entry runs
        }
      }
      batch = { fd, timers };
      const timersRun = new Set<number>(); // levels at which a timer has run
      let level = 3; // of the last callback: never rises within a batch
      for (const c of calls) {
        const m = events[c.id];
        // run() mode: every live entry of the list runs before the first posted event.
        if (ACTIVATE && ![...fd, ...timers].some((x) => x.live && !x.called)) {
          const next = takePosted();
          assert.ok(next, `#${c.id} called after its batch, but nothing was posted`);
          assert.is(next!.id, c.id, `posted #${next!.id} runs next (priority ${next!.priority}), not #${c.id}`);
          assert.is(c.which, m.posted, `which of posted #${c.id}`);
          m.posted = 0;
          assert.is(c.pendingInCallback, m.pending, `posted #${c.id} pending in its callback`);
        } else if (m.kind === 'fd') {
          const en = fd.find((x) => x.ev === m);
          assert.ok(en, `fd event #${c.id} called but it was not ready and pending when the batch began`);
          assert.ok(en!.level <= level, `fd event #${c.id} at priority ${en!.level} after a callback at ${level}`);
          assert.not.ok(timersRun.has(en!.level), `fd callback of #${c.id} after a timer callback of its priority`);
          level = en!.level;
          assert.ok(en, `fd event #${c.id} called but it was not ready and pending when the batch began`);
          assert.ok(en!.live, `fd event #${c.id} called after it was deleted in this batch`);
          assert.not.ok(en!.called, `fd event #${c.id} called twice in one batch`);
          assert.is(c.which, m.end === 'r' ? EV.READ : EV.WRITE, `which of fd event #${c.id}`);
          // Watchers of one fd and one priority run in the order they were added.
          for (const other of fd) {
            if (other === en) break;
            if (key(other.ev) === key(m) && other.level === en!.level) assert.ok(other.called || !other.live, `fd event #${c.id} ran before #${other.ev.id}, added earlier on the same fd at the same priority`);
          }
          en!.called = true;
          assert.ok(c.pendingInCallback, 'an fd event is pending in its callback');
        } else {
          // The next timer: of the highest priority left, the first in deadline order.
          const left = timers.filter((x) => x.live && !x.called);
          assert.ok(left.length > 0, `timer #${c.id} called but no live timer was due`);
          const top = Math.max(...left.map((x) => x.level));
          const expected = left.find((x) => x.level === top)!;
          assert.is(expected.ev, m, `timer #${c.id} called; the model expected #${expected.ev.id} (priority, then deadline order)`);
          assert.ok(expected.level <= level, `timer #${c.id} at priority ${expected.level} after a callback at ${level}`);
          level = expected.level;
          timersRun.add(level);
          assert.is(c.which, EV.TIMEOUT);
          expected.called = true;
          if (!m.persist) m.pending = false; // removed before its callback runs
          assert.is(c.pendingInCallback, m.persist, `timer #${c.id} pending in its callback`);
        }
        const a = m.action;
        const target = a.kind === 'del' || a.kind === 'add' || a.kind === 'activate' ? events[a.target % events.length] : undefined;
        if (a.kind === 'del' && !target!.dead) {
          assert.is(c.delResult, mDel(target!), `del() result of #${target!.id}`);
        } else if (a.kind === 'add' && !target!.dead) {
          mAdd(target!, a.ms);
        } else if (a.kind === 'drain' && m.kind === 'fd' && pipes[m.pipe].open) {
          pipes[m.pipe].bytes = 0;
        } else if (c.activated) {
          mActivate(target!, (a as { which: number }).which);
        }
      }
      for (const en of timers) assert.ok(en.called || !en.live, `due timer #${en.ev.id} did not run`);
      if (ACTIVATE) assert.is(takePosted(), undefined, 'every posted event ran');
      if (strictFdCompleteness) {
        for (const en of fd) assert.ok(en.called || !en.live, `ready fd event #${en.ev.id} did not run`);
      }
      assert.is(ran, calls.length, 'runOnce() counts the callbacks it ran');
      batch = undefined;
      calls = [];
    };

    // ---- run the sequence ----
    // Indexes are taken modulo what exists, so that every command does something.
    const pipeAt = (i: number) => {
      const open = pipes.filter((p) => p.open);
      return open.length ? open[i % open.length] : undefined;
    };
    const eventAt = (i: number) => {
      const live = events.filter((e) => !e.dead);
      return live.length ? live[i % live.length] : undefined;
    };
    for (let i = 0; i < 2; i++) {
      const [r, w] = net.pipe();
      pipes.push({ r, w, bytes: 0, open: true });
    }
    for (const c of commands) {
      switch (c.op) {
        case 'pipe': {
          if (pipes.length >= 4) break;
          const [r, w] = net.pipe();
          pipes.push({ r, w, bytes: 0, open: true });
          break;
        }
        case 'fdEvent': {
          const p = pipeAt(c.pipe);
          if (!p || events.length >= 16) break;
          const m = { id: events.length, kind: 'fd', pipe: pipes.indexOf(p), end: c.end, persist: true, action: c.action, dead: false, pending: false, inHeap: false, deadline: 0, freq: 0, seq: 0, priority: c.priority, posted: 0, postSeq: 0 } as MEvent;
          m.real = loop.event(c.end === 'r' ? p.r : p.w, c.end === 'r' ? EV.READ : EV.WRITE, (ev, which) => onCallback(ev, which, m));
          m.real.priority = c.priority;
          events.push(m);
          break;
        }
        case 'timer': {
          if (events.length >= 16) break;
          const m = { id: events.length, kind: 'timer', pipe: -1, end: 'r', persist: c.persist, action: c.action, dead: false, pending: false, inHeap: false, deadline: 0, freq: 0, seq: 0, priority: c.priority, posted: 0, postSeq: 0 } as MEvent;
          m.real = loop.timer(c.persist ? EV.PERSIST : 0, (ev, which) => onCallback(ev, which, m));
          m.real.priority = c.priority;
          events.push(m);
          break;
        }
        case 'add': {
          const m = eventAt(c.ev);
          if (!m) break;
          m.real.add(c.ms);
          mAdd(m, c.ms);
          break;
        }
        case 'del': {
          const m = eventAt(c.ev);
          if (!m) break;
          assert.is(m.real.del(), mDel(m), `del() result of #${m.id}`);
          break;
        }
        case 'priority': {
          const m = eventAt(c.ev);
          if (!m) break;
          m.real.priority = c.priority;
          m.priority = c.priority;
          break;
        }
        case 'activate': {
          const m = eventAt(c.ev);
          if (!m || !ACTIVATE) break;
          m.real.activate(c.which === 0 ? undefined : c.which);
          mActivate(m, c.which);
          break;
        }
        case 'write': {
          const p = pipeAt(c.pipe);
          if (!p || p.bytes >= 64) break;
          assert.is(net.write(p.w, buf.subarray(0, 1)), 1);
          p.bytes++;
          break;
        }
        case 'drain': {
          const p = pipeAt(c.pipe);
          if (!p) break;
          while (net.read(p.r, buf) > 0);
          p.bytes = 0;
          break;
        }
        case 'reopen': {
          // Delete its events, close it, open a new pipe: Linux reuses the lowest numbers.
          const p = pipeAt(c.pipe);
          if (!p) break;
          const index = pipes.indexOf(p);
          for (const m of events) {
            if (m.kind === 'fd' && m.pipe === index && !m.dead) {
              assert.is(m.real.del(), mDel(m));
              m.dead = true;
            }
          }
          net.close(p.r);
          net.close(p.w);
          p.open = false;
          const [r, w] = net.pipe();
          pipes.push({ r, w, bytes: 0, open: true });
          break;
        }
        case 'advance':
          now += c.ms;
          break;
        case 'iterate': {
          // start() mode: a batch comes when the backend or the Node timer reports; wait for
          // one when the model expects callbacks, else give it a moment to show a wrong one.
          const expectSome =
            events.some((e) => e.kind === 'fd' && e.pending && readyFd(e)) ||
            events.some((e) => e.kind === 'timer' && e.inHeap && e.deadline <= now) ||
            events.some((e) => e.posted !== 0);
          activationsLeft = ACTIVATIONS;
          const ran = await iterate(loop, expectSome ? 5000 : 0, 3);
          replay(ran);
          break;
        }
      }
    }
  } finally {
    loop.close();
    for (const p of pipes) {
      if (p.open) {
        net.close(p.r);
        net.close(p.w);
      }
    }
  }
}

const runs = Number(process.env.EVPOLL_FUZZ_RUNS ?? (MODE === 'run' ? 2000 : 150));

if (process.env.EVPOLL_FUZZ_REPLAY) {
  // Replays one printed counterexample: EVPOLL_FUZZ_REPLAY='[{"op":"pipe"}, ...]'
  test('replay of EVPOLL_FUZZ_REPLAY', async () => {
    await runSequence(JSON.parse(process.env.EVPOLL_FUZZ_REPLAY!), MODE === 'run');
  });
}

test(`${runs} random sequences behave as the model says (${MODE} mode)`, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(commandArb, { minLength: 8, maxLength: 60, size: 'medium' }), (commands) => runSequence(commands, MODE === 'run')),
    { numRuns: runs, verbose: 1, seed: process.env.EVPOLL_FUZZ_SEED ? Number(process.env.EVPOLL_FUZZ_SEED) : undefined },
  );
});

test.run();
