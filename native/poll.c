/*
 * poll backend. One dense pollfd array (no holes: removal moves the last entry into the
 * hole), with each entry's generation in a parallel array, and an fd -> position map.
 *
 * Invariants: for 0 <= i < nfds, pos[fds[i].fd] == i; for every other fd below npos,
 * pos[fd] == -1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define EVP_POLL_INITIAL 64
/* pos[] starts here (4 KB) and doubles as higher fds are added: maxFd (2**20 by default) is
 * a limit, not a size to allocate for up front. */
#define EVP_POLL_INITIAL_FDS 1024

struct evp_backend {
  struct pollfd *fds;
  uint32_t *gens; /* gens[i] is the generation of fds[i] */
  int nfds, cap;  /* entries in use, entries allocated */
  int *pos;       /* fd -> index into fds, -1 when absent */
  int npos;       /* length of pos */
  int start;      /* where the next scan of revents begins */
};

static int poll_available(void) { return 1; }

static evp_backend *poll_init(int max_fd, int *err) {
  (void)max_fd; /* the JS side refuses fds at or above it */
  evp_backend *b = calloc(1, sizeof *b);
  int npos = EVP_POLL_INITIAL_FDS;
  if (b != NULL) {
    b->cap = EVP_POLL_INITIAL;
    b->npos = npos;
    b->fds = malloc((size_t)b->cap * sizeof *b->fds);
    b->gens = malloc((size_t)b->cap * sizeof *b->gens);
    b->pos = malloc((size_t)npos * sizeof *b->pos);
  }
  if (b == NULL || b->fds == NULL || b->gens == NULL || b->pos == NULL) {
    if (b != NULL) {
      free(b->fds);
      free(b->gens);
      free(b->pos);
      free(b);
    }
    *err = ENOMEM;
    return NULL;
  }
  memset(b->pos, 0xff, (size_t)npos * sizeof *b->pos); /* all -1 */
  return b;
}

static void poll_clean(evp_backend *b) {
  free(b->fds);
  free(b->gens);
  free(b->pos);
  free(b);
}

static short poll_events_of(int interest) {
  short ev = 0;
  if (interest & EVP_READ) ev |= POLLIN;
  if (interest & EVP_WRITE) ev |= POLLOUT;
  if (interest & EVP_PRI) ev |= POLLPRI;
  return ev; /* EDGE and EXCLUSIVE have no poll equivalent */
}

/* Makes pos[] long enough to index `fd`. */
static int poll_reserve_fd(evp_backend *b, int fd) {
  if (fd < b->npos) return 0;
  int npos = b->npos;
  while (npos <= fd) npos = npos > INT32_MAX / 2 ? INT32_MAX : npos * 2;
  int *pos = realloc(b->pos, (size_t)npos * sizeof *pos);
  if (pos == NULL) return -ENOMEM;
  memset(pos + b->npos, 0xff, (size_t)(npos - b->npos) * sizeof *pos);
  b->pos = pos;
  b->npos = npos;
  return 0;
}

/* Makes room for one more entry in fds/gens. */
static int poll_reserve_entry(evp_backend *b) {
  if (b->nfds < b->cap) return 0;
  int cap = b->cap * 2;
  struct pollfd *fds = realloc(b->fds, (size_t)cap * sizeof *fds);
  if (fds == NULL) return -ENOMEM;
  b->fds = fds; /* kept even if gens fails: cap only grows once both have */
  uint32_t *gens = realloc(b->gens, (size_t)cap * sizeof *gens);
  if (gens == NULL) return -ENOMEM;
  b->gens = gens;
  b->cap = cap;
  return 0;
}

static int poll_set(evp_backend *b, int fd, int interest, uint32_t gen) {
  if (fd < 0) return -EBADF;
  /* poll() would take a closed fd silently and answer POLLNVAL later: refuse it now. */
  if (fcntl(fd, F_GETFD) < 0) return -errno;

  int i = fd < b->npos ? b->pos[fd] : -1;
  if (i < 0) {
    int r = poll_reserve_fd(b, fd);
    if (r == 0) r = poll_reserve_entry(b);
    if (r < 0) return r;
    i = b->nfds++;
    b->fds[i].fd = fd;
    b->pos[fd] = i;
  }
  b->fds[i].events = poll_events_of(interest);
  b->fds[i].revents = 0;
  b->gens[i] = gen;
  return 0;
}

static int poll_add(evp_backend *b, int fd, int interest, uint32_t gen) {
  return poll_set(b, fd, interest, gen);
}

static int poll_modify(evp_backend *b, int fd, int interest, uint32_t gen) {
  return poll_set(b, fd, interest, gen);
}

/* Removes entry i in O(1): the last entry moves into the hole. */
static void poll_drop_entry(evp_backend *b, int i) {
  int last = --b->nfds;
  b->pos[b->fds[i].fd] = -1;
  if (i != last) {
    b->fds[i] = b->fds[last];
    b->gens[i] = b->gens[last];
    b->pos[b->fds[i].fd] = i;
  }
}

static int poll_remove(evp_backend *b, int fd) {
  if (fd >= 0 && fd < b->npos && b->pos[fd] >= 0) poll_drop_entry(b, b->pos[fd]);
  return 0;
}

