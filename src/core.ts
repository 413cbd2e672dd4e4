// The WebAssembly core (assembly/): slot table, fd table, timer heap, dispatch list.
import { readFileSync } from 'node:fs';
import { artefact } from './paths.js';
import { debug } from './debug.js';
import { OP_ADD, OP_MODIFY } from './flags.js';

/** The release build's exports (dist/core.wasm, assembly/index.ts): what src/ calls. */
export interface CoreExports {
  memory: WebAssembly.Memory;
  watch(fd: number, interest: number): number;
  /** `walked`: 1 when no dispatch list is being walked, so the slot may be reused at once. */
  release(slot: number, walked?: number): number;
  lastOpKind(): number;
  lastOpInterest(): number;
  lastOpGen(): number;
  timerAdd(now: number, frequency: number, flags: number): number;
  timerReschedule(slot: number, now: number, frequency: number): number;
  collect(now: number, count: number): number;
  /** ev.priority (-2..2) of a live slot; 0 (nothing changed) if the slot is not live. */
  setPriority(slot: number, priority: number): number;
  growReady(): void;
  /**
   * The address of the shared words, which every call leaves current (24 bytes, 8-aligned, at the
   * same address for the instance's life; layout in assembly/shared.ts):
   * - byte 0, int32: the dispatch list's address;
   * - byte 4, int32: the ready area's address;
   * - byte 8, int32: the ready area's capacity, in records;
   * - byte 12, int32: the live slot count;
   * - byte 16, float64: the earliest timer deadline, +Infinity when no timer is scheduled (the
   *   timeout to wait is ceil(deadline - now), 0 if due, -1 if +Infinity).
   * A view of memory.buffer must be made again after any call that can grow the memory.
   */
  sharedPtr(): number;
}

/**
 * In a dispatch entry's `which` (assembly/shared.ts ENTRY_RETIRED): collect() released the
 * entry's slot (a one-shot timer that fired, an Event on an fd reported invalid). Not an EV bit:
 * masked off before the callback.
 */
export const RETIRED = 1 << 30;

/** The debug build's exports (dist/core-debug.wasm, assembly/debug.ts): for tests and benchmarks. */
export interface DebugCoreExports extends CoreExports {
  /** ms until the nearest timer from the heap itself (ceil, 0 if due, -1 if none). */
  nextTimeout(now: number): number;
  readyPtr(): number;
  readyCapacity(): number;
  dispatchPtr(): number;
  pendingCount(): number;
  timerCount(): number;
  setNextSequence(v: number): void;
  setBulkMin(n: number): void;
}

const compiled = new Map<string, WebAssembly.Module>();

function compileCore(file: string): WebAssembly.Module {
  const path = artefact('the WebAssembly core', [file]);
  const module = new WebAssembly.Module(readFileSync(path));
  debug('WebAssembly core %s', path);
  return module;
}

/**
 * A fresh core: each loop owns one instance (and so one linear memory). `file`, relative to the
 * package root: tests and benchmarks load the debug build, 'dist/core-debug.wasm'.
 */
export function instantiateCore(file?: 'dist/core.wasm'): CoreExports;
export function instantiateCore(file: 'dist/core-debug.wasm'): DebugCoreExports;
export function instantiateCore(file = 'dist/core.wasm'): CoreExports {
  let module = compiled.get(file);
  if (module === undefined) compiled.set(file, (module = compileCore(file)));
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(_msg: number, _file: number, line: number, column: number) {
        throw new Error(`evpoll: WebAssembly core aborted at ${line}:${column}`);
      },
    },
  });
  const core = instance.exports as unknown as CoreExports & { _initialize?: () => void };
  core._initialize?.();
  return core;
}

// The shared words (assembly/shared.ts has the layout): int32 indexes from sharedPtr() / 4,
// and the earliest deadline's float64 index from sharedPtr() / 8.
const LIST_WORD = 0;
const READY_WORD = 1;
const READY_CAPACITY_WORD = 2;
const LIVE_WORD = 3;
const EARLIEST_BYTE = 16;

/** The longest wait a backend takes, in ms (a C int). */
export const MAX_TIMEOUT = 0x7fffffff;

/**
 * The one place a deadline becomes a wait: whole ms from `now` until `deadline`, rounded up so
 * that a wait never ends before it; 0 if due; -1 if there is none (+Infinity).
 */
export function timeoutUntil(deadline: number, now: number): number {
  const d = deadline - now;
  if (d === Infinity) return -1;
  if (d <= 0) return 0;
  return d >= MAX_TIMEOUT ? MAX_TIMEOUT : Math.ceil(d);
}

