// The WebAssembly core (assembly/): slot table, fd table, timer heap, dispatch list.
import { readFileSync } from 'node:fs';
import { artefact } from './paths.js';

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
  /** Three int32 words the core keeps current: dispatch list address, ready area address, ready capacity. */
  sharedPtr(): number;
  pendingCount(): number;
  timerCount(): number;
}

let compiled: WebAssembly.Module | undefined;

/** A fresh core: each loop owns one instance (and so one linear memory). */
export function instantiateCore(): CoreExports {
  compiled ??= new WebAssembly.Module(readFileSync(artefact('the WebAssembly core', ['dist/core.wasm'])));
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
