// evpoll/sim: a deterministic simulation of fds, the network and time (FoundationDB's simulator,
// TigerBeetle's VOPR and tokio's turmoil are the models). While a Simulation is installed,
// evpoll/net's creators make virtual fds, and a loop on the 'sim' mechanism (the default then)
// waits on the simulation: its wait never sleeps, it moves a virtual clock to the next timer or
// the next delivery. Every choice the network makes (latency, buffer sizes, partial reads and
// writes, resets, EMFILE, EINTR, the order of ready fds, spurious readiness) comes from one seeded
// generator, so the same seed and the same program give the same callbacks, bytes and times.
//
// The model keeps to what a Linux kernel can do:
// - a pipe or an AF_UNIX socketpair delivers at once; a TCP connection after its latency, in
//   order; a writer may have at most its buffer's worth of bytes unacknowledged by the reader
//   (the window comes back one latency after the reader reads), else EAGAIN, and WRITE
//   readiness when there is room again;
// - close() sends FIN after the data, or RST when unread data is left behind; bytes that reach a
//   closed TCP end are answered with RST; a reset gives ECONNRESET once, then EOF (read) or
//   EPIPE (write); a reset socket reports READ|WRITE and a hang-up;
// - connect() takes one latency to reach the listener (ECONNREFUSED one latency later when
//   nobody listens; a full accept queue drops the SYN, retried after 1 s), and the connection
//   is in the accept queue one latency after the client learns it is connected;
// - epoll's rules for readiness: level-triggered fds are reported while ready; edge-triggered
//   ones when something new happens to them (data arrives, room is made, FIN, RST, a connection
//   is queued) and they are ready; a closed fd leaves every loop watching it.
import { constants } from 'node:os';
import { readFileSync } from 'node:fs';
import { EvpollError, invalidArg } from './errors.js';
import type { NativeBackend } from './native.js';
import { VIRTUAL_FD_BASE, setSimulated, simulated, type Simulated, type VirtualNet } from './virtual.js';

const errno = constants.errno;
const EAGAIN = -errno.EAGAIN;
const EBADF = -errno.EBADF;
const EINVAL = -errno.EINVAL;
const EMFILE = -errno.EMFILE;
const EPIPE = -errno.EPIPE;
const ECONNRESET = -errno.ECONNRESET;
const ECONNREFUSED = -errno.ECONNREFUSED;
const EINPROGRESS = -errno.EINPROGRESS;
const ENOTCONN = -errno.ENOTCONN;
const ENOTSOCK = -errno.ENOTSOCK;
const EOPNOTSUPP = -errno.EOPNOTSUPP;
const EADDRINUSE = -errno.EADDRINUSE;
const ENETUNREACH = -errno.ENETUNREACH;

// The backend contract's bits (native/backend.h).
const READ = 2;
const WRITE = 16;
const EDGE = 8;
const REV_HUP = 64;

/** A probability from 0 to 1, or a range [min, max] a connection draws its own value from. */
export type Range = number | readonly [number, number];

/**
 * What the simulated network and kernel may do, each with a probability (0: never; the default
 * is a well-behaved network: no latency, 64 KiB buffers, nothing partial, nothing lost).
 */
export interface Faults {
  /** One-way latency of a TCP connection, in ms: each connection draws its own from the range. Default 0. */
  latency?: Range;
  /** A socket's send buffer, in bytes (each socket draws its own): a writer gets EAGAIN past it. Default 65536. */
  bufferSize?: Range;
  /** Per read of a socket or pipe with data: it returns fewer bytes than it could (at least 1). */
  partialRead?: number;
  /** Per write to a socket or pipe with room: it takes fewer bytes than it could (at least 1). */
  partialWrite?: number;
  /** Per TCP segment (one write's bytes) delivered: the connection is reset instead (RST to both ends). */
  reset?: number;
  /** Per accept() call with connections waiting: it fails with EMFILE, taking none. */
  emfile?: number;
  /** Per wait that could block: it ends early with no fds (EINTR), part of the way to its timeout. */
  eintr?: number;
  /** Per wait with several fds ready: they are reported in a shuffled order. */
  reorder?: number;
  /** Per wait: a watched fd with nothing to read is reported READ (its read then gives EAGAIN). */
  spurious?: number;
}

/** The faults in effect, every field given. */
export interface FaultSettings {
  latency: [number, number];
  bufferSize: [number, number];
  partialRead: number;
  partialWrite: number;
  reset: number;
  emfile: number;
  eintr: number;
  reorder: number;
  spurious: number;
}

export interface SimulationOptions {
  /** The generator's seed, an integer from 0 to 2**32 - 1. Default 0. */
  seed?: number;
  faults?: Faults;
  /** Keep a readable line per step for sim.trace() (the digest is always kept). Default false. */
  trace?: boolean;
}

/** What a simulation has done (sim.stats()). */
export interface SimulationStats {
  /** Scheduled deliveries run (segments, FINs, RSTs, connection steps, window updates). */
  deliveries: number;
  /** Waits of loops on 'sim'. */
  waits: number;
  /** Ready records reported. */
  records: number;
  /** Faults that struck, by name. */
  faults: Record<'partialRead' | 'partialWrite' | 'reset' | 'emfile' | 'eintr' | 'reorder' | 'spurious', number>;
}

// ---------------------------------------------------------------------------------------------
// The generator: sfc32, seeded through splitmix32 (fast, 128 bits of state, good enough for
// schedules; what matters is that it is the same everywhere).

