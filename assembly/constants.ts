// The bit values shared by the JS API (EV), the core and the native backends.

/** Interest and dispatch bits, FPM's values first (fpm_events.h), then evpoll's extensions. */
export const EV_TIMEOUT: i32 = 1;
export const EV_READ: i32 = 2;
export const EV_PERSIST: i32 = 4;
export const EV_EDGE: i32 = 8;
export const EV_WRITE: i32 = 16;
export const EV_ERROR: i32 = 32;
/** Interest only: ask epoll for EPOLLEXCLUSIVE (a listening fd shared by worker processes). */
export const EV_EXCLUSIVE: i32 = 128;
/** Urgent data or an exceptional condition (EPOLLPRI, POLLPRI, select's except set). */
export const EV_PRI: i32 = 256;

/** Bits a backend writes into a ready record's revents. */
export const REV_READ: i32 = 2;
export const REV_WRITE: i32 = 16;
/** The fd itself is invalid (POLLNVAL, select's EBADF); the backend has dropped it already. */
export const REV_INVALID: i32 = 32;
/** Error or hang-up (EPOLLERR/EPOLLHUP, POLLERR/POLLHUP): readiness for whatever is watched. */
export const REV_HUP: i32 = 64;
/** The kernel reported urgent data or an exceptional condition (EPOLLPRI, POLLPRI, except set). */
export const REV_PRI: i32 = 256;

// A REV bit of the same name as an EV bit has its value, so that revents & RWP is already `which`.
export const RW: i32 = EV_READ | EV_WRITE;
export const RWP: i32 = EV_READ | EV_WRITE | EV_PRI;

/** Registration changes the JS side must make in the backend after watch()/release(). */
export const OP_NONE: i32 = 0;
export const OP_ADD: i32 = 1;
export const OP_MODIFY: i32 = 2;
export const OP_REMOVE: i32 = 3;
