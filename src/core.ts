// The WebAssembly core (assembly/): slot table, fd table, timer heap, dispatch list.
import { readFileSync } from 'node:fs';
import { artefact } from './paths.js';
import { debug } from './debug.js';

export interface CoreExports {
  memory: WebAssembly.Memory;
  watch(fd: number, interest: number): number;
  /** `walked`: 1 when no dispatch list is being walked, so the slot may be reused at once. */
  release(slot: number, walked?: number): number;
  lastOpKind(): number;
  lastOpFd(): number;
  lastOpInterest(): number;
  lastOpGen(): number;
  timerAdd(now: number, frequency: number, flags: number): number;
  timerReschedule(slot: number, now: number, frequency: number): number;
  nextTimeout(now: number): number;
  collect(now: number, count: number): number;
  readyPtr(): number;
  readyCapacity(): number;
  growReady(): void;
  dispatchPtr(): number;
  /**
   * The address of the shared words, which every call leaves current (24 bytes, 8-aligned, at the
   * same address for the instance's life; layout in assembly/dispatch.ts):
   * - byte 0, int32: the dispatch list's address;
   * - byte 4, int32: the ready area's address;
   * - byte 8, int32: the ready area's capacity, in records;
   * - byte 12, int32: the live slot count (what pendingCount() returns);
   * - byte 16, float64: the earliest timer deadline, +Infinity when no timer is scheduled (what
   *   nextTimeout(now) measures from: ceil(deadline - now), 0 if due, -1 if +Infinity).
   * A view of memory.buffer must be made again after any call that can grow the memory.
   */
  sharedPtr(): number;
  pendingCount(): number;
  timerCount(): number;
}

let compiled: WebAssembly.Module | undefined;

function compileCore(): WebAssembly.Module {
  const path = artefact('the WebAssembly core', ['dist/core.wasm']);
  const module = new WebAssembly.Module(readFileSync(path));
  debug('WebAssembly core %s', path);
  return module;
}

/** A fresh core: each loop owns one instance (and so one linear memory). */
export function instantiateCore(): CoreExports {
  compiled ??= compileCore();
  const instance = new WebAssembly.Instance(compiled, {
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
