// FPM's scoreboard (fpm_scoreboard.c), in the shared memory the master hands every worker as
// fd 5: a pool header the master writes, and one record per worker that only that worker
// writes while it lives (the master clears it once the worker is gone). A worker's request
// costs a few stores into its record: no message, no system call. Readers (the master's
// heartbeats, and whichever worker serves the status page) copy a record under its sequence
// lock, as Linux's seqlocks work: the writer makes the word odd, writes, makes it even again;
// a reader that saw it odd, or saw it change across its copy, copies again. Nobody waits on a
// lock, so a reader can never stall a worker, and a worker killed in the middle of a write
// (odd forever) cannot stall a reader either: the master clears its record when it reaps it.
//
// Layout (bytes from the region's start):
//   0     the accept mutex (--accept mutex), AcceptMutex.BYTES
//   64    the pool header: Int32 words, then Float64s from 128
//   512   the records, RECORD_BYTES each

export const HEADER_OFFSET = 64;
export const RECORDS_OFFSET = 512;
export const RECORD_BYTES = 512;

export type ProcessManager = 'static' | 'dynamic' | 'ondemand';
export const PROCESS_MANAGERS: readonly ProcessManager[] = ['static', 'dynamic', 'ondemand'];

/** A record's state. Starting: spawned, not yet accepting (counted idle, as FPM counts a child that has not taken a request). */
export const State = { Free: 0, Starting: 1, Idle: 2, Active: 3, Finishing: 4 } as const;
export type State = (typeof State)[keyof typeof State];
const STATE_NAMES = ['Free', 'Starting', 'Idle', 'Running', 'Finishing'];

// Header, Int32 words.
const H_SEQ = 0;
const H_RECORDS = 1;
const H_PM = 2;
const H_MAX_ACTIVE = 3;
const H_MAX_LISTEN_QUEUE = 4;
const H_MAX_CHILDREN_REACHED = 5;
const H_SLOW = 6;
/** The listen queue summed over the master's sockets at its last heartbeat (reuseport: no worker sees them all). */
const H_LISTEN_QUEUE = 7;
const H_LISTEN_QUEUE_LEN = 8;
// Header, Float64s from byte 128 (index into the Float64Array over the header).
const HF_START = 8; // (128 - 64) / 8
const HF_ACCEPTED_BASE = 9;

// Record, Int32 words.
const R_SEQ = 0;
const R_PID = 1;
const R_STATE = 2;
const R_METHOD_LEN = 3;
const R_URI_LEN = 4;
/** Requests begun: tells the master's heartbeat one request from the next. */
const R_REQUEST_SEQ = 5;
// Record, Float64s from byte 32 (index into the Float64Array over the record).
const RF_STARTED = 4;
const RF_REQUESTS = 5;
const RF_ACCEPTED = 6;
/** When the current (or last) request began; epoch ms. */
const RF_REQUEST_START = 7;
/** When the last request ended (or the worker became ready); epoch ms. Idle since then. */
const RF_REQUEST_END = 8;
const RF_CPU_MS = 9;
const RF_RSS = 10;
/** The process's CPU over the last second (or over the last request, for a long one), percent. */
const RF_CPU_PERCENT = 11;
const METHOD_AT = 128;
const METHOD_BYTES = 16;
const URI_AT = METHOD_AT + METHOD_BYTES;
const URI_BYTES = RECORD_BYTES - URI_AT;

/** Epoch ms with sub-ms precision; comparable across processes (each one's timeOrigin is the wall clock at its start). */
export const epochNow = (): number => performance.timeOrigin + performance.now();

export function regionBytes(records: number): number {
  return RECORDS_OFFSET + records * RECORD_BYTES;
}

/** A copy of one record. */
export interface WorkerRecord {
  slot: number;
  pid: number;
  state: State;
  stateName: string;
  started: number;
  requests: number;
  accepted: number;
  requestSeq: number;
  requestStart: number;
  requestEnd: number;
  method: string;
  uri: string;
  cpuMs: number;
  cpuPercent: number;
  rss: number;
}

export interface PoolCounts {
  pm: ProcessManager;
  start: number;
  accepted: number;
  maxActive: number;
  maxListenQueue: number;
  maxChildrenReached: number;
  slow: number;
  listenQueue: number;
  listenQueueLen: number;
  records: WorkerRecord[];
}

