// Signals through self-pipes, after PHP-FPM's fpm_signals.c: a native handler writes one byte
// per signal (FPM's map: SIGTERM 'T', SIGCHLD 'C', ...) into every registered pipe, whose read
// end is an ordinary READ event of an evpoll loop. Numbers in, numbers out; OS refusals come
// back as -errno.
//
// Signal dispositions are process-wide, so the pipe table and the per-signal state are
// process-wide statics, shared by every worker_thread that loads the addon (one dlopen). The
// handler reads them through lock-free atomics only; everything else takes g_mutex. Each env
// (thread) keeps only its own watch counts and pipes, to give them back when it goes away.
//
// The JS side's protocol: drain the read end to EAGAIN, map each byte to a signal (SIGNALS),
// then call pendingSignals(readFd) and take each bit as one more delivery of that signal — the
// signals whose byte did not fit a full pipe. Together: every signal sent is seen at least once
// (the kernel coalesces a signal that is already pending, so "once" is all any API promises).
// Every pipe receives every watched signal: a loop ignores bytes for signals it did not watch.
#include <napi.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <fcntl.h>
#include <mutex>
#include <sched.h>
#include <unistd.h>

#include "signals.h"

namespace {

// A signal handler may only touch lock-free atomics.
static_assert(std::atomic<int>::is_always_lock_free, "atomic<int> must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "atomic<uint32_t> must be lock-free");

constexpr int kMaxPipes = 64;   // one per loop; loops in worker_threads each own one
constexpr int kMaxSignal = 32;  // signals 1..31: one bit each in pendingSignals' mask

struct NamedSignal {
  const char* name;
  int signo;
  char byte;
};

// FPM's map, plus SIGHUP, SIGWINCH and SIGALRM.
constexpr NamedSignal kNamed[] = {
    {"SIGTERM", SIGTERM, 'T'}, {"SIGINT", SIGINT, 'I'},   {"SIGUSR1", SIGUSR1, '1'},
    {"SIGUSR2", SIGUSR2, '2'}, {"SIGQUIT", SIGQUIT, 'Q'}, {"SIGCHLD", SIGCHLD, 'C'},
    {"SIGHUP", SIGHUP, 'H'},   {"SIGWINCH", SIGWINCH, 'W'}, {"SIGALRM", SIGALRM, 'A'},
};

// Called from the handler: a plain scan, no state. A signal without a letter is written as its
// own number (a control byte, below every letter and digit used above).
char ByteFor(int signo) {
  for (const NamedSignal& s : kNamed) {
    if (s.signo == signo) return s.byte;
  }
  return static_cast<char>(signo);
}

// Not ours to take: faults (they are synchronous and Node/V8 own SIGSEGV for WebAssembly
// bounds checks), SIGPROF (V8's profiler), SIGABRT, and the two that cannot be caught.
bool Watchable(int signo) {
  if (signo < 1 || signo >= kMaxSignal) return false;
  switch (signo) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL:
    case SIGTRAP: case SIGSYS: case SIGABRT: case SIGPROF:
      return false;
    default:
      return true;
  }
}

struct PipeSlot {
  std::atomic<int> write_fd{-1};    // read by the handler; -1 = free
  std::atomic<int> busy{0};         // handlers that may still write to write_fd
  std::atomic<uint32_t> dropped{0};  // 1 << signo for signals whose byte did not fit
  int read_fd = -1;                 // under g_mutex, as is owner
  const void* owner = nullptr;      // the EnvSignals that opened it (closed at its teardown)
};

struct SignalState {
  int watchers = 0;              // under g_mutex: watchSignal calls in all envs, not undone
  struct sigaction original;     // before we (or our no-op uv_signal) touched it
  struct sigaction chained;      // what ours replaced (libuv's); read by the handler
  std::atomic<int> in_handler{0};  // handlers between entry and the end of the chained call
};

PipeSlot g_pipes[kMaxPipes];
SignalState g_signals[kMaxSignal];
std::mutex g_mutex;

// libuv installs its handler, without chaining, when its first watcher of a signal starts (a
// process.on, or child_process's SIGCHLD at the first spawn), and puts back SIG_DFL when its
// last one stops: either would wipe ours out. So for each signal we hold, a no-op libuv
// watcher of our own is started first (libuv's handler is then below ours, and ours chains to
// it) and stays started until we let go (libuv never touches the disposition meanwhile).
// These keepers live on a private loop that is never run, not on Node's loops: libuv's handler
// writes a message per watcher into its loop's pipe, and on a Node loop whose thread is
// blocked in loop.run() those messages would fill that pipe (~4096) and crowd out libuv's own
// (child_process's SIGCHLD: a lost 'exit'). On a loop nobody runs they fill a pipe nobody
// needs. Never closed, so there are no handles to close at a worker's exit either. Under
// g_mutex: a libuv loop may be used from any thread, one at a time.
uv_loop_t g_keeper_loop;
bool g_keeper_loop_ready = false;
uv_signal_t g_keepers[kMaxSignal];  // .loop != nullptr once initialised

// Per env (one per thread that loaded the addon): what it holds, given back at its teardown.
// Touched only on the env's own thread, under g_mutex.
struct EnvSignals {
  int watches[kMaxSignal] = {};
};

using Handler = void (*)(int);

// The handler slot as one value, to compare: sa_handler and sa_sigaction share storage (a
// union in glibc), and SIG_DFL/SIG_IGN are stored through sa_handler.
Handler HandlerOf(const struct sigaction& sa) { return sa.sa_handler; }

void OnSignal(int signo, siginfo_t* info, void* context) {
  const int saved_errno = errno;  // the interrupted code may be about to read errno
  SignalState& s = g_signals[signo];
  s.in_handler.fetch_add(1);
  const char byte = ByteFor(signo);
  for (PipeSlot& p : g_pipes) {
    if (p.write_fd.load() < 0) continue;  // fast path for free slots: no busy traffic
    p.busy.fetch_add(1);
    // Reloaded after busy is raised: a closer clears write_fd and then waits for busy == 0, so
    // either we see -1 here or it waits for us. Never a write to a reused fd number.
    const int fd = p.write_fd.load();
    if (fd >= 0 && write(fd, &byte, 1) < 0 && errno == EAGAIN) {
      // Full pipe: the byte is dropped, so record it for pendingSignals. Then write once more:
      // had the reader drained the pipe and read the mask between our failed write and the
      // bit, nothing would wake it again. Either this write lands (the reader will come back)
      // or the pipe is still full (it will too). A duplicate in that race is allowed.
      p.dropped.fetch_or(1u << signo);
      (void)!write(fd, &byte, 1);
    }
    p.busy.fetch_sub(1);
  }
  // Chain to the handler we replaced (libuv's: it runs process.on listeners and reaps
  // children for child_process) - only a real function. Node's own SIGINT/SIGTERM handler
  // re-raises the signal and its SIGUSR1 handler starts the inspector, and SIG_DFL would kill
  // us, so those are never chained to; the no-op uv_signal makes sure libuv's is the one below.
  const struct sigaction& next = s.chained;
  const Handler h = HandlerOf(next);
  if (h != SIG_DFL && h != SIG_IGN) {
    if (next.sa_flags & SA_SIGINFO) {
      next.sa_sigaction(signo, info, context);
    } else {
      h(signo);
    }
  }
  s.in_handler.fetch_sub(1);
  errno = saved_errno;
}

bool IsOurs(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == OnSignal;
}

void Spin(const std::atomic<int>& counter) {
  while (counter.load() != 0) sched_yield();
}

// ---- pipes ----

// Clears the slot, waits out any handler mid-write, then closes both ends. Under g_mutex.
void ClosePipeLocked(PipeSlot& p) {
  const int write_fd = p.write_fd.exchange(-1);
  Spin(p.busy);
  close(write_fd);
  close(p.read_fd);
  p.read_fd = -1;
  p.owner = nullptr;
  p.dropped.store(0);
}

PipeSlot* FindPipeLocked(int read_fd) {
  if (read_fd < 0) return nullptr;
  for (PipeSlot& p : g_pipes) {
    if (p.read_fd == read_fd) return &p;
  }
  return nullptr;
}

// ---- watching ----

void NoOp(uv_signal_t*, int) {}

int StartKeeperLocked(int signo) {
  if (!g_keeper_loop_ready) {
    const int r = uv_loop_init(&g_keeper_loop);  // libuv's errors are -errno on Unix
    if (r < 0) return r;
    g_keeper_loop_ready = true;
  }
  uv_signal_t& k = g_keepers[signo];
  if (k.loop == nullptr) {
    const int r = uv_signal_init(&g_keeper_loop, &k);
    if (r < 0) return r;
  }
  return uv_signal_start(&k, NoOp, signo);
}

// Under g_mutex. 0 or -errno.
int WatchLocked(EnvSignals* st, int signo) {
  SignalState& s = g_signals[signo];
  if (s.watchers == 0) {
    if (sigaction(signo, nullptr, &s.original) < 0) return -errno;
    const int r = StartKeeperLocked(signo);
    if (r < 0) return r;
    // chained is written before ours is installed: the handler reads it without a lock.
    struct sigaction ours = {};
    ours.sa_sigaction = OnSignal;
    // SA_RESTART as libuv's had, so the rest of the process sees no new EINTRs; our loop's
    // epoll_wait/poll/select are never restarted (signal(7)) and the pipe wakes them anyway.
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    // All signals blocked while ours runs, as libuv's expects: it takes a lock that a nested
    // handler on the same thread would deadlock on.
    sigfillset(&ours.sa_mask);
    if (sigaction(signo, nullptr, &s.chained) < 0 || sigaction(signo, &ours, nullptr) < 0) {
      const int err = -errno;
      uv_signal_stop(&g_keepers[signo]);
      return err;
    }
  }
  ++st->watches[signo];
  ++s.watchers;
  return 0;
}

// Under g_mutex. Undoes one WatchLocked of this env.
void UnwatchLocked(EnvSignals* st, int signo) {
  SignalState& s = g_signals[signo];
  --st->watches[signo];
  if (--s.watchers > 0) return;
  // Put back what we replaced only if ours is still there: someone may have installed theirs
  // over ours since, and theirs stays.
  struct sigaction cur;
  if (sigaction(signo, nullptr, &cur) == 0 && IsOurs(cur)) sigaction(signo, &s.chained, nullptr);
  // A handler still running on another thread may be reading chained, which the next first
  // watch rewrites.
  Spin(s.in_handler);
  // Synchronous: if the keeper was libuv's last watcher of the signal, libuv puts SIG_DFL back.
  uv_signal_stop(&g_keepers[signo]);
  // If something else was there before we started (Node's own SIGINT/SIGTERM/SIGUSR1
  // handlers, a SIG_IGN inherited from nohup), put it back - unless it was libuv's own
  // handler, now without watchers.
  const Handler original = HandlerOf(s.original);
  if (sigaction(signo, nullptr, &cur) == 0 && HandlerOf(cur) == SIG_DFL && original != SIG_DFL &&
      original != HandlerOf(s.chained)) {
    sigaction(signo, &s.original, nullptr);
  }
}

// The env is going away (worker exit, or main-thread teardown): give back its signals and
// close its pipes.
void OnEnvTeardown(void* arg) {
  auto* st = static_cast<EnvSignals*>(arg);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (int signo = 1; signo < kMaxSignal; ++signo) {
      while (st->watches[signo] > 0) UnwatchLocked(st, signo);
    }
    for (PipeSlot& p : g_pipes) {
      if (p.owner == st) ClosePipeLocked(p);
    }
  }
  delete st;
}

