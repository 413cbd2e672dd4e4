/**
 * Event flags. The first four are PHP-FPM's values (fpm_events.h: FPM_EV_TIMEOUT, FPM_EV_READ,
 * FPM_EV_PERSIST, FPM_EV_EDGE); WRITE and ERROR are evpoll's extensions. ERROR is only ever
 * delivered (the fd became invalid and its event was removed), never asked for.
 */
export const EV = Object.freeze({
  TIMEOUT: 1,
  READ: 2,
  PERSIST: 4,
  EDGE: 8,
  WRITE: 16,
  ERROR: 32,
  /**
   * Asked only: several processes watching one listening fd are not all woken per connection
   * (epoll's EPOLLEXCLUSIVE). Honoured where loop.supportExclusive; ignored elsewhere.
   */
  EXCLUSIVE: 128,
} as const);

/** Flags an fd event may be created with. */
export const FD_EVENT_FLAGS = EV.READ | EV.WRITE | EV.PERSIST | EV.EDGE | EV.EXCLUSIVE;
/** Flags a timer may be created with (fd events always persist until del(); timers only with PERSIST). */
export const TIMER_FLAGS = EV.PERSIST | EV.TIMEOUT;

/** Registration changes the core asks of the backend (assembly/constants.ts). */
export const OP_NONE = 0;
export const OP_ADD = 1;
export const OP_MODIFY = 2;
export const OP_REMOVE = 3;
