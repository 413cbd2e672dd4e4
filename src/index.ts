export { EV } from './flags.js';
export { EventLoop, LoopHook, type EventLoopOptions, type HookCallback, type LoopStats } from './loop.js';
export { Event, type EventCallback } from './event.js';
export { mechanisms, type Mechanism } from './mechanisms.js';
export { EvpollError, type EvpollErrorCode, type SystemError } from './errors.js';
export { SignalEvent, signalNames, type SignalCallback, type SignalName } from './signals.js';
export { ChildEvent, type ChildCallback, type ChildExit } from './child.js';
export { Acceptor, type AcceptorOptions, type AcceptorState } from './acceptor.js';
