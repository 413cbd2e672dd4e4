import { addon } from './native.js';
import { EvpollError } from './errors.js';

export interface Mechanism {
  /** The name to pass as `mechanism` (FPM's events.mechanism). */
  name: string;
  /** Whether EV.EDGE is honoured (FPM's fpm_event_support_edge_trigger). */
  supportEdgeTrigger: boolean;
  /** Whether this machine offers it. */
  available: boolean;
}

/** FPM's mechanisms for which evpoll has no backend on this platform: known, never available. */
const ELSEWHERE: Mechanism[] = [
  { name: 'kqueue', supportEdgeTrigger: true, available: false },
  { name: '/dev/poll', supportEdgeTrigger: false, available: false },
  { name: 'port', supportEdgeTrigger: false, available: false },
];

/** The backends evpoll knows, in order of preference: the native ones first. */
export function mechanisms(): Mechanism[] {
  const native = addon.mechanisms().map(({ name, supportEdgeTrigger, available }) => ({ name, supportEdgeTrigger, available }));
  return [...native, ...ELSEWHERE.filter((m) => !native.some((n) => n.name === m.name)).map((m) => ({ ...m }))];
}

/**
 * The mechanism a loop uses: `requested` (case-insensitive, as FPM's strcasecmp), else
 * EVPOLL_MECHANISM, else the first available one.
 */
export function resolveMechanism(requested: string | undefined): Mechanism {
  const all = mechanisms();
  const available = all.filter((m) => m.available);
  const name = requested ?? (process.env.EVPOLL_MECHANISM || undefined);
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
    throw new EvpollError('ERR_EVPOLL_MECHANISM_UNAVAILABLE', `event mechanism '${found.name}' is not available on this system; available: ${available.map((m) => m.name).join(', ')}`);
  }
  return found;
}
