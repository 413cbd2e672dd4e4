import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { debugging, debugThrow } from './debug.js';

export type EvpollErrorCode =
  | 'ERR_EVPOLL_INVALID_ARG'
  | 'ERR_EVPOLL_UNKNOWN_MECHANISM'
  | 'ERR_EVPOLL_MECHANISM_UNAVAILABLE'
  | 'ERR_EVPOLL_FD_LIMIT'
  | 'ERR_EVPOLL_CLOSED'
  | 'ERR_EVPOLL_REENTRANT'
  | 'ERR_EVPOLL_BUSY'
  | 'ERR_EVPOLL_SIGNAL_LIMIT'
  | 'ERR_EVPOLL_SIM_INSTALLED'
  | 'ERR_EVPOLL_SIM_UNSUPPORTED'
  | 'ERR_EVPOLL_SIM_DEADLOCK';

/** Every refusal of evpoll's own; OS refusals are SystemError-shaped instead (see systemError). */
export class EvpollError extends Error {
  readonly code: EvpollErrorCode;
  constructor(code: EvpollErrorCode, message: string) {
    super(message);
    this.name = 'EvpollError';
    this.code = code;
    if (debugging) debugThrow(this);
  }
}

/** The shape of Node's own SystemError (fs, net): code 'EBADF', errno -9, syscall. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

let systemErrors: Map<number, [string, string]> | undefined;

function describeErrno(negErrno: number): [string, string] {
  systemErrors ??= getSystemErrorMap();
  return systemErrors.get(negErrno) ?? unmappedError(negErrno);
}

/** `negErrno`'s name: 'EBADF' for -9. */
export function errnoName(negErrno: number): string {
  return describeErrno(negErrno)[0];
}

/** An OS refusal, `negErrno` as the native layer returns it (-9 for EBADF). */
export function systemError(negErrno: number, syscall: string): SystemError {
  const [code, description] = describeErrno(negErrno);
  const err = new Error(`${code}: ${description}, ${syscall}`) as SystemError;
  err.code = code;
  err.errno = negErrno;
  err.syscall = syscall;
  Error.captureStackTrace(err, systemError);
  if (debugging) debugThrow(err);
  return err;
}

/** An errno libuv has no name for (ECHILD, from waitid): os.constants.errno knows it. */
function unmappedError(negErrno: number): [string, string] {
  const name = Object.entries(constants.errno).find(([, n]) => n === -negErrno)?.[0];
  return name ? [name, `errno ${-negErrno}`] : [`Unknown system error ${negErrno}`, 'unknown error'];
}

export function invalidArg(message: string): EvpollError {
  return new EvpollError('ERR_EVPOLL_INVALID_ARG', message);
}
