// Integrated mode (see integrate.h). Threads: the JS thread runs everything here but
// RunHelper; the helper thread runs RunHelper and touches the backend only under mu_, for the
// snapshot. Lifetime: Start() to Stop() delivers onReady(); Stop() joins the helper and closes
// the uv handle, whose close callback frees the Watcher (Finish). The environment's async
// cleanup hook calls Stop() too, so that a worker_thread exiting with a loop still started
// closes its handle before its uv loop is closed.
#include "integrate.h"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

int CreateWakeFd() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

namespace {

void WriteWake(int fd) {
  uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: it is readable then anyway.
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void DrainWake(int fd) {
  uint64_t count;
  while (read(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

}  // namespace

Watcher::Watcher(napi_env env, const evp_module* module, evp_backend* backend, int wake_fd,
                 Watcher** slot)
    : env_(env), module_(module), backend_(backend), wake_fd_(wake_fd), slot_(slot) {}

Watcher* Watcher::Start(napi_env env, napi_value owner, napi_value on_ready,
                        const evp_module* module, evp_backend* backend, int wake_fd,
                        Watcher** slot, int* err, const char** syscall) {
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    *err = -EINVAL;
    *syscall = "napi_get_uv_event_loop";
    return nullptr;
  }
  auto* w = new Watcher(env, module, backend, wake_fd, slot);
  int r;
  if (!module->needs_helper_thread) {
    // Sets O_NONBLOCK on the epoll fd: epoll_wait does not care.
    *syscall = "uv_poll_init";
    r = uv_poll_init(loop, &w->poll_, module->pollable_fd(backend));
    if (r == 0) {
      w->handle_ = reinterpret_cast<uv_handle_t*>(&w->poll_);
      *syscall = "uv_poll_start";
      r = uv_poll_start(&w->poll_, UV_READABLE, OnPollable);
    }
  } else {
    // A first snapshot here, before the helper exists: what it would refuse (select's wake fd
    // at or above FD_SETSIZE) is refused by startWatching, not later by a takeBatch.
    *syscall = module->name;
    r = module->snapshot(backend, &w->snapshot_, wake_fd);
    if (r > 0) {
      *syscall = "uv_async_init";
      r = uv_async_init(loop, &w->async_, OnPosted);
    }
    if (r == 0) {
      w->handle_ = reinterpret_cast<uv_handle_t*>(&w->async_);
      // Signals go to the other threads (the JS thread's handlers, the self-pipe): the helper
      // starts with all of them blocked, inherited, so there is no window before it could
      // block them itself.
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      *syscall = "pthread_create";
      r = -pthread_create(&w->helper_, nullptr, HelperMain, w);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      w->helper_started_ = r == 0;
      // Named for top and /proc/<pid>/task/*/comm (15 characters at most).
      if (r == 0) pthread_setname_np(w->helper_, "evpoll-wait");
    }
  }
  if (r != 0) {
    *err = r;  // libuv's errors are -errno on Unix
    w->stopped_ = true;
    w->slot_ = nullptr;
    if (w->handle_ != nullptr) {
      w->handle_->data = w;
      uv_close(w->handle_, OnClosed);
    } else {
      w->Finish();
    }
    return nullptr;
  }
  w->handle_->data = w;

  napi_value name;
  napi_create_string_utf8(env, "evpoll", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, owner, 1, &w->owner_);
  napi_create_reference(env, on_ready, 1, &w->on_ready_);
  napi_async_init(env, owner, name, &w->async_context_);
  napi_add_async_cleanup_hook(env, OnEnvCleanup, w, &w->cleanup_hook_);
  *slot = w;
  return w;
}

void Watcher::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (slot_ != nullptr) *slot_ = nullptr;
  slot_ = nullptr;
  if (helper_started_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (in_wait_ && !wake_written_) {
        WriteWake(wake_fd_);
        wake_written_ = true;
      }
    }
    armed_cv_.notify_one();
    pthread_join(helper_, nullptr);
    helper_started_ = false;
  }
  uv_close(handle_, OnClosed);  // stops the poll handle too
}

void Watcher::OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  (void)hook;  // removed in Finish(), which tells Node the cleanup is complete
  static_cast<Watcher*>(arg)->Stop();
}

