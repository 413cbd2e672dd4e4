// The seam between the library and evpoll/sim (src/sim.ts): while a Simulation is installed,
// evpoll/net's calls on virtual fds and the 'sim' mechanism's backend and clock come from it.
// Nothing here imports the simulation, so a program that never installs one never loads it.
import type { NativeBackend } from './native.js';

/**
 * Virtual fds are numbers from 2**30 up. Linux gives a process fds below its RLIMIT_NOFILE, which
 * is at most fs.nr_open (2**20 by default); Simulation.install() refuses to run where nr_open
 * has been raised past 2**30, so a virtual fd is never a number a real fd could have.
 */
export const VIRTUAL_FD_BASE = 2 ** 30;

/** evpoll/net's operations on virtual fds: the same numbers (bytes, or a negative errno) the native ones return. */
export interface VirtualNet {
  pipe(): [number, number] | number;
  socketpair(): [number, number] | number;
  read(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  write(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  close(fd: number): number;
  listen(host: string, port: number, backlog: number): number;
  accept(fd: number, out: Int32Array, max: number): number;
  connect(host: string, port: number): number;
  connectResult(fd: number): number;
  shutdown(fd: number): number;
  localPort(fd: number): number;
  listenQueue(fd: number, out: Int32Array): number;
  setNoDelay(fd: number): number;
  sendUrgent(fd: number): number;
  readUrgent(fd: number): number;
}

/** What an installed Simulation lends the library. */
export interface Simulated {
  readonly net: VirtualNet;
  /** A backend for a loop on mechanism 'sim' (records carry fd - VIRTUAL_FD_BASE). */
  backend(): NativeBackend;
  /** Virtual time, in ms: the clock of loops on 'sim'. */
  now(): number;
  /** Whether virtual fd `fd` is open (a loop checks a number far above its others before growing its table to it). */
  isOpen(fd: number): boolean;
  /** `seed N, faults {...}`, for messages that must let a failure be replayed. */
  describe(): string;
}

/** The installed Simulation, if any. */
export let simulated: Simulated | undefined;

export function setSimulated(s: Simulated | undefined): void {
  simulated = s;
}

/** Whether `fd` is a virtual fd number (whether or not it is open). */
export function isVirtualFd(fd: number): boolean {
  return fd >= VIRTUAL_FD_BASE;
}
