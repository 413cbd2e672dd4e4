import { addon } from './native.js';
import { EvpollError } from './errors.js';
import { simulated } from './virtual.js';

export interface Mechanism {
  /** The name to pass as `mechanism` (FPM's events.mechanism). */
  name: string;
  /** Whether EV.EDGE is honoured (FPM's fpm_event_support_edge_trigger). */
  supportEdgeTrigger: boolean;
  /** Whether this machine offers it. */
  available: boolean;
  /**
   * Whether EV.EXCLUSIVE is honoured: of several processes watching one listening socket, only
   * one is woken per connection (epoll's EPOLLEXCLUSIVE). Where false the flag is ignored and
   * every watcher wakes.
   */
  supportExclusive: boolean;
  /**
   * The first fd number the mechanism cannot watch whatever the process's own limit (select:
   * FD_SETSIZE, 1024 on Linux), or null when it has no limit of its own.
   */
  fdLimit: number | null;
  /**
   * Whether integrated mode (`loop.start()`) waits on a helper thread (poll, select), because
   * the mechanism has no fd of its own that Node's loop could poll; false when libuv polls the
   * mechanism's fd directly (epoll).
   */
  helperThread: boolean;
  /**
   * The syscalls named by the errors the mechanism's registration (`add`) and wait (`wait`)
   * raise: their `syscall` field and the end of their message, as in Node's SystemError.
   */
  syscalls: { add: string; wait: string };
}

/** FPM's mechanisms for which evpoll has no backend on this platform: known, never available. */
const ELSEWHERE: Mechanism[] = [
  { name: 'kqueue', supportEdgeTrigger: true, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'kevent', wait: 'kevent' } },
  { name: '/dev/poll', supportEdgeTrigger: false, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'write', wait: 'ioctl' } },
  { name: 'port', supportEdgeTrigger: false, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'port_associate', wait: 'port_getn' } },
];

/**
 * evpoll/sim's mechanism: available while a Simulation is installed. Edge-triggered as epoll is;
 * one process, so EXCLUSIVE has nobody to exclude; run()/runOnce() only (no integrated mode).
 */
const SIM: Mechanism = { name: 'sim', supportEdgeTrigger: true, available: false, supportExclusive: false, fdLimit: null, helperThread: false, syscalls: { add: 'sim_ctl', wait: 'sim_wait' } };

/** A copy that shares nothing with `m`, so that a caller may change what it was given. */
function copy(m: Mechanism): Mechanism {
  const { name, supportEdgeTrigger, available, supportExclusive, fdLimit, helperThread, syscalls } = m;
  return { name, supportEdgeTrigger, available, supportExclusive, fdLimit, helperThread, syscalls: { add: syscalls.add, wait: syscalls.wait } };
}

/**
 * The backends evpoll knows, in order of preference: the native ones first, then those of other
 * systems (never available), then 'sim' (available while a Simulation is installed).
 */
export function mechanisms(): Mechanism[] {
  const native = addon.mechanisms().map(copy);
  const sim = { ...copy(SIM), available: simulated !== undefined };
  return [...native, ...ELSEWHERE.filter((m) => !native.some((n) => n.name === m.name)).map(copy), sim];
}

/**
 * The mechanism a loop uses: `requested` (case-insensitive, as FPM's strcasecmp), else 'sim'
 * while a Simulation is installed, else EVPOLL_MECHANISM, else the first available one.
 */
export function resolveMechanism(requested: string | undefined): Mechanism {
  const all = mechanisms();
  const available = all.filter((m) => m.available);
  const name = requested ?? (simulated !== undefined ? 'sim' : process.env.EVPOLL_MECHANISM || undefined);
  if (name === undefined) {
    if (available.length === 0) throw new EvpollError('ERR_EVPOLL_MECHANISM_UNAVAILABLE', 'no event mechanism is available on this system');
    return available[0];
  }
  if (typeof name !== 'string') {
    throw new EvpollError('ERR_EVPOLL_UNKNOWN_MECHANISM', `mechanism must be a string; available: ${available.map((m) => m.name).join(', ')}`);
  }
  const found = all.find((m) => m.name.toLowerCase() === name.toLowerCase());
  if (!found) {
    throw new EvpollError('ERR_EVPOLL_UNKNOWN_MECHANISM', `unknown event mechanism '${name}'; available: ${available.map((m) => m.name).join(', ')}`);
  }
  if (!found.available) {
    if (found.name === SIM.name) {
      throw new EvpollError('ERR_EVPOLL_MECHANISM_UNAVAILABLE', "event mechanism 'sim' needs a Simulation installed first (Simulation.install() from evpoll/sim)");
    }
    throw new EvpollError('ERR_EVPOLL_MECHANISM_UNAVAILABLE', `event mechanism '${found.name}' is not available on this system; available: ${available.map((m) => m.name).join(', ')}`);
  }
  return found;
}
