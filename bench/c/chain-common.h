/*
 * What the two C chain programs share: arguments, the socketpairs, the clock, the output.
 *
 * The workload is libevent's pipe chain: n socketpairs, one persistent READ event on each
 * reading end; `a` chains are started by writing one byte into evenly spaced pairs; each
 * callback reads its byte and, while writes remain, writes one byte to the next pair. Only the
 * dispatch is timed.
 *
 * usage: PROGRAM [-m epoll|poll|select] -n PAIRS -a ACTIVE [-w WRITES] [-W WARMUP] [-r RUNS]
 *
 * With -r, prints RUNS lines (microseconds per event) and exits. Without it, serves the bench
 * orchestrator: sets up, does WARMUP untimed runs, prints "ready", then for each stdin line
 * "run K" prints one line of K figures (µs per event), until "quit" or EOF. The orchestrator
 * keeps every side's process alive and alternates between them run by run.
 */
#ifndef EVPOLL_BENCH_CHAIN_COMMON_H
#define EVPOLL_BENCH_CHAIN_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct chain_args {
  const char *method;
  int pairs, active, writes, runs, warmup;
};

static void chain_usage(const char *prog) {
  fprintf(stderr, "usage: %s [-m method] -n PAIRS -a ACTIVE [-w WRITES] [-r RUNS] [-W WARMUP]\n", prog);
  exit(2);
}

static struct chain_args chain_parse(int argc, char **argv) {
  struct chain_args a = {"epoll", 100, 1, -1, 0, 1};
  int c;
  while ((c = getopt(argc, argv, "m:n:a:w:r:W:")) != -1) {
    switch (c) {
      case 'm': a.method = optarg; break;
      case 'n': a.pairs = atoi(optarg); break;
      case 'a': a.active = atoi(optarg); break;
      case 'w': a.writes = atoi(optarg); break;
      case 'r': a.runs = atoi(optarg); break;
      case 'W': a.warmup = atoi(optarg); break;
      default: chain_usage(argv[0]);
    }
  }
  if (a.pairs < 1 || a.active < 1 || a.active > a.pairs || a.runs < 0 || a.warmup < 0) chain_usage(argv[0]);
  if (a.writes < 0) a.writes = a.pairs; /* as test/bench.c: one write per pair by default */
  return a;
}

/* 2 fds per pair: lift the soft open-file limit to the hard one (a C program can, Node cannot). */
static void chain_raise_nofile(int pairs) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)pairs * 2 + 32 > rl.rlim_cur) {
    fprintf(stderr, "%d pairs need %d fds; the open-file limit is %ld\n", pairs, pairs * 2 + 32, (long)rl.rlim_cur);
    exit(3);
  }
}

/* fds[2 * i] is pair i's reading end, fds[2 * i + 1] its writing end; both nonblocking. */
static int *chain_socketpairs(int pairs) {
  int *fds = malloc(sizeof(int) * 2 * (size_t)pairs);
  if (fds == NULL) exit(4);
  for (int i = 0; i < pairs; i++) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &fds[2 * i]) < 0) {
      fprintf(stderr, "socketpair: %s\n", strerror(errno));
      exit(4);
    }
  }
  return fds;
}

static double chain_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Warm-up, then either RUNS lines or the stdin protocol described on top. */
static void chain_serve(const struct chain_args *a, double (*run_once)(void)) {
  for (int r = 0; r < a->warmup; r++) run_once();
  if (a->runs > 0) {
    for (int r = 0; r < a->runs; r++) printf("%.4f\n", run_once());
    return;
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL) {
    int k;
    if (sscanf(line, "run %d", &k) != 1) break;
    for (int r = 0; r < k; r++) printf(r ? " %.4f" : "%.4f", run_once());
    printf("\n");
    fflush(stdout);
  }
}

#endif