// ---- exports ----

EnvSignals* State(const Napi::CallbackInfo& info) { return static_cast<EnvSignals*>(info.Data()); }

Napi::Value Number(const Napi::CallbackInfo& info, double v) { return Napi::Number::New(info.Env(), v); }

// The signal number argument, or -EINVAL when it is not one we can watch.
int SignoArg(const Napi::CallbackInfo& info) {
  int32_t signo;
  if (napi_get_value_int32(info.Env(), info[0], &signo) != napi_ok || !Watchable(signo)) return -EINVAL;
  return signo;
}

// signalPipe() -> readFd | -errno (-ENOSPC when all 64 slots are taken). Nonblocking,
// close-on-exec; the write end stays inside the addon.
Napi::Value SignalPipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return Number(info, -errno);
  std::lock_guard<std::mutex> lock(g_mutex);
  for (PipeSlot& p : g_pipes) {
    if (p.read_fd >= 0) continue;
    p.read_fd = fds[0];
    p.owner = State(info);
    p.dropped.store(0);
    p.write_fd.store(fds[1]);  // last: from here on the handler writes to it
    return Number(info, fds[0]);
  }
  close(fds[0]);
  close(fds[1]);
  return Number(info, -ENOSPC);
}

// closeSignalPipe(readFd) -> 0 | -EBADF when readFd is not a signal pipe.
Napi::Value CloseSignalPipe(const Napi::CallbackInfo& info) {
  int32_t fd = -1;
  napi_get_value_int32(info.Env(), info[0], &fd);
  std::lock_guard<std::mutex> lock(g_mutex);
  PipeSlot* p = FindPipeLocked(fd);
  if (p == nullptr) return Number(info, -EBADF);
  ClosePipeLocked(*p);
  return Number(info, 0);
}