static int poll_revents_of(short ev) {
  int revents = 0;
  if (ev & POLLIN) revents |= EVP_REV_READ;
  if (ev & POLLOUT) revents |= EVP_REV_WRITE;
  if (ev & POLLPRI) revents |= EVP_REV_PRI;
  if (ev & (POLLERR | POLLHUP)) revents |= EVP_REV_HUP;
  if (ev & POLLNVAL) revents |= EVP_REV_INVALID;
  return revents;
}

static int poll_wait(evp_backend *b, int timeout_ms, evp_record *out, int capacity) {
  if (capacity < 1) return -EINVAL;
  int n = poll(b->fds, (nfds_t)b->nfds, timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;

  /*
   * More ready entries than `capacity`: level-triggered ones past the cap would lose to the
   * same first ones on every call, so each scan starts where the last capped one stopped
   * (libevent starts at a random index for the same reason).
   */
  int nfds = b->nfds, start = b->start < nfds ? b->start : 0;
  int count = 0, k;
  for (k = 0; k < nfds && n > 0 && count < capacity; k++) {
    int i = start + k < nfds ? start + k : start + k - nfds;
    short ev = b->fds[i].revents;
    if (ev == 0) continue;
    n--;
    evp_put_record(&out[count++], b->fds[i].fd, b->gens[i], poll_revents_of(ev));
  }
  b->start = n > 0 ? (start + k) % nfds : start;

  /*
   * POLLNVAL: the fd was closed behind our back, and poll() would answer POLLNVAL for it on
   * every call: drop the reported ones (after the scan, which must not see entries move).
   */
  for (int j = 0; j < count; j++) {
    if (!(le32toh((uint32_t)out[j].revents) & EVP_REV_INVALID)) continue;
    int fd = (int)le32toh((uint32_t)out[j].fd);
    if (b->pos[fd] >= 0) poll_drop_entry(b, b->pos[fd]);
  }
  return count;
}

static int poll_pollable_fd(evp_backend *b) {
  (void)b;
  return -1;
}

/* The registered entries, then the wake fd at fds[nfds]. */
struct evp_snapshot {
  struct pollfd *fds;
  uint32_t *gens;
  int nfds, cap; /* registered entries copied; entries allocated (wake fd included) */
};

static void poll_snapshot_free(evp_snapshot *s) {
  if (s == NULL) return;
  free(s->fds);
  free(s->gens);
  free(s);
}

static int poll_snapshot(evp_backend *b, evp_snapshot **sp, int wake_fd) {
  evp_snapshot *s = *sp;
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL) return -ENOMEM;
    *sp = s;
  }
  if (b->nfds + 1 > s->cap) {
    int cap = b->cap + 1; /* the backend's own size: one allocation per doubling of it */
    struct pollfd *fds = realloc(s->fds, (size_t)cap * sizeof *fds);
    if (fds == NULL) return -ENOMEM;
    s->fds = fds; /* as in poll_reserve_entry: cap only grows once both have */
    uint32_t *gens = realloc(s->gens, (size_t)cap * sizeof *gens);
    if (gens == NULL) return -ENOMEM;
    s->gens = gens;
    s->cap = cap;
  }
  memcpy(s->fds, b->fds, (size_t)b->nfds * sizeof *s->fds);
  memcpy(s->gens, b->gens, (size_t)b->nfds * sizeof *s->gens);
  s->nfds = b->nfds;
  s->fds[s->nfds].fd = wake_fd;
  s->fds[s->nfds].events = POLLIN;
  s->fds[s->nfds].revents = 0;
  return s->nfds > 0 ? s->nfds : 1;
}

static int poll_snapshot_wait(evp_snapshot *s, evp_record *out, int capacity, int *woken) {
  *woken = 0;
  int n = poll(s->fds, (nfds_t)s->nfds + 1, -1);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  if (s->fds[s->nfds].revents != 0) {
    *woken = 1;
    n--;
  }
  /* capacity covers every entry, so no rotation is needed: all ready ones fit. */
  int count = 0;
  for (int i = 0; i < s->nfds && n > 0 && count < capacity; i++) {
    short ev = s->fds[i].revents;
    if (ev == 0) continue;
    n--;
    evp_put_record(&out[count++], s->fds[i].fd, s->gens[i], poll_revents_of(ev));
  }
  return count;
}

static void poll_forget(evp_backend *b, int fd, uint32_t gen) {
  if (fd >= 0 && fd < b->npos && b->pos[fd] >= 0 && b->gens[b->pos[fd]] == gen) {
    poll_drop_entry(b, b->pos[fd]);
  }
}

const evp_module evp_poll_module = {
    .name = "poll",
    .support_edge_trigger = 0,
    .support_exclusive = 0,
    .fd_limit = 0,
    .needs_helper_thread = 1,
    .init_syscall = "malloc",
    .add_syscall = "fcntl",
    .wait_syscall = "poll",
    .available = poll_available,
    .init = poll_init,
    .clean = poll_clean,
    .wait = poll_wait,
    .add = poll_add,
    .modify = poll_modify,
    .remove = poll_remove,
    .pollable_fd = poll_pollable_fd,
    .snapshot = poll_snapshot,
    .snapshot_wait = poll_snapshot_wait,
    .snapshot_free = poll_snapshot_free,
    .forget = poll_forget,
};
