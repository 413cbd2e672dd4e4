// NODE_DEBUG=evpoll (util.debuglog): what a user cannot see from outside — which artefacts were
// loaded, what the backend was asked and answered, waits that ended early, integrated mode's
// hand-offs, and every error thrown at a caller. The lines are listed in the README.
import { debuglog } from 'node:util';
import { sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EV } from './flags.js';
import { packageRoot } from './paths.js';

export const debug = debuglog('evpoll');

/**
 * Whether the section is on. Node reads NODE_DEBUG once, at start-up, so this cannot change:
 * hot paths test this constant and build no message, array or closure when it is false.
 */
export const debugging: boolean = debug.enabled;

const INTEREST_NAMES: [number, string][] = [
  [EV.READ, 'READ'],
  [EV.WRITE, 'WRITE'],
  [EV.PRI, 'PRI'],
  [EV.EDGE, 'EDGE'],
  [EV.EXCLUSIVE, 'EXCLUSIVE'],
];

/** An interest as flag names: READ|EDGE. */
export function interestNames(interest: number): string {
  const names = INTEREST_NAMES.filter(([bit]) => interest & bit).map(([, name]) => name);
  return names.length > 0 ? names.join('|') : `none (${interest})`;
}

/** Where evpoll's own code runs from, as a stack frame names it (a path, or an ESM file URL). */
const OWN_CODE = ['dist', 'src'].flatMap((dir) => [packageRoot + sep + dir + sep, pathToFileURL(packageRoot).href + '/' + dir + '/']);

/**
 * The API call a caller made, from an error's stack: the frame of evpoll's own code nearest to
 * the caller's (`Event.add` above `EventLoop._add`), or 'evpoll' when the stack holds none
 * outside evpoll (a callback of integrated mode, Error.stackTraceLimit too low).
 */
function apiCall(stack: string): string {
  let call: string | undefined;
  for (const line of stack.split('\n')) {
    const frame = /^\s+at (.*?) \(/.exec(line) ?? /^\s+at ()/.exec(line);
    if (!frame) continue; // the message
    if (OWN_CODE.some((dir) => line.includes(dir))) call = frame[1] || call;
    else if (call !== undefined) return call;
  }
  return call ?? 'evpoll';
}

/** The one line for an error thrown at a caller (EvpollError's constructor and systemError() call it). */
export function debugThrow(err: Error & { code: string }): void {
  debug('throws %s from %s(): %s', err.code, apiCall(err.stack ?? ''), err.message);
}