void Watcher::OnClosed(uv_handle_t* handle) { static_cast<Watcher*>(handle->data)->Finish(); }

void Watcher::Finish() {
  if (snapshot_ != nullptr) module_->snapshot_free(snapshot_);
  if (owner_ != nullptr) napi_delete_reference(env_, owner_);
  if (on_ready_ != nullptr) napi_delete_reference(env_, on_ready_);
  if (async_context_ != nullptr) napi_async_destroy(env_, async_context_);
  // Last: during the environment's teardown it lets Node go on and free the napi_env.
  if (cleanup_hook_ != nullptr) napi_remove_async_cleanup_hook(cleanup_hook_);
  delete this;
}

void Watcher::OnPollable(uv_poll_t* handle, int status, int events) {
  // An error status is passed on too: JS's TakeBatch (epoll_wait) then reports it.
  (void)status;
  (void)events;
  static_cast<Watcher*>(handle->data)->NotifyJs();
}

void Watcher::OnPosted(uv_async_t* handle) { static_cast<Watcher*>(handle->data)->NotifyJs(); }

void Watcher::NotifyJs() {
  if (stopped_) return;
  napi_env env = env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value owner, on_ready;
  if (napi_get_reference_value(env, owner_, &owner) == napi_ok &&
      napi_get_reference_value(env, on_ready_, &on_ready) == napi_ok) {
    // The wake-up loop (integrate.h): onReady() again while it reports a productive batch and
    // there is more, within the budget.
    uint64_t deadline = uv_hrtime() + kMaxNanos;
    for (int calls = 1;; calls++) {
      int flags = calls == 1 ? kReadyWakeUp : 0;
      if (helper_started_) {
        std::lock_guard<std::mutex> lock(mu_);
        if (HasPostedLocked()) flags |= kReadyPosted;
      }
      napi_value arg, result;
      napi_create_int32(env, flags, &arg);
      // napi_make_callback, not napi_call_function: it drains nextTick and microtasks after
      // the call, as Node does after its own callbacks. onReady may stop or close: this
      // Watcher then stays allocated until its close callback, in a later loop turn.
      napi_status status =
          napi_make_callback(env, async_context_, owner, on_ready, 1, &arg, &result);
      bool pending = false;
      if (status != napi_ok) napi_is_exception_pending(env, &pending);
      if (pending) {
        // Nobody above us to catch it: Node's uncaughtException path. (A worker being
        // terminated cannot run JS any more: napi_fatal_exception then does nothing.)
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) {
          napi_fatal_exception(env, error);
        }
        break;
      }
      bool more = false;
      if (status != napi_ok || stopped_ || napi_get_value_bool(env, result, &more) != napi_ok ||
          !more) {
        break;
      }
      if (calls >= kMaxBatches || uv_hrtime() >= deadline) {
        // Out of budget with JS still productive: let Node's loop have a full turn first.
        // epoll's fd stays readable while anything is ready (libuv polls it level-triggered);
        // the helper is parked, so poll and select post to themselves.
        if (helper_started_) uv_async_send(&async_);
        break;
      }
      if (!helper_started_ && !LookAhead()) break;
    }
  }
  napi_close_handle_scope(env, scope);
}

// epoll, between two calls of a wake-up: whether anything is ready, by a non-blocking wait
// whose records the next TakeBatch hands out. An error is kept for it too.
bool Watcher::LookAhead() {
  if (ahead_.size() < static_cast<size_t>(capacity_)) ahead_.resize(capacity_);
  int n = module_->wait(backend_, 0, ahead_.data(), capacity_);
  if (n < 0) {
    ahead_error_ = n;
    return true;
  }
  ahead_size_ = static_cast<size_t>(n);
  ahead_taken_ = 0;
  return n > 0;
}

void* Watcher::HelperMain(void* arg) {
  static_cast<Watcher*>(arg)->RunHelper();
  return nullptr;
}