/** Consecutive loads of the same odd sequence word after which a reader takes the record as it is (~1 ms). */
const STUCK_LOADS = 1_000_000;

/** Copies taken as they were, past STUCK_LOADS (possibly mixing two writes), in this process. */
export const reads = { stale: 0 };

/**
 * The seqlock's read side: copy() until a copy was made with the word even and unchanged. The
 * check after the copy is a read-modify-write (adding 0), a full fence: a plain load of the
 * copy may not be moved after it, as it could be after a mere Atomics.load (Linux's smp_rmb()).
 * A word that stays odd and unchanged belongs to a writer killed mid-write (until the master
 * reaps it) or one descheduled mid-write: after STUCK_LOADS the copy is taken as it is, since a
 * status page must not hang on a dead worker.
 */
function spinRead<T>(seq: Int32Array, index: number, copy: () => T): T {
  let stuck = -1;
  let stuckLoads = 0;
  for (;;) {
    const before = Atomics.load(seq, index);
    if ((before & 1) === 0) {
      const value = copy();
      if (Atomics.add(seq, index, 0) === before) return value;
      continue;
    }
    if (before !== stuck) {
      stuck = before;
      stuckLoads = 0;
    } else if (++stuckLoads > STUCK_LOADS) {
      reads.stale++;
      return copy();
    }
  }
}

export class Scoreboard {
  readonly records: number;
  readonly #header: Int32Array;
  readonly #headerF: Float64Array;
  readonly #recI: Int32Array[] = [];
  readonly #recF: Float64Array[] = [];
  readonly #recB: Uint8Array[] = [];

  /** `region`: an evpoll/shm SharedRegion of at least regionBytes(records) bytes (only its buffer is used). */
  constructor(region: { readonly buffer: ArrayBuffer }, records?: number) {
    this.#header = new Int32Array(region.buffer, HEADER_OFFSET, (RECORDS_OFFSET - HEADER_OFFSET) / 4);
    this.#headerF = new Float64Array(region.buffer, HEADER_OFFSET, (RECORDS_OFFSET - HEADER_OFFSET) / 8);
    if (records !== undefined) this.#header[H_RECORDS] = records; // the master, before any worker exists
    this.records = this.#header[H_RECORDS];
    for (let i = 0; i < this.records; i++) {
      const at = RECORDS_OFFSET + i * RECORD_BYTES;
      this.#recI.push(new Int32Array(region.buffer, at, RECORD_BYTES / 4));
      this.#recF.push(new Float64Array(region.buffer, at, RECORD_BYTES / 8));
      this.#recB.push(new Uint8Array(region.buffer, at, RECORD_BYTES));
    }
  }

  // ---- the master ----

