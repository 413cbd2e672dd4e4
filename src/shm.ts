// evpoll/shm: memory shared between processes, and nginx's accept mutex on it.
//
// The master creates a SharedRegion (a memfd, mapped) and hands its fd to each child it spawns,
// as it hands the listening socket: in spawn's `stdio` array. A child maps it with
// SharedRegion.open(fd). Every process then sees the same bytes; AcceptMutex is a lock word in
// them, taken and given back by Atomics on the mapping, with no system call (ngx_shmtx).
import { constants } from 'node:os';
import { addon } from './native.js';
import { EvpollError, invalidArg, systemError } from './errors.js';

interface ShmOps {
  shmCreate(bytes: number, name: string): number;
  shmSize(fd: number): number;
  shmMap(fd: number, bytes: number): ArrayBuffer | number;
  shmUnmap(buffer: ArrayBuffer): void;
  close(fd: number): number;
}
const ops = addon as unknown as ShmOps;

const EINVAL = -constants.errno.EINVAL;
const MAX_BYTES = 2 ** 31;
/** memfd_create's limit on a name, in bytes, without its NUL. */
const MAX_NAME_BYTES = 249;

function closedError(): EvpollError {
  return new EvpollError('ERR_EVPOLL_CLOSED', 'the SharedRegion is closed (or its buffer was detached)');
}

export interface SharedRegionOptions {
  /** The memfd's name, for /proc/<pid>/fd and /proc/<pid>/maps (`/memfd:<name>`); default 'evpoll'. */
  name?: string;
}

/**
 * Memory shared between processes: a memfd of `byteLength` bytes (whole pages), sealed at that
 * size, mapped MAP_SHARED into this process as `buffer`. A new region reads as zeros.
 *
 * Handing it to a child: the fd is close-on-exec, so a child gets it only when it is put in
 * child_process.spawn's `stdio` array (`stdio[3] = region.fd`), which dup2s it to that number
 * in the child; the child then calls `SharedRegion.open(3)`.
 *
 * The region owns its fd: close() closes it and unmaps the memory. A region that is never closed
 * keeps its fd open; its mapping goes when `buffer` is collected.
 */
export class SharedRegion {
  readonly byteLength: number;
  #fd: number;
  readonly #buffer: ArrayBuffer;

  private constructor(fd: number, byteLength: number, buffer: ArrayBuffer) {
    this.#fd = fd;
    this.byteLength = byteLength;
    this.#buffer = buffer;
  }