void Watcher::RunHelper() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    armed_cv_.wait(lock, [this] { return armed_ || stopping_; });
    if (stopping_) break;
    int n = module_->snapshot(backend_, &snapshot_, wake_fd_);
    if (n > 0) {
      int capacity = n;
      dirty_ = false;
      in_wait_ = true;
      lock.unlock();
      if (found_.size() < static_cast<size_t>(capacity)) found_.resize(capacity);
      int woken;
      n = module_->snapshot_wait(snapshot_, found_.data(), capacity, &woken);
      lock.lock();
      in_wait_ = false;
      // Drained here rather than when `woken`: a wake written after poll() returned would
      // otherwise end the next wait at once.
      if (wake_written_) {
        DrainWake(wake_fd_);
        wake_written_ = false;
      }
      if (stopping_) break;
      // The set changed meanwhile: the results may name fd numbers that are other files by
      // now. Nothing is lost by dropping them: everything here is level-triggered, so the next
      // wait, on a fresh snapshot, reports again whatever is still ready. n == 0: woken only,
      // or EINTR.
      if (dirty_ || n == 0) continue;
    }
    if (n < 0) {
      error_ = n;
    } else {
      batch_.assign(found_.begin(), found_.begin() + n);
      taken_ = 0;
    }
    // Not again until Rearm(): a level-triggered fd JS has not read yet would spin this loop.
    armed_ = false;
    uv_async_send(&async_);
  }
}

void Watcher::ChangedLocked() {
  dirty_ = true;
  if (in_wait_ && !wake_written_) {
    WriteWake(wake_fd_);
    wake_written_ = true;
  }
}

int Watcher::CopyOut(evp_record* out, int capacity, const evp_record* from, size_t size,
                     size_t* taken) {
  size_t left = size - *taken;
  int n = left < static_cast<size_t>(capacity) ? static_cast<int>(left) : capacity;
  std::memcpy(out, from + *taken, static_cast<size_t>(n) * sizeof *out);
  *taken += static_cast<size_t>(n);
  return n;
}

int Watcher::TakeBatch(evp_record* out, int capacity) {
  if (!helper_started_) {
    capacity_ = capacity;
    if (ahead_error_ != 0) {
      int err = ahead_error_;
      ahead_error_ = 0;
      return err;
    }
    if (ahead_taken_ < ahead_size_) {
      // Read ahead by the wait LookAhead() made: the live wait has already dropped what it
      // found invalid, as a blocking one does.
      int n = CopyOut(out, capacity, ahead_.data(), ahead_size_, &ahead_taken_);
      if (ahead_taken_ == ahead_size_) ahead_size_ = ahead_taken_ = 0;
      return n;
    }
    return module_->wait(backend_, 0, out, capacity);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (error_ != 0) {
    int err = error_;
    error_ = 0;
    return err;
  }
  if (taken_ == batch_.size()) {
    // Called with no batch posted (from a JS timer, from the wake-up loop after a productive
    // batch, or before the helper's first wait has returned): what is ready now, as epoll
    // answers, from the live set. The helper is then sent back to wait for Rearm(): what it is
    // about to report is this same readiness, which would be stale once JS has handled it.
    int n = module_->wait(backend_, 0, out, capacity);
    look_again_ = n > 0;
    if (n > 0) {
      armed_ = false;
      ChangedLocked();
    }
    return n;
  }
  int n = CopyOut(out, capacity, batch_.data(), batch_.size(), &taken_);
  look_again_ = true;
  if (taken_ == batch_.size()) {
    batch_.clear();
    taken_ = 0;
  }
  // What the blocking wait does itself for an fd closed behind its back, done on the live set
  // now. The helper is not waiting (it waits for Rearm()), so it needs no wake-up.
  for (int i = 0; i < n; i++) {
    if (le32toh(static_cast<uint32_t>(out[i].revents)) & EVP_REV_INVALID) {
      module_->forget(backend_, static_cast<int>(le32toh(static_cast<uint32_t>(out[i].fd))),
                      le32toh(out[i].gen));
    }
  }
  return n;
}

void Watcher::Rearm() {
  if (!helper_started_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (HasPostedLocked() || look_again_) {
      // Not all taken: another onReady() for the rest rather than a new wait. Or the last
      // batch took records (this batch ran outside a wake-up: from a JS timer or immediate):
      // look again in a wake-up loop of our own, next turn, the helper still parked.
      look_again_ = false;
      uv_async_send(&async_);
      return;
    }
    if (armed_) return;
    armed_ = true;
  }
  armed_cv_.notify_one();
}

void Watcher::SetRef(bool ref) {
  if (stopped_) return;
  if (ref) {
    uv_ref(handle_);
  } else {
    uv_unref(handle_);
  }
}
