// Integrated mode: a backend riding on Node's own libuv loop instead of blocking its thread.
// A Watcher tells JS when the backend has (or may have) ready fds, by calling onReady() on the
// JS thread; JS then takes the records (TakeBatch), runs its callbacks and calls Rearm().
//
// - epoll (backend.h's needs_helper_thread is 0): libuv polls the epoll fd itself
//   (uv_poll_t); TakeBatch is a non-blocking wait.
// - poll, select (needs_helper_thread): a helper thread waits on a snapshot of the registered
//   set (backend.h's snapshot functions) and posts the records back through a uv_async_t. It
//   does not wait again until Rearm(), or a level-triggered fd left ready would spin it.
//
// One wake-up, several batches. Waking through libuv costs a whole turn of Node's loop per
// batch (libuv's own epoll_wait, its timers and check phases, an eventfd for the helper's
// post): at low concurrency, where each batch holds one event, that turn was a fifth of the
// cost of an event (bench/results/analysis.md). So a wake-up (OnPollable, OnPosted) calls
// onReady() in a loop:
//
//   onReady(flags) -> boolean. Each call through napi_make_callback, so that nextTick and
//   microtasks drain after every batch and async_hooks see one callback per batch, as before.
//   flags: kReadyPosted, the helper thread's batch is waiting to be taken (NODE_DEBUG tells of
//   it); kReadyWakeUp, the first call of a wake-up (each wake-up ends with the wait handed
//   back to Node's side: loop.stats().handoffs counts them). It returns true when it took
//   records and handled all of them: readiness may have moved on (a callback wrote to a peer,
//   a level-triggered fd is still readable), so look again now, after the microtasks ran.
//   - epoll: the Watcher looks itself, with a non-blocking epoll_wait whose records it keeps
//     for the next TakeBatch (no syscall wasted); onReady() again only when it found some.
//     Those records are read right before that call, and JS takes them first thing in it
//     (it returned true, so nothing of an earlier batch is left); were they not taken, the
//     next TakeBatch, whoever calls it, would still hand them out before waiting again.
//   - poll, select: onReady() again at once; its TakeBatch finds no batch posted and polls the
//     live set without blocking (the helper stays parked). When that finds nothing, JS calls
//     Rearm() and the helper takes the wait back, as after any batch.
//   Returning false (nothing taken, entries left by a callback that threw, the loop stopped)
//   ends the loop: the wake-up is over.
//
// Budget: at most kMaxBatches calls and about kMaxNanos per wake-up, so that Node's own I/O,
// timers and immediates are never starved by a loop that stays busy (a level-triggered fd
// never drained: test/integrated.test.ts has that case, and fails without the budget). When
// the budget runs out with JS still productive, the Watcher hands back to libuv: epoll's fd is
// still readable (libuv polls it level-triggered), so the next turn wakes it again; poll and
// select post to themselves (uv_async_send), the next turn goes on where this one stopped,
// the helper still parked. Either way Node runs a full turn between: a loop kept busy gets up
// to 32 batches per turn where it used to get one, and Node's other callbacks wait for at most
// that many batches, or about a millisecond (plus the batch under way).
//
// A batch JS runs outside a wake-up (from its Node timer, or the setImmediate of start() or
// after a callback threw) is not looped; after a productive one JS calls Rearm(), which for
// poll and select posts to itself, so that the rest of the burst runs in wake-up loops
// (epoll needs nothing: libuv polls its fd again).
#ifndef EVPOLL_INTEGRATE_H
#define EVPOLL_INTEGRATE_H

#include <node_api.h>
#include <pthread.h>
#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "backend.h"

// The fd a helper thread is woken through (a nonblocking eventfd), or -errno. Made when the
// backend is, so that for select it is among the lowest fd numbers (below FD_SETSIZE).
int CreateWakeFd();

class Watcher {
 public:
  // Starts calling on_ready(), with owner as `this` and async resource, and keeps both alive
  // until Stop(). *slot is the owner's pointer to this Watcher: Stop() clears it, whoever
  // calls it (the owner, or the environment's cleanup when a worker_thread exits). nullptr
  // on failure, with *err = -errno and *syscall the call that failed.
  static Watcher* Start(napi_env env, napi_value owner, napi_value on_ready,
                        const evp_module* module, evp_backend* backend, int wake_fd,
                        Watcher** slot, int* err, const char** syscall);

  // No onReady() after this; the helper thread is joined before it returns, so the backend
  // may be released right after. The uv handle closes later and frees the Watcher. Idempotent.
  void Stop();