// pendingSignals(readFd) -> mask (bit 1 << signo) of the signals whose byte was dropped
// because the pipe was full, cleared by the call | -EBADF.
Napi::Value PendingSignals(const Napi::CallbackInfo& info) {
  int32_t fd = -1;
  napi_get_value_int32(info.Env(), info[0], &fd);
  std::lock_guard<std::mutex> lock(g_mutex);
  PipeSlot* p = FindPipeLocked(fd);
  if (p == nullptr) return Number(info, -EBADF);
  return Number(info, p->dropped.exchange(0));
}

// watchSignal(signo) -> 0 | -errno. Reference-counted: each call needs one unwatchSignal.
Napi::Value WatchSignal(const Napi::CallbackInfo& info) {
  const int signo = SignoArg(info);
  if (signo < 0) return Number(info, signo);
  std::lock_guard<std::mutex> lock(g_mutex);
  return Number(info, WatchLocked(State(info), signo));
}

// unwatchSignal(signo) -> 0 (also when this thread was not watching it) | -EINVAL.
Napi::Value UnwatchSignal(const Napi::CallbackInfo& info) {
  const int signo = SignoArg(info);
  if (signo < 0) return Number(info, signo);
  EnvSignals* st = State(info);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (st->watches[signo] > 0) UnwatchLocked(st, signo);
  return Number(info, 0);
}

}  // namespace

