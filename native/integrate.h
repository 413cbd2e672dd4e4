// Integrated mode: a backend riding on Node's own libuv loop instead of blocking its thread.
// A Watcher tells JS when the backend has (or may have) ready fds, by calling onReady() on the
// JS thread; JS then takes the records (TakeBatch), runs its callbacks and calls Rearm().
//
// - epoll (backend.h's needs_helper_thread is 0): libuv polls the epoll fd itself
//   (uv_poll_t); TakeBatch is a non-blocking wait.
// - poll, select (needs_helper_thread): a helper thread waits on a snapshot of the registered
//   set (backend.h's snapshot functions) and posts the records back through a uv_async_t. It
//   does not wait again until Rearm(), or a level-triggered fd left ready would spin it.
#ifndef EVPOLL_INTEGRATE_H
#define EVPOLL_INTEGRATE_H

#include <node_api.h>
#include <pthread.h>
#include <uv.h>

#include <condition_variable>
#include <cstddef>
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
  // -errno. Never blocks. poll, select: the helper's batch, whose records that do not fit are
  // kept for the next call; with no batch posted, a non-blocking wait on the live set.
  int TakeBatch(evp_record* out, int capacity);

  // The batch has been handled: the helper thread may wait again (a no-op for epoll). If
  // records are still untaken, onReady() is called again for them instead.
  void Rearm();

  void SetRef(bool ref);

 private:
  Watcher(napi_env env, const evp_module* module, evp_backend* backend, int wake_fd,
          Watcher** slot);

  static void OnPollable(uv_poll_t* handle, int status, int events);
  static void OnPosted(uv_async_t* handle);
  static void OnClosed(uv_handle_t* handle);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);
  static void* HelperMain(void* arg);

  void NotifyJs();
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
  int error_ = 0;              // a -errno for the next TakeBatch
  std::vector<evp_record> batch_;
  size_t taken_ = 0;  // records of batch_ already handed to JS

  // The helper thread's own.
  evp_snapshot* snapshot_ = nullptr;
  std::vector<evp_record> found_;
};

#endif  // EVPOLL_INTEGRATE_H
