/**
 * Event flags. The first four are PHP-FPM's values (fpm_events.h: FPM_EV_TIMEOUT, FPM_EV_READ,
 * FPM_EV_PERSIST, FPM_EV_EDGE); WRITE, ERROR, EXCLUSIVE and PRI are evpoll's extensions. ERROR
 * is only ever delivered (the fd became invalid and its event was removed), never asked for.
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
  /**
   * Urgent data or an exceptional condition: epoll's EPOLLPRI, poll's POLLPRI, select's except
   * set — TCP urgent (out-of-band) data, a sysfs GPIO value that changed, a cgroup or PSI
   * notification. Asked and delivered. The condition stays until it is cleared (for TCP, by
   * reading the urgent byte: net.readUrgent). An error or hang-up is delivered as the watched
   * READ/WRITE, and as PRI only to an event watching PRI alone. On epoll, an fd watched with
   * PRI is not registered EXCLUSIVE (the kernel refuses the two together).
   */
  PRI: 256,
} as const);

/** Flags an fd event may be created with. */
export const FD_EVENT_FLAGS = EV.READ | EV.WRITE | EV.PRI | EV.PERSIST | EV.EDGE | EV.EXCLUSIVE;
/** The readiness an fd event watches: it needs at least one of them. */
export const FD_READINESS = EV.READ | EV.WRITE | EV.PRI;
/** Flags a timer may be created with (fd events always persist until del(); timers only with PERSIST). */
export const TIMER_FLAGS = EV.PERSIST | EV.TIMEOUT;

/** Registration changes the core asks of the backend (assembly/constants.ts). */
export const OP_NONE = 0;
export const OP_ADD = 1;
export const OP_MODIFY = 2;
export const OP_REMOVE = 3;