void RegisterSignals(Napi::Env env, Napi::Object exports) {
  // Per-env state through the functions' data pointer rather than napi_set_instance_data: an
  // env has a single instance-data slot, and the rest of the addon may need it.
  auto* st = new EnvSignals;
  if (napi_add_env_cleanup_hook(env, OnEnvTeardown, st) != napi_ok) {
    delete st;
    Napi::Error::New(env, "evpoll: cannot set up signal handling").ThrowAsJavaScriptException();
    return;
  }
  exports.Set("signalPipe", Napi::Function::New(env, SignalPipe, "signalPipe", st));
  exports.Set("closeSignalPipe", Napi::Function::New(env, CloseSignalPipe, "closeSignalPipe", st));
  exports.Set("pendingSignals", Napi::Function::New(env, PendingSignals, "pendingSignals", st));
  exports.Set("watchSignal", Napi::Function::New(env, WatchSignal, "watchSignal", st));
  exports.Set("unwatchSignal", Napi::Function::New(env, UnwatchSignal, "unwatchSignal", st));
  exports.Set("SIGNAL_PIPES", Napi::Number::New(env, kMaxPipes));
  Napi::Object names = Napi::Object::New(env);
  for (const NamedSignal& s : kNamed) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("signo", Napi::Number::New(env, s.signo));
    entry.Set("byte", Napi::Number::New(env, static_cast<unsigned char>(s.byte)));
    names.Set(s.name, entry);
  }
  exports.Set("SIGNALS", names);
}
