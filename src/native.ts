// The native addon: backends that register, wait and report; they never call JavaScript.
import { createRequire } from 'node:module';
import { packageRoot } from './paths.js';
import { debug, debugging } from './debug.js';

/**
 * A backend. add, modify, remove, wait, takeBatch and rearm are the object's own functions,
 * bound to it natively when it is made (no lookup of the C++ object per call); they keep
 * working when taken off it, and answer -EBADF (rearm: nothing) once the backend is closed or
 * collected. They are not on the prototype: a subclass cannot override them.
 */
export interface NativeBackend {
  readonly name: string;
  readonly supportEdgeTrigger: boolean;
  /** The backend's own pollable fd (epoll), or -1. */
  readonly fd: number;
  add(fd: number, interest: number, gen: number): number;
  modify(fd: number, interest: number, gen: number): number;
  remove(fd: number): number;
  /** Waits, writes (fd, gen, revents) int32 records at byteOffset; count, or -errno. */
  wait(timeoutMs: number, buffer: ArrayBuffer, byteOffset: number, capacity: number): number;
  close(): void;
  /**
   * Integrated mode: call onReady (via napi_make_callback) whenever the backend may have ready
   * fds. flags: READY_POSTED, the helper thread (poll, select) has posted a batch; READY_WAKE_UP,
   * the first call of a wake-up. It returns true when it took records and handled them all: the
   * watcher then looks again within the same wake-up (native/integrate.h).
   */
  startWatching(onReady: (flags: number) => boolean): void;
  stopWatching(): void;
  /** Integrated mode: the ready records gathered so far, never blocking; count or -errno. */
  takeBatch(buffer: ArrayBuffer, byteOffset: number, capacity: number): number;
  /** Integrated mode: the batch has been handled; the backend may wait again. */
  rearm(): void;
  ref(): void;
  unref(): void;
}

/** One backend's module struct (backend.h), as mechanisms() reports it; src/mechanisms.ts documents the fields. */
export interface NativeMechanism {
  name: string;
  supportEdgeTrigger: boolean;
  available: boolean;
  supportExclusive: boolean;
  fdLimit: number | null;
  helperThread: boolean;
  syscalls: { add: string; wait: string };
}

export interface NativeAddon {
  FD_SETSIZE: number;
  mechanisms(): NativeMechanism[];
  Backend: new (name: string, maxFd: number) => NativeBackend;
}

const require = createRequire(import.meta.url);

/**
 * The addon's file: build/Release or build/Debug when it was compiled here, else the prebuild
 * for this platform from prebuilds/ (node-gyp-build's search, as the install script used).
 */
function addonPath(): string {
  const { resolve } = require('node-gyp-build') as { resolve(dir: string): string };
  try {
    return resolve(packageRoot);
  } catch (e) {
    throw new Error(
      `evpoll: no native addon fits this system, and none was compiled (${(e as Error).message.trim()}). ` +
        'Compile it with `npm rebuild evpoll` (needs a C/C++ toolchain (g++), make and python3); in a clone of the repository, `npm run build`.',
    );
  }
}

// EVPOLL_ADDON=path loads that build instead (scripts/asan.mjs and valgrind.mjs point it at
// their own builds).
const addonFile = process.env.EVPOLL_ADDON || addonPath();
export const addon: NativeAddon = require(addonFile);
if (debugging) debug('addon %s', require.resolve(addonFile));
