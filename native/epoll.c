/*
 * epoll backend. The (fd, generation) token rides in epoll_event.data.u64 (libev's trick),
 * so a record needs no lookup table: wait copies the token back out.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

#define EVP_EPOLL_INITIAL_EVENTS 64

struct evp_backend {
  int epfd;
  int nevents; /* size of `events`; doubles when a wait fills it */
  struct epoll_event *events;
};

static int epoll_available(void) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  /*
   * Only a kernel without epoll says ENOSYS. EMFILE/ENFILE/ENOMEM mean this process is out of
   * fds or memory right now: epoll is there, and init will report the real refusal.
   */
  if (fd < 0) return errno != ENOSYS;
  close(fd);
  return 1;
}

static evp_backend *epoll_init(int max_fd, int *err) {
  (void)max_fd; /* the kernel sizes its own tables */
  evp_backend *b = malloc(sizeof *b);
  struct epoll_event *events = malloc(EVP_EPOLL_INITIAL_EVENTS * sizeof *events);
  if (b == NULL || events == NULL) {
    free(b);
    free(events);
    *err = ENOMEM;
    return NULL;
  }
  b->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (b->epfd < 0) {
    *err = errno;
    free(b);
    free(events);
    return NULL;
  }
  b->nevents = EVP_EPOLL_INITIAL_EVENTS;
  b->events = events;
  return b;
}

static void epoll_clean(evp_backend *b) {
  close(b->epfd);
  free(b->events);
  free(b);
}

static uint32_t epoll_events_of(int interest) {
  uint32_t ev = 0;
  if (interest & EVP_READ) ev |= EPOLLIN;
  if (interest & EVP_WRITE) ev |= EPOLLOUT;
  if (interest & EVP_PRI) ev |= EPOLLPRI;
  if (interest & EVP_EDGE) ev |= EPOLLET;
  /*
   * EPOLL_CTL_ADD refuses EPOLLEXCLUSIVE with any event bit but IN, OUT, ERR, HUP, WAKEUP and ET
   * (EINVAL): with PRI the hint is dropped, as on backends without it.
   */
  if ((interest & EVP_EXCLUSIVE) && !(interest & EVP_PRI)) ev |= EPOLLEXCLUSIVE;
  return ev;
}

static int epoll_ctl_token(evp_backend *b, int op, int fd, int interest, uint32_t gen) {
  struct epoll_event ev;
  ev.events = epoll_events_of(interest);
  ev.data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)gen << 32;
  return epoll_ctl(b->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int epoll_modify(evp_backend *b, int fd, int interest, uint32_t gen);

static int epoll_add(evp_backend *b, int fd, int interest, uint32_t gen) {
  int r = epoll_ctl_token(b, EPOLL_CTL_ADD, fd, interest, gen);
  if (r == -EEXIST) return epoll_modify(b, fd, interest, gen);
  /* EPERM (regular files, directories: not pollable) and EBADF go back as they are. */
  return r;
}

static int epoll_readd(evp_backend *b, int fd, int interest, uint32_t gen) {
  struct epoll_event unused = {0};
  epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &unused);
  return epoll_ctl_token(b, EPOLL_CTL_ADD, fd, interest, gen);
}

static int epoll_modify(evp_backend *b, int fd, int interest, uint32_t gen) {
  /*
   * EPOLLEXCLUSIVE is refused by EPOLL_CTL_MOD (EINVAL), both when asked for and when the fd
   * was added with it. Either way, DEL + ADD; a level-triggered fd that is still ready is
   * reported again after the ADD, so nothing is lost.
   */
  if (interest & EVP_EXCLUSIVE) return epoll_readd(b, fd, interest, gen);
  int r = epoll_ctl_token(b, EPOLL_CTL_MOD, fd, interest, gen);
  if (r == -ENOENT) return epoll_ctl_token(b, EPOLL_CTL_ADD, fd, interest, gen);
  if (r == -EINVAL) return epoll_readd(b, fd, interest, gen);
  return r;
}

static int epoll_remove(evp_backend *b, int fd) {
  /* Kernels before 2.6.9 want a non-NULL event even for DEL. */
  struct epoll_event unused = {0};
  if (epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &unused) == 0) return 0;
  /*
   * ENOENT: never added. EPERM: not pollable, so never added either. EBADF: the fd was closed
   * behind our back; the kernel dropped the registration with the last reference to the file
   * (if a dup keeps the file open, events may still arrive under the old token: the
   * generation makes the core drop them).
   */
  if (errno == ENOENT || errno == EPERM || errno == EBADF) return 0;
  return -errno;
}

static int epoll_wait_records(evp_backend *b, int timeout_ms, evp_record *out, int capacity) {
  if (capacity < 1) return -EINVAL;
  int max = b->nevents < capacity ? b->nevents : capacity;
  int n = epoll_wait(b->epfd, b->events, max, timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;

  for (int i = 0; i < n; i++) {
    uint32_t ev = b->events[i].events;
    uint64_t token = b->events[i].data.u64;
    int revents = 0;
    if (ev & EPOLLIN) revents |= EVP_REV_READ;
    if (ev & EPOLLOUT) revents |= EVP_REV_WRITE;
    if (ev & EPOLLPRI) revents |= EVP_REV_PRI;
    /* Reported even when not asked for; HUP alone, the core maps it to the interest. */
    if (ev & (EPOLLERR | EPOLLHUP)) revents |= EVP_REV_HUP;
    evp_put_record(&out[i], (int)(uint32_t)token, (uint32_t)(token >> 32), revents);
  }

  /*
   * A full array means more may have been ready: take twice as many next time. The caller's
   * capacity grows in step (it doubles when a wait fills it), so growing only up to the
   * current capacity would leave this array one doubling behind it forever.
   */
  if (n == b->nevents && b->nevents < (1 << 24)) {
    int grown = b->nevents * 2;
    struct epoll_event *events = realloc(b->events, (size_t)grown * sizeof *events);
    if (events != NULL) { /* on failure keep the old size: still correct, only slower */
      b->events = events;
      b->nevents = grown;
    }
  }
  return n;
}

static int epoll_pollable_fd(evp_backend *b) { return b->epfd; }

const evp_module evp_epoll_module = {
    .name = "epoll",
    .support_edge_trigger = 1,
    .support_exclusive = 1,
    .fd_limit = 0,
    .needs_helper_thread = 0,
    .init_syscall = "epoll_create1",
    .add_syscall = "epoll_ctl",
    .wait_syscall = "epoll_wait",
    .available = epoll_available,
    .init = epoll_init,
    .clean = epoll_clean,
    .wait = epoll_wait_records,
    .add = epoll_add,
    .modify = epoll_modify,
    .remove = epoll_remove,
    .pollable_fd = epoll_pollable_fd,
    /* No snapshot functions: in integrated mode libuv polls epfd itself. */
};