/**
 * A loop's core: the instance, typed, plus what JS reads from its memory instead of calling
 * in — the shared words, the dispatch list — through views it re-makes when the memory grew
 * (memory.grow detaches the old buffer and every view of it; a detached view has length 0).
 * The registration change a watch() or release() asks of the backend is left in op, opInterest
 * and opGen.
 */
export class Core {
  readonly exports: CoreExports;
  buffer: ArrayBuffer;
  i32: Int32Array;
  #f64: Float64Array;
  readonly #shared: number;
  readonly #earliest: number;
  /** The dispatch list of the last collect(), as an int32 index: entry k is (slot, which) at listBase + 2k. */
  listBase = 0;
  /** The backend change the last watch()/release() asks for (OP_*), and its interest and generation. */
  op = 0;
  opInterest = 0;
  opGen = 0;

  constructor(exports: CoreExports = instantiateCore()) {
    this.exports = exports;
    const shared = exports.sharedPtr();
    this.#shared = shared >> 2;
    this.#earliest = (shared + EARLIEST_BYTE) >> 3;
    this.buffer = exports.memory.buffer;
    this.i32 = new Int32Array(this.buffer);
    this.#f64 = new Float64Array(this.buffer);
  }

  /**
   * Re-makes the views if the memory grew. Called before reading memory after anything that may
   * have grown it; asking for memory.buffer costs more than the rest of a timer add(), so only
   * a detached view triggers it.
   */
  views(): void {
    if (this.i32.length !== 0) return;
    const buffer = this.exports.memory.buffer;
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.#f64 = new Float64Array(buffer);
  }

  /** Live registrations (pendingCount()). */
  live(): number {
    this.views();
    return this.i32[this.#shared + LIVE_WORD];
  }

  /** Whole ms until the nearest timer at `now` (timeoutUntil): 0 if due, -1 if none. */
  timeout(now: number): number {
    this.views();
    return timeoutUntil(this.#f64[this.#earliest], now);
  }

  /** Whether any timer is scheduled (the earliest deadline is finite). */
  anyTimer(): boolean {
    this.views();
    return this.#f64[this.#earliest] !== Infinity;
  }

  /** Where a wait writes its records: the ready area's byte offset. */
  readyOffset(): number {
    this.views();
    return this.i32[this.#shared + READY_WORD];
  }

  /** The ready area's capacity, in records. */
  readyCapacity(): number {
    return this.i32[this.#shared + READY_CAPACITY_WORD];
  }

  /**
   * The dispatch list from `count` records in the ready area and the timers due at `now`: its
   * length; entries at listBase. A wait that filled the ready area may have left fds unreported,
   * so the next one gets twice the room.
   */
  collect(now: number, count: number, capacity: number): number {
    const length = this.exports.collect(now, count);
    if (count === capacity) this.exports.growReady();
    this.views();
    this.listBase = this.i32[this.#shared + LIST_WORD] >> 2;
    return length;
  }

  /** Watches fd in a new slot; the backend change it needs in op/opInterest/opGen. */
  watch(fd: number, interest: number): number {
    const x = this.exports;
    const slot = x.watch(fd, interest);
    this.#lastOp();
    return slot;
  }

  /**
   * Ends a pending slot (false if collect() had released it already); for an fd, the backend
   * change in op/opInterest/opGen. `walked`: no later dispatch entry will be read.
   */
  release(slot: number, walked: boolean): boolean {
    if (!this.exports.release(slot, walked ? 1 : 0)) return false;
    this.#lastOp();
    return true;
  }

  #lastOp(): void {
    const x = this.exports;
    const op = (this.op = x.lastOpKind());
    if (op === OP_ADD || op === OP_MODIFY) {
      this.opInterest = x.lastOpInterest();
      this.opGen = x.lastOpGen() >>> 0;
    }
  }

  timerAdd(now: number, ms: number, flags: number): number {
    return this.exports.timerAdd(now, ms, flags);
  }

  /** Sets a live slot's priority (collect() orders by it); false if the slot is not live. */
  setPriority(slot: number, priority: number): boolean {
    return this.exports.setPriority(slot, priority) !== 0;
  }

  /** Reschedules a scheduled timer; false (nothing changed) if it is no longer scheduled. */
  timerReschedule(slot: number, now: number, ms: number): boolean {
    return this.exports.timerReschedule(slot, now, ms) !== 0;
  }

  /** The core's memory, in bytes. */
  get memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }
}