  /**
   * A new region of at least `bytes` bytes (1 … 2^31), rounded up to whole pages, zero-filled.
   * Throws ERR_EVPOLL_INVALID_ARG for a bad size or name, a SystemError (EMFILE, ENOMEM, …)
   * when the kernel refuses.
   */
  static create(bytes: number, options: SharedRegionOptions = {}): SharedRegion {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_BYTES) {
      throw invalidArg(`bytes must be an integer from 1 to ${MAX_BYTES}, got ${String(bytes)}`);
    }
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object');
    const name = options.name ?? 'evpoll';
    if (typeof name !== 'string' || name.includes('\0') || Buffer.byteLength(name) > MAX_NAME_BYTES) {
      throw invalidArg(`name must be a string of at most ${MAX_NAME_BYTES} bytes without NUL, got ${typeof name === 'string' ? JSON.stringify(name.slice(0, 40)) : String(name)}`);
    }
    const fd = ops.shmCreate(bytes, name);
    if (fd < 0) throw systemError(fd, 'memfd_create');
    try {
      return SharedRegion.#map(fd);
    } catch (e) {
      ops.close(fd);
      throw e;
    }
  }

  /**
   * The region whose fd this process holds as `fd` (a child: the number it was handed down as
   * in spawn's `stdio`), mapped. The region takes the fd over: close() closes it, and it is
   * made close-on-exec (so a grandchild gets it only if it is handed down again). Throws
   * ERR_EVPOLL_INVALID_ARG for an fd that is not a region (not a memfd sealed against
   * shrinking: a file that could shrink under the mapping would crash this process with
   * SIGBUS), a SystemError for one that is not open (EBADF).
   */
  static open(fd: number): SharedRegion {
    if (!Number.isInteger(fd) || fd < 0 || fd > 2147483647) throw invalidArg(`fd must be an integer >= 0, got ${String(fd)}`);
    return SharedRegion.#map(fd);
  }

  static #map(fd: number): SharedRegion {
    const bytes = ops.shmSize(fd);
    if (bytes === EINVAL) throw invalidArg(`fd ${fd} is not a SharedRegion (a memfd sealed against shrinking)`);
    if (bytes < 0) throw systemError(bytes, 'fstat');
    const buffer = ops.shmMap(fd, bytes);
    if (typeof buffer === 'number') throw systemError(buffer, 'mmap');
    return new SharedRegion(fd, bytes, buffer);
  }

  /** The memfd, to hand to a child in spawn's `stdio`; -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** The shared memory; empty (detached) once closed. */
  get buffer(): ArrayBuffer {
    return this.#buffer;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * An Int32Array over `length` words of the region from byte `offset` (a multiple of 4), the
   * type Atomics works on. Plain reads and writes through it are not atomic: use Atomics where
   * other processes write the same words.
   */
  int32(offset: number, length: number): Int32Array {
    if (this.closed || this.#buffer.byteLength === 0) throw closedError();
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0 || offset > this.byteLength) {
      throw invalidArg(`offset must be a multiple of 4 from 0 to ${this.byteLength}, got ${String(offset)}`);
    }
    const room = (this.byteLength - offset) / 4;
    if (!Number.isInteger(length) || length < 0 || length > room) {
      throw invalidArg(`length must be an integer from 0 to ${room} (words from offset ${offset}), got ${String(length)}`);
    }
    return new Int32Array(this.#buffer, offset, length);
  }

  /**
   * Closes the fd and unmaps this process's mapping (other processes keep theirs; the memory
   * goes with the last): `buffer` and every view on it become empty at once, the pages are
   * unmapped on the next turn of Node's event loop, and AcceptMutexes on the region throw
   * ERR_EVPOLL_CLOSED. A second close() does nothing.
   */
  close(): void {
    if (this.closed) return;
    const fd = this.#fd;
    this.#fd = -1;
    ops.shmUnmap(this.#buffer);
    ops.close(fd);
  }
}

/**
 * nginx's accept mutex (ngx_shmtx without its semaphore): a lock word in a SharedRegion that
 * holds the pid of the process holding the lock, 0 when free. Every operation is one atomic
 * instruction on the mapping (Atomics on an Int32Array over it: `lock cmpxchg` on x86-64), no
 * system call; nothing waits: a process that does not get the lock goes on with its loop and
 * tries again on a later iteration, as nginx's workers do.
 *
 * The lock belongs to a process: worker_threads of one process share its pid, so they share
 * the lock too. A holder that dies keeps it (nothing in the memory knows it died): the master,
 * which learns of its children's deaths, frees it with forceUnlock(pid), as nginx's master does
 * with ngx_shmtx_force_unlock.
 */
export class AcceptMutex {
  /** Bytes a mutex takes in its region, from its offset: the lock word and one word reserved. */
  static readonly BYTES = 8;

  readonly region: SharedRegion;
  readonly offset: number;
  /** The lock word (and the reserved one); empty once the region is closed. */
  readonly #word: Int32Array;
  readonly #pid: number;

  /** A mutex at byte `offset` (a multiple of 4) of `region`; a fresh region's words are 0: free. */
  constructor(region: SharedRegion, offset = 0) {
    if (!(region instanceof SharedRegion)) throw invalidArg('region must be a SharedRegion');
    if (region.closed) throw closedError();
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0 || offset + AcceptMutex.BYTES > region.byteLength) {
      throw invalidArg(`offset must be a multiple of 4 from 0 to ${region.byteLength - AcceptMutex.BYTES}, got ${String(offset)}`);
    }
    this.region = region;
    this.offset = offset;
    this.#word = region.int32(offset, AcceptMutex.BYTES / 4);
    this.#pid = process.pid;
  }

  /**
   * Takes the lock if it is free: true if this process holds it now, false if another does.
   * A process that already holds it gets true again; there is no count: one unlock() frees it.
   */
  tryLock(): boolean {
    const word = this.#live();
    // Look before the compare-and-swap (ngx_shmtx_trylock does): a plain load leaves the cache
    // line shared while another process holds the lock; a failing CAS would take it exclusive.
    const holder = Atomics.load(word, 0);
    if (holder !== 0) return holder === this.#pid;
    return Atomics.compareExchange(word, 0, 0, this.#pid) === 0;
  }

  /** Frees the lock if this process holds it: true if it did, false if it was not the holder. */
  unlock(): boolean {
    return Atomics.compareExchange(this.#live(), 0, this.#pid, 0) === this.#pid;
  }

  /**
   * Frees the lock if process `pid` holds it (the master, when that child has died): true if
   * it did; false, changing nothing, if the lock is free or another process holds it.
   */
  forceUnlock(pid: number): boolean {
    if (!Number.isInteger(pid) || pid < 1 || pid > 2147483647) throw invalidArg(`pid must be an integer >= 1, got ${String(pid)}`);
    return Atomics.compareExchange(this.#live(), 0, pid, 0) === pid;
  }

  /** The pid holding the lock, 0 when it is free. */
  get holder(): number {
    return Atomics.load(this.#live(), 0);
  }

  /** Whether this process holds the lock (nginx's ngx_accept_mutex_held). */
  get held(): boolean {
    return Atomics.load(this.#live(), 0) === this.#pid;
  }

  #live(): Int32Array {
    const word = this.#word;
    if (word.length === 0) throw closedError();
    return word;
  }
}
