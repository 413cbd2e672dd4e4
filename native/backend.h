/*
 * The backend contract: one module struct per OS mechanism, in the shape of PHP-FPM's
 * fpm_event_module_s. A backend only translates: it applies registrations, waits, and writes
 * (fd, generation, revents) records. It never calls JavaScript and never decides policy; the
 * WebAssembly core drops stale records and fans readiness out to Events.
 *
 * Rules every backend keeps:
 * - All state lives in its evp_backend (worker_threads load the addon several times in one
 *   process, so no module-static mutable data).
 * - No N-API: `wait` may run on a helper thread. A backend is not itself thread-safe; the
 *   caller serialises calls on one evp_backend. The one exception is `snapshot_wait`, which
 *   touches only its snapshot and so may run while the backend is being changed.
 * - Errors are returned as -errno, never thrown or printed.
 */
#ifndef EVPOLL_BACKEND_H
#define EVPOLL_BACKEND_H

#include <endian.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Interest bits (the JS API's EV values). EDGE and EXCLUSIVE are honoured by epoll only. */
#define EVP_READ 2
#define EVP_WRITE 16
#define EVP_EDGE 8
#define EVP_EXCLUSIVE 128
#define EVP_PRI 256 /* urgent data, exceptional conditions: EPOLLPRI, POLLPRI, select's except set */

/* revents bits written into records. READ/WRITE/PRI only as the OS reported them. */
#define EVP_REV_READ 2
#define EVP_REV_WRITE 16
#define EVP_REV_INVALID 32 /* the fd itself is invalid; the backend has dropped it already */
#define EVP_REV_HUP 64     /* error or hang-up; the core maps it to the watched interest */
#define EVP_REV_PRI 256

/*
 * One ready record: three little-endian 32-bit words (fd, gen, revents), 12 bytes, written
 * into WebAssembly memory, which is little-endian whatever the host is. `out` must be
 * 4-byte aligned.
 */
typedef struct evp_record {
  int32_t fd;
  uint32_t gen;
  int32_t revents;
} evp_record;

#ifdef __cplusplus
static_assert(sizeof(evp_record) == 12, "evp_record is the 12-byte wire format");
#else
_Static_assert(sizeof(evp_record) == 12, "evp_record is the 12-byte wire format");
#endif

static inline void evp_put_record(evp_record *r, int fd, uint32_t gen, int revents) {
  r->fd = (int32_t)htole32((uint32_t)fd);
  r->gen = htole32(gen);
  r->revents = (int32_t)htole32((uint32_t)revents);
}

typedef struct evp_backend evp_backend;   /* opaque, one per backend kind */
typedef struct evp_snapshot evp_snapshot; /* opaque: a copy of a backend's registered set */

/*
 * The capability fields say what a backend can and cannot do, so that the layers above ask the
 * struct rather than the name: addon.cc reports them in mechanisms(), and nothing outside
 * native/ decides by mechanism name.
 */
typedef struct evp_module {
  const char *name;
  int support_edge_trigger;
  /*
   * Nonzero when EVP_EXCLUSIVE is honoured: of the waiters sharing a listening socket, one is
   * woken per event rather than all (epoll's EPOLLEXCLUSIVE). Elsewhere the bit is ignored, and
   * callers that rely on it (the acceptor) must know to expect a thundering herd.
   */
  int support_exclusive;
  /*
   * The first fd number `add` refuses whatever the process's own limit (select: FD_SETSIZE,
   * since FD_SET beyond it writes past the fd_set), or 0 for none. Reported so that the loop
   * can refuse such an fd with a clear error before the backend answers -ERANGE.
   */
  int fd_limit;
  /*
   * Nonzero when integrated mode needs a helper thread: the backend has no fd that libuv could
   * poll for it (poll, select), so a thread waits on a snapshot instead and posts each batch
   * back. Exactly then the snapshot functions below are set, and a wake fd is made with the
   * backend; zero means `pollable_fd` returns an fd libuv polls (epoll).
   */
  int needs_helper_thread;
  /* The syscall `init` can fail in, for the SystemError it becomes. */
  const char *init_syscall;
  /*
   * The syscalls named in the SystemErrors of `add` and `wait` (their `syscall` field and the
   * message's tail): what the call really fails in, so that errors read as the OS's. poll and
   * select check an fd with fcntl(F_GETFD) when it is added, hence 'fcntl' for their add.
   */
  const char *add_syscall;
  const char *wait_syscall;

  /* Nonzero when the mechanism works on this system. */
  int (*available)(void);
  /* max_fd is a sizing hint only. NULL with *err = errno on failure. */
  evp_backend *(*init)(int max_fd, int *err);
  /* Releases everything, its own fds included. */
  void (*clean)(evp_backend *b);
  /*
   * Waits up to timeout_ms (< 0: forever) and writes at most `capacity` (>= 1) records to
   * `out`. Returns the count, 0 on timeout or EINTR, or -errno.
   */
  int (*wait)(evp_backend *b, int timeout_ms, evp_record *out, int capacity);
  /* add of a registered fd behaves as modify, and modify of an unknown fd as add. 0 or -errno. */
  int (*add)(evp_backend *b, int fd, int interest, uint32_t gen);
  int (*modify)(evp_backend *b, int fd, int interest, uint32_t gen);
  /* 0 for unknown or already-closed fds too. */
  int (*remove)(evp_backend *b, int fd);
  /* An fd that becomes readable when `wait` would return events (epoll's), or -1. */
  int (*pollable_fd)(evp_backend *b);

  /*
   * Integrated mode for backends that need a helper thread (needs_helper_thread; poll,
   * select; NULL for epoll): a helper thread waits on a copy of the registered set while the live set goes on changing on
   * the JS thread, which applies the results afterwards.
   *
   * snapshot: copies the registered set plus `wake_fd` (watched for reading; below FD_SETSIZE
   * for select) into *s, allocating it when *s is NULL and reusing it otherwise. Returns the
   * most records a snapshot_wait on it can write (>= 1), or -errno.
   */
  int (*snapshot)(evp_backend *b, evp_snapshot **s, int wake_fd);
  /*
   * Waits forever on the copy and writes one record per ready fd, as `wait` does (capacity is
   * what `snapshot` returned), except for wake_fd, which only sets *woken. Returns the count,
   * 0 on EINTR, or -errno. An INVALID fd is still registered afterwards: the caller passes the
   * record to `forget`.
   */
  int (*snapshot_wait)(evp_snapshot *s, evp_record *out, int capacity, int *woken);
  void (*snapshot_free)(evp_snapshot *s);
  /*
   * Drops fd if it is still registered with generation gen: what `wait` does itself for an
   * INVALID fd. A different generation means it was registered again meanwhile: kept.
   */
  void (*forget)(evp_backend *b, int fd, uint32_t gen);
} evp_module;

extern const evp_module evp_epoll_module;
extern const evp_module evp_poll_module;
extern const evp_module evp_select_module;

#ifdef __cplusplus
}
#endif

#endif /* EVPOLL_BACKEND_H */