  /** The master, once: the pool's process manager and start time. */
  initPool(pm: ProcessManager, start: number): void {
    this.#writeHeader(() => {
      this.#header[H_PM] = PROCESS_MANAGERS.indexOf(pm);
      this.#headerF[HF_START] = start;
    });
  }

  /** The master, when it spawns a worker into record `i`. */
  claim(i: number, pid: number, started: number): void {
    this.#writeRecord(i, () => {
      this.#recB[i].fill(0, 4); // everything but the sequence word
      this.#recI[i][R_PID] = pid;
      this.#recI[i][R_STATE] = State.Starting;
      this.#recF[i][RF_STARTED] = started;
      this.#recF[i][RF_REQUEST_END] = started;
    });
  }

  /** The master, once worker `i` is gone: its accepted connections move to the pool's count, its record is freed. */
  release(i: number): void {
    const sequence = this.#recI[i];
    // A worker killed mid-write left its word odd: even it again (nobody else writes this record now).
    if (Atomics.load(sequence, R_SEQ) & 1) Atomics.add(sequence, R_SEQ, 1);
    this.#writeHeader(() => {
      this.#headerF[HF_ACCEPTED_BASE] += this.#recF[i][RF_ACCEPTED];
      this.#writeRecord(i, () => this.#recB[i].fill(0, 4));
    });
  }

  countMaxChildrenReached(): void {
    Atomics.add(this.#header, H_MAX_CHILDREN_REACHED, 1);
  }

  countSlow(): void {
    Atomics.add(this.#header, H_SLOW, 1);
  }

  /** The master's heartbeat: the listen queue over all its sockets. */
  setListenQueue(length: number, limit: number): void {
    Atomics.store(this.#header, H_LISTEN_QUEUE, length);
    Atomics.store(this.#header, H_LISTEN_QUEUE_LEN, limit);
    this.noteListenQueue(length);
  }

  /** Anyone: raise `max listen queue` to `length` if it is higher. */
  noteListenQueue(length: number): void {
    atomicMax(this.#header, H_MAX_LISTEN_QUEUE, length);
  }

  /** Anyone: raise `max active processes` to `active` if it is higher. */
  noteActive(active: number): void {
    atomicMax(this.#header, H_MAX_ACTIVE, active);
  }

  // ---- a worker, on its own record ----

  /** The worker, as it starts accepting (and when it is told to finish). */
  setState(i: number, state: State): void {
    this.#writeRecord(i, () => {
      this.#recI[i][R_STATE] = state;
      if (state === State.Idle) this.#recF[i][RF_REQUEST_END] = epochNow();
    });
  }

  /** The worker, per connection it accepts. */
  countAccepted(i: number): void {
    const ints = this.#recI[i];
    Atomics.add(ints, R_SEQ, 1);
    this.#recF[i][RF_ACCEPTED]++;
    Atomics.add(ints, R_SEQ, 1);
  }

  /** The worker, as it begins a request: the method buf[ms, me) and the target buf[ts, te), copied as bytes. */
  requestStart(i: number, buf: Uint8Array, ms: number, me: number, ts: number, te: number, now: number): void {
    // Per request: written out, without #writeRecord's closure.
    const ints = this.#recI[i];
    const bytes = this.#recB[i];
    Atomics.add(ints, R_SEQ, 1);
    copyRequestLine(ints, bytes, buf, ms, me, ts, te);
    ints[R_STATE] = State.Active;
    ints[R_REQUEST_SEQ]++;
    this.#recF[i][RF_REQUEST_START] = now;
    Atomics.add(ints, R_SEQ, 1);
  }

  /**
   * The worker, for a request answered at once (the hello page, a refusal): begun and ended in
   * one write, so that it costs what one of requestStart/requestEnd does. Nobody could have seen
   * it running anyway.
   */
  requestDone(i: number, buf: Uint8Array, ms: number, me: number, ts: number, te: number, now: number, finishing: boolean): void {
    const ints = this.#recI[i];
    const floats = this.#recF[i];
    const bytes = this.#recB[i];
    Atomics.add(ints, R_SEQ, 1);
    copyRequestLine(ints, bytes, buf, ms, me, ts, te);
    ints[R_STATE] = finishing ? State.Finishing : State.Idle;
    ints[R_REQUEST_SEQ]++;
    floats[RF_REQUESTS]++;
    floats[RF_REQUEST_START] = now;
    floats[RF_REQUEST_END] = now;
    Atomics.add(ints, R_SEQ, 1);
  }

  /** The worker, as the request's answer is made: `finishing` if the worker is on its way out. */
  requestEnd(i: number, now: number, finishing: boolean): void {
    const ints = this.#recI[i];
    const floats = this.#recF[i];
    Atomics.add(ints, R_SEQ, 1);
    ints[R_STATE] = finishing ? State.Finishing : State.Idle;
    floats[RF_REQUESTS]++;
    floats[RF_REQUEST_END] = now;
    Atomics.add(ints, R_SEQ, 1);
  }

  /** The worker, once a second (each is a system call: getrusage, a read of /proc): its CPU and memory. */
  setUsage(i: number, cpuMs: number, cpuPercent: number, rss: number): void {
    this.#writeRecord(i, () => {
      this.#recF[i][RF_CPU_MS] = cpuMs;
      this.#recF[i][RF_CPU_PERCENT] = cpuPercent;
      this.#recF[i][RF_RSS] = rss;
    });
  }

  // ---- readers ----

  /** What the process manager needs of record `i`, without its strings: a few numbers, copied under the lock. */
  brief(i: number): { pid: number; state: State; requestSeq: number; requestStart: number; requestEnd: number } {
    const ints = this.#recI[i];
    const floats = this.#recF[i];
    return spinRead(ints, R_SEQ, () => ({
      pid: ints[R_PID],
      state: ints[R_STATE] as State,
      requestSeq: ints[R_REQUEST_SEQ],
      requestStart: floats[RF_REQUEST_START],
      requestEnd: floats[RF_REQUEST_END],
    }));
  }

  record(i: number): WorkerRecord {
    const ints = this.#recI[i];
    const floats = this.#recF[i];
    const bytes = this.#recB[i];
    // Under the lock, only copies (the strings are decoded after, from the copied bytes).
    const raw = spinRead(ints, R_SEQ, () => ({
      pid: ints[R_PID],
      state: ints[R_STATE] as State,
      methodLength: Math.min(ints[R_METHOD_LEN], METHOD_BYTES),
      uriLength: Math.min(ints[R_URI_LEN], URI_BYTES),
      requestSeq: ints[R_REQUEST_SEQ],
      started: floats[RF_STARTED],
      requests: floats[RF_REQUESTS],
      accepted: floats[RF_ACCEPTED],
      requestStart: floats[RF_REQUEST_START],
      requestEnd: floats[RF_REQUEST_END],
      cpuMs: floats[RF_CPU_MS],
      cpuPercent: floats[RF_CPU_PERCENT],
      rss: floats[RF_RSS],
      text: bytes.slice(METHOD_AT, RECORD_BYTES),
    }));
    const text = Buffer.from(raw.text.buffer, raw.text.byteOffset, raw.text.length);
    return {
      slot: i,
      pid: raw.pid,
      state: raw.state,
      stateName: STATE_NAMES[raw.state] ?? 'Free',
      started: raw.started,
      requests: raw.requests,
      accepted: raw.accepted,
      requestSeq: raw.requestSeq,
      requestStart: raw.requestStart,
      requestEnd: raw.requestEnd,
      method: text.toString('latin1', 0, raw.methodLength),
      uri: text.toString('latin1', URI_AT - METHOD_AT, URI_AT - METHOD_AT + raw.uriLength),
      cpuMs: raw.cpuMs,
      cpuPercent: raw.cpuPercent,
      rss: raw.rss,
    };
  }

  /** The whole pool, consistent with the master's header (retried if the master reaped a worker meanwhile). */
  read(): PoolCounts {
    return spinRead(this.#header, H_SEQ, () => {
      const records: WorkerRecord[] = [];
      let accepted = this.#headerF[HF_ACCEPTED_BASE];
      for (let i = 0; i < this.records; i++) {
        const r = this.record(i);
        if (r.state === State.Free) continue;
        accepted += r.accepted;
        records.push(r);
      }
      const h = this.#header;
      return {
        pm: PROCESS_MANAGERS[h[H_PM]] ?? 'static',
        start: this.#headerF[HF_START],
        accepted,
        maxActive: Atomics.load(h, H_MAX_ACTIVE),
        maxListenQueue: Atomics.load(h, H_MAX_LISTEN_QUEUE),
        maxChildrenReached: Atomics.load(h, H_MAX_CHILDREN_REACHED),
        slow: Atomics.load(h, H_SLOW),
        listenQueue: Atomics.load(h, H_LISTEN_QUEUE),
        listenQueueLen: Atomics.load(h, H_LISTEN_QUEUE_LEN),
        records,
      };
    });
  }

  #writeHeader(write: () => void): void {
    Atomics.add(this.#header, H_SEQ, 1);
    write();
    Atomics.add(this.#header, H_SEQ, 1);
  }

  #writeRecord(i: number, write: () => void): void {
    const ints = this.#recI[i];
    Atomics.add(ints, R_SEQ, 1);
    write();
    Atomics.add(ints, R_SEQ, 1);
  }
}

/** A request's method buf[ms, me) and target buf[ts, te) into a record (inside its write), cut to their fields' sizes. */
function copyRequestLine(ints: Int32Array, bytes: Uint8Array, buf: Uint8Array, ms: number, me: number, ts: number, te: number): void {
  const m = Math.min(me - ms, METHOD_BYTES);
  const u = Math.min(te - ts, URI_BYTES);
  for (let k = 0; k < m; k++) bytes[METHOD_AT + k] = buf[ms + k];
  for (let k = 0; k < u; k++) bytes[URI_AT + k] = buf[ts + k];
  ints[R_METHOD_LEN] = m;
  ints[R_URI_LEN] = u;
}

function atomicMax(words: Int32Array, index: number, value: number): void {
  for (;;) {
    const now = Atomics.load(words, index);
    if (value <= now || Atomics.compareExchange(words, index, now, value) === now) return;
  }
}