class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** true with probability p; draws nothing when p is 0, so a fault left off changes no schedule. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** An integer from lo to hi, both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** A number from the range [lo, hi]. */
  between([lo, hi]: readonly [number, number]): number {
    return lo === hi ? lo : lo + this.float() * (hi - lo);
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes in a buffer: chunks, read from the front.

class ByteQueue {
  length = 0;
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the first chunk
  #offset = 0; // bytes of it already read

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Moves up to `n` bytes into buffer[at...]; returns how many. */
  take(buffer: Uint8Array, at: number, n: number): number {
    let moved = 0;
    while (moved < n) {
      const chunk = this.#chunks[this.#head];
      const k = Math.min(chunk.length - this.#offset, n - moved);
      // A few bytes are copied by hand: a subarray and set() cost more than the copy.
      if (k <= 16) for (let i = 0; i < k; i++) buffer[at + moved + i] = chunk[this.#offset + i];
      else buffer.set(chunk.subarray(this.#offset, this.#offset + k), at + moved);
      moved += k;
      this.#offset += k;
      if (this.#offset === chunk.length) {
        this.#chunks[this.#head++] = undefined as unknown as Uint8Array;
        this.#offset = 0;
      }
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    this.length -= moved;
    return moved;
  }

  clear(): void {
    this.#chunks.length = 0;
    this.#head = this.#offset = 0;
    this.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Virtual files.

/** One loop's registration of a virtual file (an epoll interest). */
class Reg {
  woke = true;
  constructor(
    readonly backend: SimBackend,
    readonly file: VFile,
    readonly index: number,
    public interest: number,
    public gen: number,
  ) {}
}

abstract class VFile {
  fd = -1;
  readonly watchers: Reg[] = [];
  abstract readonly kind: 'pipe' | 'socket' | 'listener';
  /** The readiness a poll would report now: READ, WRITE, REV_HUP. */
  abstract mask(): number;
}

class Pipe {
  readonly data = new ByteQueue();
  readerOpen = true;
  writerOpen = true;
  constructor(
    readonly r: PipeEnd,
    readonly w: PipeEnd,
  ) {}
}

const PIPE_BUFFER = 65536;

class PipeEnd extends VFile {
  readonly kind = 'pipe';
  pipe!: Pipe;
  constructor(readonly reader: boolean) {
    super();
  }

  mask(): number {
    const p = this.pipe;
    if (this.reader) return p.data.length > 0 || !p.writerOpen ? READ | (p.writerOpen ? 0 : REV_HUP) : 0;
    if (!p.readerOpen) return WRITE | REV_HUP;
    return p.data.length < PIPE_BUFFER ? WRITE : 0;
  }
}

const CONNECTING = 0;
const CONNECTED = 1;
const REFUSED = 2;

class Socket extends VFile {
  readonly kind = 'socket';
  readonly rx = new ByteQueue();
  /** FIN has arrived: after the data, reads give 0. */
  rxEof = false;
  /** RST has arrived (or the connection was refused): no more data either way. */
  reset = false;
  /** A pending socket error (-errno), reported once by a read, a write or connectResult(). */
  err = 0;
  shutWr = false;
  closed = false;
  state = CONNECTING;
  peer: Socket | undefined;
  /** Bytes this end wrote that its peer has not yet read (and acknowledged). */
  unacked = 0;
  port = 0;
  constructor(
    readonly tcp: boolean,
    readonly latency: number,
    readonly bufferSize: number,
  ) {
    super();
  }

  mask(): number {
    if (this.state === CONNECTING) return 0;
    if (this.reset) return READ | WRITE | REV_HUP;
    let m = this.rx.length > 0 || this.rxEof ? READ : 0;
    if (this.shutWr || this.bufferSize - this.unacked > 0) m |= WRITE;
    // EPOLLHUP: both directions shut (an AF_UNIX peer's close shuts both).
    if (this.rxEof && (this.shutWr || (!this.tcp && this.peer!.closed))) m |= REV_HUP;
    return m;
  }
}

class Listener extends VFile {
  readonly kind = 'listener';
  readonly queue: Socket[] = [];
  /** Connections whose SYN has arrived but which are not yet in the queue. */
  pending = 0;
  closed = false;
  constructor(
    readonly port: number,
    readonly backlog: number,
  ) {
    super();
  }

  mask(): number {
    return this.queue.length > 0 ? READ : 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The schedule: deliveries by time, then by the order they were made.

interface Step {
  at: number;
  seq: number;
  run: () => void;
}

class Schedule {
  #heap: Step[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** The earliest step's time, or Infinity. */
  next(): number {
    return this.#heap.length > 0 ? this.#heap[0].at : Infinity;
  }

  add(at: number, run: () => void): void {
    const heap = this.#heap;
    const step = { at, seq: this.#seq++, run };
    let i = heap.length;
    heap.push(step);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(step, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = step;
  }

  pop(): Step {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && before(heap[r], heap[l]) ? r : l;
        if (!before(heap[c], last)) break;
        heap[i] = heap[c];
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }

  clear(): void {
    this.#heap.length = 0;
  }
}

function before(a: Step, b: Step): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

// ---------------------------------------------------------------------------------------------
// The digest: FNV-1a over 32-bit words, two lanes (64 bits).

class Digest {
  #h1 = 0x811c9dc5 | 0;
  #h2 = 0x01000193 ^ 0x5bd1e995;
  count = 0;

  word(x: number): void {
    this.#h1 = Math.imul(this.#h1 ^ x, 16777619);
    this.#h2 = Math.imul(this.#h2 ^ x, 0x5bd1e995) ^ (this.#h2 >>> 15);
    this.count++;
  }

  bytes(b: Uint8Array, at: number, n: number): void {
    let h1 = this.#h1;
    let h2 = this.#h2;
    for (let i = at, end = at + n; i < end; i++) {
      h1 = Math.imul(h1 ^ b[i], 16777619);
      h2 = Math.imul(h2 ^ b[i], 0x5bd1e995);
    }
    this.#h1 = h1;
    this.#h2 = h2 ^ (h2 >>> 13);
  }

  hex(): string {
    return (this.#h1 >>> 0).toString(16).padStart(8, '0') + (this.#h2 >>> 0).toString(16).padStart(8, '0');
  }
}

// Step kinds in the digest.
const D_WAIT = 1, D_READ = 2, D_WRITE = 3, D_ACCEPT = 4, D_CONNECT = 5, D_CLOSE = 6, D_OPEN = 7, D_SHUT = 8;

// ---------------------------------------------------------------------------------------------
// A loop's backend on the simulation.

class SimBackend implements NativeBackend {
  readonly name = 'sim';
  readonly supportEdgeTrigger = true;
  readonly fd = -1;
  /** Registrations by fd index (fd - VIRTUAL_FD_BASE). */
  readonly regs = new Map<number, Reg>();
  /** Registrations that may be ready: level-triggered ones until found not ready, edge-triggered ones woken. */
  readonly candidates = new Set<Reg>();
  closed = false;
  #view: Int32Array | undefined;
  #viewBuffer: ArrayBuffer | undefined;
  #found: Reg[] = [];
  #bits: number[] = [];

  constructor(readonly sim: Simulation) {}

  add = (index: number, interest: number, gen: number): number => {
    if (this.closed) return EBADF;
    const existing = this.regs.get(index);
    if (existing) return this.modify(index, interest, gen);
    const file = this.sim._file(index);
    if (file === undefined) return EBADF;
    const reg = new Reg(this, file, index, interest, gen);
    this.regs.set(index, reg);
    file.watchers.push(reg);
    this.candidates.add(reg);
    return 0;
  };

  modify = (index: number, interest: number, gen: number): number => {
    if (this.closed) return EBADF;
    const reg = this.regs.get(index);
    if (reg === undefined) return this.add(index, interest, gen);
    reg.interest = interest;
    reg.gen = gen;
    reg.woke = true;
    this.candidates.add(reg);
    return 0;
  };

  remove = (index: number): number => {
    if (this.closed) return EBADF;
    const reg = this.regs.get(index);
    if (reg === undefined) return 0;
    this.drop(reg);
    return 0;
  };

  /** Forgets `reg` (removed, or its file closed). */
  drop(reg: Reg): void {
    this.regs.delete(reg.index);
    this.candidates.delete(reg);
    const list = reg.file.watchers;
    const at = list.indexOf(reg);
    if (at >= 0) list.splice(at, 1);
  }

  wait = (timeoutMs: number, buffer: ArrayBuffer, byteOffset: number, capacity: number): number => {
    if (this.closed) return EBADF;
    return this.sim._wait(this, timeoutMs, this.#records(buffer, byteOffset, capacity));
  };

  #records(buffer: ArrayBuffer, byteOffset: number, capacity: number): Int32Array {
    let view = this.#view;
    if (view === undefined || this.#viewBuffer !== buffer || view.byteOffset !== byteOffset || view.length !== capacity * 3) {
      view = this.#view = new Int32Array(buffer, byteOffset, capacity * 3);
      this.#viewBuffer = buffer;
    }
    return view;
  }

  /** Writes the ready registrations into `out`: how many. */
  collect(out: Int32Array, rng: Rng, faults: FaultSettings, stats: SimulationStats): number {
    const capacity = out.length / 3;
    const found = this.#found;
    const bits = this.#bits;
    found.length = bits.length = 0;
    for (const reg of this.candidates) {
      if (found.length === capacity) break;
      const m = reg.file.mask();
      const b = (m & reg.interest & (READ | WRITE)) | (m & REV_HUP);
      if (reg.interest & EDGE) {
        this.candidates.delete(reg);
        if (reg.woke && b !== 0) {
          found.push(reg);
          bits.push(b);
        }
        reg.woke = false;
      } else if (b !== 0) {
        found.push(reg);
        bits.push(b);
      } else {
        this.candidates.delete(reg);
      }
    }
    // Level-triggered fds go to the back of the line, as epoll's ready list does.
    for (const reg of found) {
      if ((reg.interest & EDGE) === 0) {
        this.candidates.delete(reg);
        this.candidates.add(reg);
      }
    }
    if (found.length < capacity && rng.chance(faults.spurious)) {
      const quiet = [...this.regs.values()].filter((r) => r.interest & READ && (r.file.mask() & READ) === 0 && !found.includes(r));
      if (quiet.length > 0) {
        found.push(quiet[rng.int(0, quiet.length - 1)]);
        bits.push(READ);
        stats.faults.spurious++;
      }
    }
    if (found.length > 1 && rng.chance(faults.reorder)) {
      for (let i = found.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [found[i], found[j]] = [found[j], found[i]];
        [bits[i], bits[j]] = [bits[j], bits[i]];
      }
      stats.faults.reorder++;
    }
    for (let i = 0; i < found.length; i++) {
      out[3 * i] = found[i].index;
      out[3 * i + 1] = found[i].gen;
      out[3 * i + 2] = bits[i];
    }
    return found.length;
  }

  close = (): void => {
    if (this.closed) return;
    for (const reg of [...this.regs.values()]) this.drop(reg);
    this.closed = true;
    this.sim._backends.delete(this);
  };

  startWatching(): void {
    throw new EvpollError(
      'ERR_EVPOLL_SIM_UNSUPPORTED',
      "integrated mode (loop.start()) is not offered on the 'sim' mechanism: its clock is virtual, and Node's own loop runs on real time; drive the loop with run() or runOnce()",
    );
  }

  stopWatching(): void {}

  takeBatch = (): number => EBADF;

  rearm = (): void => {};

  ref(): void {}

  unref(): void {}
}

// ---------------------------------------------------------------------------------------------

const DEFAULT_FAULTS: FaultSettings = {
  latency: [0, 0],
  bufferSize: [65536, 65536],
  partialRead: 0,
  partialWrite: 0,
  reset: 0,
  emfile: 0,
  eintr: 0,
  reorder: 0,
  spurious: 0,
};

const PROBABILITIES = ['partialRead', 'partialWrite', 'reset', 'emfile', 'eintr', 'reorder', 'spurious'] as const;

function checkFaults(faults: unknown): FaultSettings {
  if (faults === undefined) return { ...DEFAULT_FAULTS, latency: [0, 0], bufferSize: [65536, 65536] };
  if (faults === null || typeof faults !== 'object') throw invalidArg('faults must be an object');
  const f = faults as Record<string, unknown>;
  for (const key of Object.keys(f)) {
    if (!(key in DEFAULT_FAULTS)) throw invalidArg(`unknown fault '${key}'; known: ${Object.keys(DEFAULT_FAULTS).join(', ')}`);
  }
  const range = (key: 'latency' | 'bufferSize', min: number): [number, number] => {
    const v = f[key];
    if (v === undefined) return [...DEFAULT_FAULTS[key]] as [number, number];
    const pair = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : undefined;
    if (!pair || !pair.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= min) || pair[0] > pair[1]) {
      throw invalidArg(`faults.${key} must be a number >= ${min} or a range [min, max] of them, got ${JSON.stringify(v)}`);
    }
    if (key === 'bufferSize' && !pair.every(Number.isInteger)) throw invalidArg(`faults.bufferSize must be whole bytes, got ${JSON.stringify(v)}`);
    return [pair[0], pair[1]];
  };
  const settings: FaultSettings = { ...DEFAULT_FAULTS, latency: range('latency', 0), bufferSize: range('bufferSize', 1) };
  for (const key of PROBABILITIES) {
    const p = f[key];
    if (p === undefined) continue;
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw invalidArg(`faults.${key} must be a probability from 0 to 1, got ${String(p)}`);
    // EINTR in every wait would never let a wait end: the program could not make progress.
    if (key === 'eintr' && p === 1) throw invalidArg('faults.eintr must be below 1: a wait interrupted every time never delivers anything');
    settings[key] = p;
  }
  return settings;
}

/** The kernel's fs.nr_open (no real fd is ever at or above it), or undefined where unreadable. */
function nrOpen(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * What Linux's connect() refuses at once, whatever the network: EINVAL for an IPv6 scope
 * ("%eth0": not an address literal) or a link-local address (fe80::/10, which needs one);
 * ENETUNREACH for a multicast or broadcast address (no TCP there). 0 for anything else.
 */
function refusedAtOnce(host: string): number {
  if (host.includes('%') || /^fe[89ab][0-9a-f]:/i.test(host)) return EINVAL;
  if (host === '255.255.255.255' || /^ff[0-9a-f]{2}:/i.test(host)) return ENETUNREACH;
  const first = Number(/^(\d+)\./.exec(host)?.[1]);
  return first >= 224 && first <= 239 ? ENETUNREACH : 0;
}

const FIRST_PORT = 32768;
/** The installed Simulation (src/virtual.ts's `simulated` is what it lends the library). */
let current: Simulation | undefined;
/** What a wait costs in virtual time: a microsecond, about a syscall here. */
const WAIT_COST_MS = 0.001;

/**
 * A simulated world of fds, a network and a clock. Install one (Simulation.install) and evpoll/net
 * makes virtual fds, and `new EventLoop()` runs on it; uninstall() puts everything back.
 */
export class Simulation {
  readonly seed: number;
  readonly faults: FaultSettings;
  /** What the library calls while this simulation is installed (src/virtual.ts). */
  readonly #lent: Simulated;
  /** @internal */
  readonly _backends = new Set<SimBackend>();
  #rng: Rng;
  #now = 0;
  #schedule = new Schedule();
  #files: (VFile | undefined)[] = [];
  #free: number[] = []; // min-heap of free fd indexes below #files.length
  #listeners = new Map<number, Listener>();
  #nextPort = FIRST_PORT;
  #digest = new Digest();
  #trace: string[] | undefined;
  #installed = false;
  #stats: SimulationStats = {
    deliveries: 0,
    waits: 0,
    records: 0,
    faults: { partialRead: 0, partialWrite: 0, reset: 0, emfile: 0, eintr: 0, reorder: 0, spurious: 0 },
  };

  /**
   * Makes a simulation and installs it: from now on evpoll/net's creators (pipe, socketpair,
   * listen, connect; accept on a virtual listener) make virtual fds, and loops made without a
   * mechanism run on 'sim'. Throws ERR_EVPOLL_SIM_INSTALLED if one is installed already.
   */
  static install(options: SimulationOptions = {}): Simulation {
    const sim = new Simulation(options);
    sim.#install();
    return sim;
  }

  /** The installed simulation, if any. */
  static get current(): Simulation | undefined {
    return current;
  }

  /**
   * Installs a simulation, runs `fn` with it and uninstalls it, however `fn` ends (a promise
   * is waited for). When `fn` fails, its error's message gains the line that replays the run:
   * the seed and the faults.
   */
  static run<T>(options: SimulationOptions, fn: (sim: Simulation) => T): T {
    const sim = Simulation.install(options);
    let result: T;
    try {
      result = fn(sim);
    } catch (err) {
      sim.uninstall();
      throw sim.#annotate(err);
    }
    if (result instanceof Promise) {
      return result.then(
        (v) => {
          sim.uninstall();
          return v;
        },
        (err) => {
          sim.uninstall();
          throw sim.#annotate(err);
        },
      ) as T;
    }
    sim.uninstall();
    return result;
  }

  private constructor(options: SimulationOptions) {
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalidArg(`seed must be an integer from 0 to 2**32 - 1, got ${String(seed)}`);
    this.seed = seed;
    this.faults = checkFaults(options.faults);
    this.#rng = new Rng(seed);
    if (options.trace) this.#trace = [];
    this.#lent = { net: this.#makeNet(), backend: () => this.#backend(), now: () => this.#now, describe: () => this.describe(), isOpen: (fd) => this.isOpen(fd) };
  }

  #install(): void {
    if (simulated !== undefined) throw new EvpollError('ERR_EVPOLL_SIM_INSTALLED', `a Simulation is installed already (${simulated.describe()}); uninstall() it first`);
    const limit = nrOpen();
    if (limit !== undefined && limit > VIRTUAL_FD_BASE) {
      throw new EvpollError('ERR_EVPOLL_SIM_UNSUPPORTED', `fs.nr_open is ${limit}: real fds could take the numbers evpoll/sim gives virtual fds (from ${VIRTUAL_FD_BASE})`);
    }
    setSimulated(this.#lent);
    current = this;
    this.#installed = true;
  }

  /**
   * Puts the real world back: evpoll/net makes real fds again. Virtual fds still open are
   * closed (their numbers then give EBADF), and loops on 'sim' can no longer wait.
   */
  uninstall(): void {
    if (!this.#installed) return;
    this.#installed = false;
    if (simulated === this.#lent) setSimulated(undefined);
    if (current === this) current = undefined;
    for (const backend of [...this._backends]) backend.close();
    this.#files = [];
    this.#free = [];
    this.#listeners.clear();
    this.#schedule.clear();
  }

  get installed(): boolean {
    return this.#installed;
  }

  /** Virtual time, in ms since the simulation began. */
  now(): number {
    return this.#now;
  }

  /** Moves virtual time on by `ms`, running every delivery due on the way (no loop runs). */
  advance(ms: number): void {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw invalidArg(`ms must be a finite number >= 0, got ${String(ms)}`);
    this.#runUntil(this.#now + ms);
  }

  /** A hex digest of everything the program saw: every wait's fds and times, every read's bytes, every result. */
  digest(): string {
    return this.#digest.hex();
  }

  /** The steps as lines, when installed with `trace: true` (else empty). */
  trace(): string[] {
    return this.#trace ? [...this.#trace] : [];
  }

  /** `seed N, faults {...}`: what replays this run. */
  describe(): string {
    return `seed ${this.seed}, faults ${JSON.stringify(this.faults)}`;
  }

  stats(): SimulationStats {
    return { ...this.#stats, faults: { ...this.#stats.faults } };
  }

  /** The virtual fds open now, lowest first: for a test that nothing is left behind. */
  openFds(): number[] {
    const fds: number[] = [];
    for (const f of this.#files) if (f) fds.push(f.fd);
    return fds;
  }

  /** Whether virtual fd `fd` is open. */
  isOpen(fd: number): boolean {
    return this.#get(fd) !== undefined;
  }

  /** Deliveries scheduled and not yet made (segments, FINs, connection steps). */
  pending(): number {
    return this.#schedule.size;
  }

  /** A loop on 'sim'. */
  #backend(): NativeBackend {
    if (!this.#installed) throw new EvpollError('ERR_EVPOLL_MECHANISM_UNAVAILABLE', "the Simulation behind mechanism 'sim' is uninstalled");
    const b = new SimBackend(this);
    this._backends.add(b);
    return b;
  }

  /** @internal */
  _file(index: number): VFile | undefined {
    return this.#files[index];
  }

  #annotate(err: unknown): unknown {
    const line = `evpoll/sim: replay with Simulation.run({ seed: ${this.seed}, faults: ${JSON.stringify(this.faults)} }, ...)`;
    if (err instanceof Error) {
      if (!err.message.includes('evpoll/sim: replay')) err.message += `\n${line}`;
      return err;
    }
    return new Error(`${String(err)}\n${line}`);
  }

  #log(line: string): void {
    this.#trace?.push(`${this.#now.toFixed(3)} ${line}`);
  }

  // --- time ----------------------------------------------------------------------------------

  #runDue(): void {
    const schedule = this.#schedule;
    while (schedule.size > 0 && schedule.next() <= this.#now) {
      this.#stats.deliveries++;
      schedule.pop().run();
    }
  }

  #runUntil(target: number): void {
    const schedule = this.#schedule;
    while (schedule.size > 0 && schedule.next() <= target) {
      const step = schedule.pop();
      if (step.at > this.#now) this.#now = step.at;
      this.#stats.deliveries++;
      step.run();
    }
    if (target > this.#now) this.#now = target;
  }

  #later(delay: number, run: () => void): void {
    this.#schedule.add(this.#now + delay, run);
  }

  /** @internal SimBackend.wait */
  _wait(backend: SimBackend, timeoutMs: number, out: Int32Array): number {
    const stats = this.#stats;
    stats.waits++;
    this.#runDue();
    const deadline = timeoutMs < 0 ? Infinity : this.#now + timeoutMs;
    let n = backend.collect(out, this.#rng, this.faults, stats);
    if (n === 0 && timeoutMs !== 0 && this.#rng.chance(this.faults.eintr)) {
      // Interrupted part of the way to whatever would have ended the wait.
      const until = Math.min(deadline, this.#schedule.next());
      if (until !== Infinity) this.#runUntil(this.#now + this.#rng.float() * (until - this.#now));
      stats.faults.eintr++;
      this.#recordWait(out, 0, true);
      return 0;
    }
    let slept = false;
    while (n === 0 && timeoutMs !== 0) {
      const next = this.#schedule.next();
      if (next > deadline || next === Infinity) {
        if (deadline === Infinity) {
          throw new EvpollError(
            'ERR_EVPOLL_SIM_DEADLOCK',
            `a loop on 'sim' would wait forever: no watched fd is ready, no timer is set and nothing is on its way (${this.describe()})`,
          );
        }
        this.#now = deadline;
        slept = true;
        break;
      }
      this.#now = next;
      slept = true;
      this.#runDue();
      n = backend.collect(out, this.#rng, this.faults, stats);
    }
    // A wait that did not sleep costs time, as a syscall does: a program that spins on an fd
    // that stays ready, or polls with a zero timeout, sees its timers come due (its CPU would be
    // busy, not its clock stopped). One that slept wakes exactly at its deadline or delivery.
    if (!slept) this.#runUntil(this.#now + WAIT_COST_MS);
    stats.records += n;
    this.#recordWait(out, n, false);
    return n;
  }

  #recordWait(out: Int32Array, n: number, interrupted: boolean): void {
    const d = this.#digest;
    d.word(D_WAIT);
    d.word(Math.round(this.#now * 1000) | 0);
    d.word(interrupted ? -1 : n);
    for (let i = 0; i < n; i++) {
      d.word(out[3 * i]);
      d.word(out[3 * i + 2]);
    }
    if (this.#trace) {
      const what = [];
      for (let i = 0; i < n; i++) what.push(`${out[3 * i] + VIRTUAL_FD_BASE}:${out[3 * i + 2]}`);
      this.#log(interrupted ? 'wait -> EINTR' : `wait -> [${what.join(' ')}]`);
    }
  }

  // --- fds -----------------------------------------------------------------------------------

  #open(file: VFile): number {
    let index: number;
    const free = this.#free;
    if (free.length > 0) {
      index = free[0];
      const last = free.pop()!;
      if (free.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= free.length) break;
          const c = l + 1 < free.length && free[l + 1] < free[l] ? l + 1 : l;
          if (free[c] >= last) break;
          free[i] = free[c];
          i = c;
        }
        free[i] = last;
      }
    } else {
      index = this.#files.length;
    }
    this.#files[index] = file;
    file.fd = VIRTUAL_FD_BASE + index;
    return file.fd;
  }

  #release(file: VFile): void {
    const index = file.fd - VIRTUAL_FD_BASE;
    this.#files[index] = undefined;
    for (const reg of [...file.watchers]) reg.backend.drop(reg);
    const free = this.#free;
    let i = free.length;
    free.push(index);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (free[p] <= index) break;
      free[i] = free[p];
      i = p;
    }
    free[i] = index;
  }

  #get(fd: number): VFile | undefined {
    return this.#files[fd - VIRTUAL_FD_BASE];
  }

  /**
   * Something happened to `file`: loops watching it look at it in their next wait. `wake`: it
   * came from outside (data, room, FIN, RST, a connection), which is what edge-triggered watchers
   * are told of; the file's own reader or writer changing it only updates level-triggered ones.
   */
  #touch(file: VFile, wake: boolean): void {
    const watchers = file.watchers;
    for (let i = 0; i < watchers.length; i++) {
      const reg = watchers[i];
      if (wake) {
        reg.woke = true;
        reg.backend.candidates.add(reg);
      } else if ((reg.interest & EDGE) === 0) {
        reg.backend.candidates.add(reg);
      }
    }
  }

  // --- sockets -------------------------------------------------------------------------------

  #socket(tcp: boolean, latency: number): Socket {
    const [lo, hi] = this.faults.bufferSize;
    return new Socket(tcp, latency, lo === hi ? lo : this.#rng.int(lo, hi));
  }

  /** Sends `chunk` (or a FIN: undefined) from `from` to its peer. */
  #send(from: Socket, chunk: Uint8Array | undefined): void {
    const to = from.peer!;
    if (!from.tcp) {
      this.#arrive(from, to, chunk);
      return;
    }
    this.#later(from.latency, () => this.#arrive(from, to, chunk));
  }

  #arrive(from: Socket, to: Socket, chunk: Uint8Array | undefined): void {
    if (to.reset) return;
    if (to.closed) {
      // Data for a closed end: its kernel answers RST (for TCP; an AF_UNIX peer already gave EPIPE).
      if (to.tcp && chunk !== undefined) this.#later(to.latency, () => this.#resetEnd(from));
      return;
    }
    if (to.tcp && chunk !== undefined && this.#rng.chance(this.faults.reset)) {
      this.#stats.faults.reset++;
      this.#log(`reset ${from.fd}<->${to.fd}`);
      this.#resetEnd(to);
      this.#later(to.latency, () => this.#resetEnd(from));
      return;
    }
    if (chunk === undefined) to.rxEof = true;
    else to.rx.push(chunk);
    this.#touch(to, true);
  }

  /** An RST reaches `s`. */
  #resetEnd(s: Socket): void {
    if (s.reset || s.closed) return;
    s.reset = true;
    s.err = ECONNRESET;
    s.rx.clear();
    this.#touch(s, true);
  }

  /** `s`'s reader took `n` bytes: the window opens at the writer, one latency later for TCP. */
  #ack(s: Socket, n: number): void {
    const writer = s.peer;
    if (writer === undefined || writer.closed) return;
    if (!s.tcp || s.latency === 0) {
      writer.unacked -= n;
      this.#touch(writer, true);
      return;
    }
    this.#later(s.latency, () => {
      writer.unacked -= n;
      if (!writer.closed) this.#touch(writer, true);
    });
  }

  #closeSocket(s: Socket): void {
    s.closed = true;
    const peer = s.peer;
    if (peer === undefined || s.reset || s.state !== CONNECTED) return;
    if (s.rx.length > 0) {
      // Unread data left behind: RST, not FIN (tcp_close, unix_release_sock).
      s.rx.clear();
      if (s.tcp) this.#later(s.latency, () => this.#resetEnd(peer));
      else this.#resetEnd(peer);
    } else if (!s.shutWr) {
      this.#send(s, undefined);
    } else if (!s.tcp) {
      this.#touch(peer, true); // the peer's hang-up is now whole
    }
  }

  #closeListener(l: Listener): void {
    l.closed = true;
    this.#listeners.delete(l.port);
    for (const s of l.queue) {
      s.closed = true;
      const peer = s.peer!;
      this.#later(s.latency, () => this.#resetEnd(peer));
    }
    l.queue.length = 0;
  }

  #connect(port: number): number {
    const [lo, hi] = this.faults.latency;
    const latency = lo === hi ? lo : this.#rng.between(this.faults.latency);
    const c = this.#socket(true, latency);
    c.port = this.#nextPort++;
    const fd = this.#open(c);
    const syn = () => {
      if (c.closed) return;
      const l = this.#listeners.get(port);
      if (l === undefined) {
        this.#later(latency, () => {
          if (c.closed) return;
          c.state = REFUSED;
          c.reset = true;
          c.err = ECONNREFUSED;
          this.#touch(c, true);
        });
        return;
      }
      if (l.pending + l.queue.length >= Math.max(1, l.backlog)) {
        this.#later(1000, syn); // the SYN is dropped; the client's kernel sends it again
        return;
      }
      l.pending++;
      const s = this.#socket(true, latency);
      s.port = port;
      s.state = CONNECTED;
      s.peer = c;
      this.#later(latency, () => {
        if (c.closed) {
          l.pending--;
          return;
        }
        c.peer = s;
        c.state = CONNECTED;
        this.#touch(c, true);
        this.#later(latency, () => {
          l.pending--;
          if (l.closed) {
            this.#resetEnd(c);
            return;
          }
          l.queue.push(s);
          this.#touch(l, true);
        });
      });
    };
    this.#later(latency, syn);
    return fd;
  }

  #makeNet(): VirtualNet {
    const digest = this.#digest;
    const rng = this.#rng;
    const faults = this.faults;
    const stats = this.#stats;
    const sim = this;
    /** `n` bytes could move: fewer (at least 1) when the fault strikes. */
    const partial = (n: number, fault: 'partialRead' | 'partialWrite'): number => {
      if (n < 2 || !rng.chance(faults[fault])) return n;
      stats.faults[fault]++;
      return rng.int(1, n - 1);
    };
    const result = (kind: number, fd: number, r: number) => {
      digest.word(kind);
      digest.word(fd - VIRTUAL_FD_BASE);
      digest.word(r);
    };
    return {
      pipe(): [number, number] {
        const r = new PipeEnd(true);
        const w = new PipeEnd(false);
        r.pipe = w.pipe = new Pipe(r, w);
        const fds: [number, number] = [sim.#open(r), sim.#open(w)];
        result(D_OPEN, fds[0], fds[1]);
        sim.#log(`pipe -> ${fds[0]} ${fds[1]}`);
        return fds;
      },
      socketpair(): [number, number] {
        const a = sim.#socket(false, 0);
        const b = sim.#socket(false, 0);
        a.peer = b;
        b.peer = a;
        a.state = b.state = CONNECTED;
        const fds: [number, number] = [sim.#open(a), sim.#open(b)];
        result(D_OPEN, fds[0], fds[1]);
        sim.#log(`socketpair -> ${fds[0]} ${fds[1]}`);
        return fds;
      },
      read(fd, buffer, offset, length): number {
        const f = sim.#get(fd);
        let n: number;
        if (f === undefined) n = EBADF;
        else if (f.kind === 'pipe') {
          const e = f as PipeEnd;
          if (!e.reader) n = EBADF;
          else {
            const p = e.pipe;
            n = Math.min(length, p.data.length);
            if (n === 0) n = length === 0 ? 0 : p.writerOpen ? EAGAIN : 0;
            else {
              n = partial(n, 'partialRead');
              p.data.take(buffer, offset, n);
              sim.#touch(e, false);
              if (p.writerOpen) sim.#touch(p.w, true);
            }
          }
        } else if (f.kind === 'socket') {
          const s = f as Socket;
          if (s.err !== 0) {
            n = s.err;
            s.err = 0;
          } else if (s.state === CONNECTING) n = EAGAIN;
          else {
            n = Math.min(length, s.rx.length);
            if (n === 0) n = length === 0 || s.rxEof || s.reset ? 0 : EAGAIN;
            else {
              n = partial(n, 'partialRead');
              s.rx.take(buffer, offset, n);
              sim.#touch(s, false);
              sim.#ack(s, n);
            }
          }
        } else n = ENOTCONN;
        result(D_READ, fd, n);
        if (n > 0) digest.bytes(buffer, offset, n);
        if (sim.#trace) sim.#log(`read ${fd} -> ${n}`);
        return n;
      },
      write(fd, buffer, offset, length): number {
        const f = sim.#get(fd);
        let n: number;
        if (f === undefined) n = EBADF;
        else if (f.kind === 'pipe') {
          const e = f as PipeEnd;
          const p = e.pipe;
          if (e.reader) n = EBADF;
          else if (!p.readerOpen) n = EPIPE;
          else {
            n = Math.min(length, PIPE_BUFFER - p.data.length);
            if (n === 0 && length > 0) n = EAGAIN;
            else if (n > 0) {
              n = partial(n, 'partialWrite');
              p.data.push(buffer.slice(offset, offset + n));
              sim.#touch(e, false);
              sim.#touch(p.r, true);
            }
          }
        } else if (f.kind === 'socket') {
          const s = f as Socket;
          if (s.err !== 0) {
            n = s.err;
            s.err = 0;
          } else if (s.reset || s.shutWr) n = EPIPE;
          else if (s.state === CONNECTING) n = EAGAIN;
          else if (!s.tcp && s.peer!.closed) n = EPIPE;
          else {
            n = Math.min(length, s.bufferSize - s.unacked);
            if (n <= 0) n = length === 0 ? 0 : EAGAIN;
            else {
              n = partial(n, 'partialWrite');
              s.unacked += n;
              sim.#touch(s, false);
              sim.#send(s, buffer.slice(offset, offset + n));
            }
          }
        } else n = EPIPE;
        result(D_WRITE, fd, n);
        if (n > 0) digest.bytes(buffer, offset, n);
        if (sim.#trace) sim.#log(`write ${fd} -> ${n}`);
        return n;
      },
      close(fd): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        sim.#release(f);
        if (f.kind === 'pipe') {
          const e = f as PipeEnd;
          if (e.reader) {
            e.pipe.readerOpen = false;
            e.pipe.data.clear();
            if (e.pipe.writerOpen) sim.#touch(e.pipe.w, true);
          } else {
            e.pipe.writerOpen = false;
            if (e.pipe.readerOpen) sim.#touch(e.pipe.r, true);
          }
        } else if (f.kind === 'socket') sim.#closeSocket(f as Socket);
        else sim.#closeListener(f as Listener);
        result(D_CLOSE, fd, 0);
        sim.#log(`close ${fd}`);
        return 0;
      },
      listen(_host, port, backlog): number {
        if (port === 0) {
          while (sim.#listeners.has(sim.#nextPort)) sim.#nextPort++;
          port = sim.#nextPort++;
        } else if (sim.#listeners.has(port)) return EADDRINUSE;
        const l = new Listener(port, backlog);
        sim.#listeners.set(port, l);
        const fd = sim.#open(l);
        result(D_OPEN, fd, port);
        sim.#log(`listen ${port} -> ${fd}`);
        return fd;
      },
      accept(fd, out, max): number {
        const f = sim.#get(fd);
        let n: number;
        if (f === undefined) n = EBADF;
        else if (f.kind === 'pipe') n = ENOTSOCK; // accept4 on a non-socket
        else if (f.kind !== 'listener') n = EINVAL; // a socket that is not listening
        else {
          const l = f as Listener;
          if (l.queue.length === 0) n = EAGAIN;
          else if (rng.chance(faults.emfile)) {
            stats.faults.emfile++;
            n = EMFILE;
          } else {
            n = Math.min(max, l.queue.length);
            for (let i = 0; i < n; i++) out[i] = sim.#open(l.queue.shift()!);
            sim.#touch(l, false);
          }
        }
        result(D_ACCEPT, fd, n);
        if (sim.#trace) sim.#log(`accept ${fd} -> ${n > 0 ? Array.from(out.subarray(0, n)).join(' ') : n}`);
        return n;
      },
      connect(host, port): number {
        const refused = refusedAtOnce(host);
        if (refused !== 0) return refused;
        const fd = sim.#connect(port);
        result(D_CONNECT, fd, port);
        sim.#log(`connect ${port} -> ${fd}`);
        return fd;
      },
      connectResult(fd): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        if (f.kind === 'pipe') return ENOTSOCK;
        if (f.kind === 'listener') return ENOTCONN;
        const s = f as Socket;
        if (s.state === CONNECTING) return EINPROGRESS;
        if (s.err !== 0) {
          const e = s.err;
          s.err = 0;
          return e;
        }
        return s.state === CONNECTED && !s.reset ? 0 : ENOTCONN;
      },
      shutdown(fd): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        if (f.kind === 'pipe') return ENOTSOCK;
        if (f.kind === 'listener') return ENOTCONN;
        const s = f as Socket;
        if (s.state === CONNECTING) {
          // Linux abandons a connect shut down while under way (tcp_disconnect): ECONNRESET.
          s.state = REFUSED;
          s.reset = true;
          s.err = ECONNRESET;
          s.closed = true; // its connection steps, still scheduled, find it gone
          sim.#touch(s, true);
          result(D_SHUT, fd, 0);
          return 0;
        }
        if (s.state !== CONNECTED) return ENOTCONN;
        if (!s.shutWr) {
          s.shutWr = true;
          if (!s.reset) sim.#send(s, undefined);
          sim.#touch(s, false);
        }
        result(D_SHUT, fd, 0);
        return 0;
      },
      localPort(fd): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        if (f.kind === 'pipe') return ENOTSOCK;
        return (f as Socket | Listener).port;
      },
      listenQueue(fd, out): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        if (f.kind === 'pipe') return ENOTSOCK;
        if (f.kind !== 'listener') return EINVAL;
        const l = f as Listener;
        out[0] = l.queue.length;
        out[1] = l.backlog;
        return 0;
      },
      setNoDelay(fd): number {
        const f = sim.#get(fd);
        if (f === undefined) return EBADF;
        return f.kind === 'pipe' ? ENOTSOCK : 0;
      },
      sendUrgent(fd): number {
        return sim.#get(fd) === undefined ? EBADF : EOPNOTSUPP;
      },
      readUrgent(fd): number {
        return sim.#get(fd) === undefined ? EBADF : EOPNOTSUPP;
      },
    };
  }
}
