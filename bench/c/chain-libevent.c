/*
 * The pipe chain on libevent 2.1, on the backend named by -m (epoll, poll or select): the
 * others are avoided through event_config_avoid_method, and the method libevent actually
 * picked is checked. Each run re-adds every event, applies the changes with one non-blocking
 * loop pass (untimed), starts the chains, then times EVLOOP_ONCE | EVLOOP_NONBLOCK passes
 * until every byte sent has been read.
 */
#include <event2/event.h>
#include <event2/event_struct.h>

#include "chain-common.h"

static int *fds;
static struct chain_args args;
static struct event_base *base;
static struct event *events;
static int count, fired, left;

static void on_read(evutil_socket_t fd, short which, void *arg) {
  (void)which;
  int i = (int)(intptr_t)arg;
  char byte;
  ssize_t got = read(fd, &byte, 1);
  if (got > 0) count += (int)got;
  if (left > 0) {
    left--;
    fired++;
    int next = i + 1 == args.pairs ? 0 : i + 1;
    if (write(fds[2 * next + 1], "e", 1) != 1) exit(6);
  }
}

static double run_once(void) {
  for (int i = 0; i < args.pairs; i++) {
    event_del(&events[i]);
    event_add(&events[i], NULL);
  }
  /* epoll's changelist is applied at the next dispatch: do it now, outside the timing. */
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  int space = args.pairs / args.active;
  fired = 0;
  for (int i = 0; i < args.active; i++, fired++) {
    if (write(fds[2 * (i * space) + 1], "e", 1) != 1) exit(6);
  }
  count = 0;
  left = args.writes;
  double start = chain_now_us();
  do event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  while (count != fired);
  return (chain_now_us() - start) / count;
}

int main(int argc, char **argv) {
  args = chain_parse(argc, argv);
  chain_raise_nofile(args.pairs);
  fds = chain_socketpairs(args.pairs);

  static const char *const methods[] = {"epoll", "poll", "select"};
  struct event_config *cfg = event_config_new();
  for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
    if (strcmp(methods[k], args.method) != 0) event_config_avoid_method(cfg, methods[k]);
  }
  base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (base == NULL || strcmp(event_base_get_method(base), args.method) != 0) {
    fprintf(stderr, "libevent %s: cannot get method %s\n", event_get_version(), args.method);
    return 5;
  }

  events = calloc((size_t)args.pairs, sizeof *events);
  for (int i = 0; i < args.pairs; i++) {
    event_assign(&events[i], base, fds[2 * i], EV_READ | EV_PERSIST, on_read, (void *)(intptr_t)i);
  }
  chain_serve(&args, run_once);
  return 0;
}
