/*
 * The floor: the pipe chain on raw epoll, no library. Level-triggered EPOLLIN on each reading
 * end, the pair's index in data.u32, epoll_wait with a zero timeout until every byte sent has
 * been read. Everything but the syscalls a chain needs is left out.
 */
#include <sys/epoll.h>

#include "chain-common.h"

static int *fds;
static struct chain_args args;

static int epfd;
static struct epoll_event *ready;
static int ready_max;

static void register_all(void) {
  for (int i = 0; i < args.pairs; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    /* As the evpoll and libevent sides: every run starts from fresh registrations (untimed). */
    epoll_ctl(epfd, EPOLL_CTL_DEL, fds[2 * i], &ev);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[2 * i], &ev) < 0) {
      perror("epoll_ctl");
      exit(5);
    }
  }
}

static double run_once(void) {
  register_all();
  int space = args.pairs / args.active;
  int fired = 0;
  for (int i = 0; i < args.active; i++, fired++) {
    if (write(fds[2 * (i * space) + 1], "e", 1) != 1) exit(6);
  }
  int count = 0, left = args.writes;
  char byte;
  double start = chain_now_us();
  do {
    int n = epoll_wait(epfd, ready, ready_max, 0);
    for (int k = 0; k < n; k++) {
      int i = (int)ready[k].data.u32;
      ssize_t got = read(fds[2 * i], &byte, 1);
      if (got > 0) count += (int)got;
      if (left > 0) {
        left--;
        fired++;
        int next = i + 1 == args.pairs ? 0 : i + 1;
        if (write(fds[2 * next + 1], "e", 1) != 1) exit(6);
      }
    }
  } while (count != fired);
  return (chain_now_us() - start) / count;
}

int main(int argc, char **argv) {
  args = chain_parse(argc, argv);
  chain_raise_nofile(args.pairs);
  fds = chain_socketpairs(args.pairs);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    perror("epoll_create1");
    return 5;
  }
  /* Room for every fd at once: the floor never needs a second wait for one batch. */
  ready_max = args.pairs;
  ready = malloc(sizeof *ready * (size_t)ready_max);
  chain_serve(&args, run_once);
  return 0;
}
