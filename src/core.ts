// The WebAssembly core (assembly/): slot table, fd table, timer heap, dispatch list.
import { readFileSync } from 'node:fs';
import { artefact } from './paths.js';
import { debug } from './debug.js';

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
