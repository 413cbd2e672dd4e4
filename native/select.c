/*
 * select backend. Everything is bounded by FD_SETSIZE: FD_SET/FD_ISSET on a larger fd writes
 * outside the fd_set (glibc's fortify aborts instead), so every entry point checks the range
 * before touching a set or the per-fd arrays.
 *
 * select() cannot tell a hang-up from readiness (a hung-up fd is readable, and writable for a
 * socket), so this backend never reports HUP; and it has no edge-triggered mode. PRI is the
 * except set, which Linux fills from POLLPRI (urgent data).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "backend.h"

struct evp_backend {
  fd_set readfds, writefds, exceptfds; /* interest; copied before each select() */
  int max_fd;                     /* highest registered fd, -1 when none */
  int start;                      /* where the next scan of the result sets begins */
  unsigned char used[FD_SETSIZE]; /* 1 when the fd is registered (interest may be 0) */
  uint32_t gens[FD_SETSIZE];
};

static int select_available(void) { return 1; }

static evp_backend *select_init(int max_fd, int *err) {
  (void)max_fd; /* everything is FD_SETSIZE-sized anyway */
  evp_backend *b = calloc(1, sizeof *b);
  if (b == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  FD_ZERO(&b->readfds);
  FD_ZERO(&b->writefds);
  FD_ZERO(&b->exceptfds);
  b->max_fd = -1;
  return b;
}

static void select_clean(evp_backend *b) { free(b); }

/* Forgets fd (0 <= fd < FD_SETSIZE, registered). */
static void select_drop(evp_backend *b, int fd) {
  FD_CLR(fd, &b->readfds);
  FD_CLR(fd, &b->writefds);
  FD_CLR(fd, &b->exceptfds);
  b->used[fd] = 0;
  while (b->max_fd >= 0 && !b->used[b->max_fd]) b->max_fd--;
}

static int select_set(evp_backend *b, int fd, int interest, uint32_t gen) {
  if (fd < 0) return -EBADF;
  if (fd >= FD_SETSIZE) return -ERANGE;
  /* select() would take a closed fd and fail the whole call with EBADF later: refuse it now. */
  if (fcntl(fd, F_GETFD) < 0) return -errno;

  if (interest & EVP_READ) FD_SET(fd, &b->readfds);
  else FD_CLR(fd, &b->readfds);
  if (interest & EVP_WRITE) FD_SET(fd, &b->writefds);
  else FD_CLR(fd, &b->writefds);
  if (interest & EVP_PRI) FD_SET(fd, &b->exceptfds);
  else FD_CLR(fd, &b->exceptfds);
  b->used[fd] = 1;
  b->gens[fd] = gen;
  if (fd > b->max_fd) b->max_fd = fd;
  return 0;
}

static int select_add(evp_backend *b, int fd, int interest, uint32_t gen) {
  return select_set(b, fd, interest, gen);
}

static int select_modify(evp_backend *b, int fd, int interest, uint32_t gen) {
  return select_set(b, fd, interest, gen);
}

static int select_remove(evp_backend *b, int fd) {
  if (fd >= 0 && fd < FD_SETSIZE && b->used[fd]) select_drop(b, fd);
  return 0;
}

/* The fds of `used` that are closed (fcntl says EBADF), each as an INVALID record. */
static int select_find_invalid(const unsigned char *used, const uint32_t *gens, int max_fd,
                               evp_record *out, int capacity) {
  int count = 0;
  for (int fd = 0; fd <= max_fd && count < capacity; fd++) {
    if (!used[fd] || fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    evp_put_record(&out[count++], fd, gens[fd], EVP_REV_INVALID);
  }
  return count;
}

/*
 * select() failed with EBADF: one or more registered fds were closed behind our back, and
 * select() does not say which. Find them, report each INVALID and drop it. Those beyond
 * `capacity` stay registered: the next select() fails again and reports them then.
 */
static int select_report_invalid(evp_backend *b, evp_record *out, int capacity) {
  int count = select_find_invalid(b->used, b->gens, b->max_fd, out, capacity);
  for (int i = 0; i < count; i++) select_drop(b, (int)le32toh((uint32_t)out[i].fd));
  return count;
}

/* The three result sets. */
typedef struct select_sets {
  fd_set readfds, writefds, exceptfds;
} select_sets;

static int select_revents_of(int fd, const select_sets *ready) {
  int revents = 0;
  if (FD_ISSET(fd, &ready->readfds)) revents |= EVP_REV_READ;
  if (FD_ISSET(fd, &ready->writefds)) revents |= EVP_REV_WRITE;
  if (FD_ISSET(fd, &ready->exceptfds)) revents |= EVP_REV_PRI;
  return revents;
}

/* How many of select()'s count one record stands for: a bit in each set it is in. */
static int select_bits_of(int revents) {
  return (revents & EVP_REV_READ ? 1 : 0) + (revents & EVP_REV_WRITE ? 1 : 0) + (revents & EVP_REV_PRI ? 1 : 0);
}

static int select_wait(evp_backend *b, int timeout_ms, evp_record *out, int capacity) {
  if (capacity < 1) return -EINVAL;
  select_sets ready = {b->readfds, b->writefds, b->exceptfds}; /* select() overwrites its sets */
  struct timeval tv, *tvp = NULL;
  if (timeout_ms >= 0) {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    tvp = &tv;
  }
  int n = select(b->max_fd + 1, &ready.readfds, &ready.writefds, &ready.exceptfds, tvp);
  if (n < 0) {
    if (errno == EINTR) return 0;
    if (errno == EBADF) return select_report_invalid(b, out, capacity);
    return -errno;
  }

  /*
   * n counts set bits over the three sets; stop once all are found. As in poll.c, a scan capped by
   * `capacity` makes the next one start where it stopped, so that level-triggered fds past
   * the cap are not starved by the same low ones on every call.
   */
  int span = b->max_fd + 1, start = b->start < span ? b->start : 0;
  int count = 0, k;
  for (k = 0; k < span && n > 0 && count < capacity; k++) {
    int fd = start + k < span ? start + k : start + k - span;
    int revents = select_revents_of(fd, &ready);
    if (revents == 0) continue;
    n -= select_bits_of(revents);
    evp_put_record(&out[count++], fd, b->gens[fd], revents);
  }
  b->start = n > 0 ? (start + k) % span : start;
  return count;
}

static int select_pollable_fd(evp_backend *b) {
  (void)b;
  return -1;
}

/* The sets and per-fd arrays, of which only [0, max_fd] is copied. */
struct evp_snapshot {
  fd_set readfds, writefds, exceptfds;
  int max_fd, wake_fd;
  unsigned char used[FD_SETSIZE];
  uint32_t gens[FD_SETSIZE];
};

static void select_snapshot_free(evp_snapshot *s) { free(s); }

static int select_snapshot(evp_backend *b, evp_snapshot **sp, int wake_fd) {
  /* FD_SET on it below would write outside the fd_set. */
  if (wake_fd < 0 || wake_fd >= FD_SETSIZE) return -ERANGE;
  evp_snapshot *s = *sp;
  if (s == NULL) {
    s = malloc(sizeof *s);
    if (s == NULL) return -ENOMEM;
    *sp = s;
  }
  s->readfds = b->readfds;
  s->writefds = b->writefds;
  s->exceptfds = b->exceptfds;
  s->max_fd = b->max_fd;
  s->wake_fd = wake_fd;
  memcpy(s->used, b->used, (size_t)(b->max_fd + 1) * sizeof *s->used);
  memcpy(s->gens, b->gens, (size_t)(b->max_fd + 1) * sizeof *s->gens);
  return b->max_fd + 1 > 0 ? b->max_fd + 1 : 1;
}

static int select_snapshot_wait(evp_snapshot *s, evp_record *out, int capacity, int *woken) {
  *woken = 0;
  select_sets ready = {s->readfds, s->writefds, s->exceptfds};
  FD_SET(s->wake_fd, &ready.readfds);
  int nfds = (s->max_fd > s->wake_fd ? s->max_fd : s->wake_fd) + 1;
  int n = select(nfds, &ready.readfds, &ready.writefds, &ready.exceptfds, NULL);
  if (n < 0) {
    if (errno == EINTR) return 0;
    /* The live set is the caller's: report only, forget() drops them there. */
    if (errno == EBADF) return select_find_invalid(s->used, s->gens, s->max_fd, out, capacity);
    return -errno;
  }
  if (FD_ISSET(s->wake_fd, &ready.readfds)) {
    *woken = 1;
    n--;
    /* Watched for reading only, so it counted once. */
    FD_CLR(s->wake_fd, &ready.readfds);
  }
  /* capacity covers every fd up to max_fd, so no rotation is needed: all ready ones fit. */
  int count = 0;
  for (int fd = 0; fd <= s->max_fd && n > 0 && count < capacity; fd++) {
    int revents = select_revents_of(fd, &ready);
    if (revents == 0) continue;
    n -= select_bits_of(revents);
    evp_put_record(&out[count++], fd, s->gens[fd], revents);
  }
  return count;
}

static void select_forget(evp_backend *b, int fd, uint32_t gen) {
  if (fd >= 0 && fd < FD_SETSIZE && b->used[fd] && b->gens[fd] == gen) select_drop(b, fd);
}

const evp_module evp_select_module = {
    .name = "select",
    .support_edge_trigger = 0,
    .support_exclusive = 0,
    .fd_limit = FD_SETSIZE,
    .needs_helper_thread = 1,
    .init_syscall = "malloc",
    .add_syscall = "fcntl",
    .wait_syscall = "select",
    .available = select_available,
    .init = select_init,
    .clean = select_clean,
    .wait = select_wait,
    .add = select_add,
    .modify = select_modify,
    .remove = select_remove,
    .pollable_fd = select_pollable_fd,
    .snapshot = select_snapshot,
    .snapshot_wait = select_snapshot_wait,
    .snapshot_free = select_snapshot_free,
    .forget = select_forget,
};