  // Runs a change of the backend's registered set (add, modify, remove, a non-blocking wait)
  // so that the helper thread neither reads the set meanwhile nor goes on waiting on the old
  // one, whose fd numbers may be reused by now.
  template <typename Change>
  int Apply(Change change) {
    if (!helper_started_) return change();
    std::lock_guard<std::mutex> lock(mu_);
    int r = change();
    ChangedLocked();
    return r;
  }

  // Writes up to `capacity` ready records to out; the count (0 when there is nothing), or
  // -errno. Never blocks. epoll: the records the wake-up loop read ahead, else a non-blocking
  // wait. poll, select: the helper's batch, whose records that do not fit are kept for the next
  // call; with no batch posted, a non-blocking wait on the live set.
  int TakeBatch(evp_record* out, int capacity);

  // The batch has been handled: the helper thread may wait again (a no-op for epoll). If
  // records are still untaken, onReady() is called again for them instead; so it is, in a
  // wake-up loop of its own on the next turn, if the last TakeBatch took records (JS calls
  // Rearm() after a productive batch only when it ran outside a wake-up loop).
  void Rearm();

  void SetRef(bool ref);

  // The budget of one wake-up (see the top of this file). 32 batches amortise the libuv turn
  // to a few percent of an event; 1 ms is Node's timer resolution.
  static constexpr int kMaxBatches = 32;
  static constexpr uint64_t kMaxNanos = 1000000;

  // onReady()'s flags (src/integrated.ts has the same numbers).
  static constexpr int kReadyPosted = 1;
  static constexpr int kReadyWakeUp = 2;

 private:
  Watcher(napi_env env, const evp_module* module, evp_backend* backend, int wake_fd,
          Watcher** slot);

  static void OnPollable(uv_poll_t* handle, int status, int events);
  static void OnPosted(uv_async_t* handle);
  static void OnClosed(uv_handle_t* handle);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);
  static void* HelperMain(void* arg);

  void NotifyJs();
  bool LookAhead();
  bool HasPostedLocked() const { return taken_ < batch_.size() || error_ != 0; }
  static int CopyOut(evp_record* out, int capacity, const evp_record* from, size_t size,
                     size_t* taken);
  void RunHelper();
  void ChangedLocked();
  void Finish();

  napi_env env_;
  const evp_module* module_;
  evp_backend* backend_;
  int wake_fd_;
  Watcher** slot_;
  bool stopped_ = false;

  // JS-thread state, released when the handle has closed.
  napi_ref owner_ = nullptr;
  napi_ref on_ready_ = nullptr;
  napi_async_context async_context_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_hook_ = nullptr;

  // epoll: the records of the wake-up loop's own non-blocking wait, for the next TakeBatch
  // (JS thread only). ahead_size_ of ahead_ are valid, ahead_taken_ of them handed out.
  std::vector<evp_record> ahead_;
  size_t ahead_size_ = 0;
  size_t ahead_taken_ = 0;
  int ahead_error_ = 0;  // a -errno of that wait, for the next TakeBatch
  int capacity_ = 1;     // the capacity JS's last TakeBatch offered: the read-ahead's

  // One of the two, by mechanism; handle_ is the one in use.
  uv_poll_t poll_;
  uv_async_t async_;
  uv_handle_t* handle_ = nullptr;

  // The helper thread (poll, select). A pthread_t rather than a std::thread: under
  // -fno-exceptions a failed std::thread constructor terminates the process, and a joinable
  // std::thread destroyed at process.exit() (which skips cleanup hooks) would too.
  pthread_t helper_;
  bool helper_started_ = false;

  // Guarded by mu_, as is the backend itself while the helper runs.
  std::mutex mu_;
  std::condition_variable armed_cv_;
  bool armed_ = true;          // JS has handled the last batch: the helper may wait again
  bool stopping_ = false;      // the helper must return
  bool dirty_ = false;         // the set changed since the helper's snapshot
  bool in_wait_ = false;       // the helper is in poll()/select() (or about to be)
  bool wake_written_ = false;  // wake_fd_ has a byte the helper has not drained
  bool look_again_ = false;    // the last TakeBatch took records: Rearm() looks again
  int error_ = 0;              // a -errno for the next TakeBatch
  std::vector<evp_record> batch_;
  size_t taken_ = 0;  // records of batch_ already handed to JS

  // The helper thread's own.
  evp_snapshot* snapshot_ = nullptr;
  std::vector<evp_record> found_;
};

#endif  // EVPOLL_INTEGRATE_H
