// N-API glue over the backend modules (backend.h). No policy here: arguments in, numbers out.
// Integrated mode (startWatching and co.) is integrate.cc's; this file only forwards to it.
// OS refusals come back as -errno numbers (the JS layer builds the error); only misuse throws
// (TypeError, RangeError) and so does a failed constructor (a SystemError-shaped Error).
//
// C++ exceptions are disabled (NAPI_DISABLE_CPP_EXCEPTIONS): a thrown JS error is left
// pending and the method returns at once.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <sys/select.h>
#include <unistd.h>

#include "backend.h"
#include "fdops.h"
#include "signals.h"
#include "integrate.h"

namespace {

// Read-only: safe to share between the worker_threads that load this addon.
const evp_module* const kModules[] = {&evp_epoll_module, &evp_poll_module, &evp_select_module};

const evp_module* FindModule(const std::string& name) {
  for (const evp_module* m : kModules) {
    if (name == m->name) return m;
  }
  return nullptr;
}

// An Error in the shape of Node's SystemError / uvException: message
// "<CODE>: <description>, <syscall>", with code, errno (negative) and syscall.
Napi::Error SystemError(Napi::Env env, int err, const char* syscall) {
  char code[64], desc[128];
  uv_err_name_r(-err, code, sizeof code);  // libuv's errors are -errno on Unix
  uv_strerror_r(-err, desc, sizeof desc);
  Napi::Error e = Napi::Error::New(env, std::string(code) + ": " + desc + ", " + syscall);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// Argument readers: false (with a TypeError pending) when the argument is not a number.
bool ArgInt32(const Napi::CallbackInfo& info, size_t i, const char* what, int32_t* out) {
  if (napi_get_value_int32(info.Env(), info[i], out) == napi_ok) return true;
  Napi::TypeError::New(info.Env(), std::string(what) + " must be a number")
      .ThrowAsJavaScriptException();
  return false;
}

bool ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t* out) {
  if (napi_get_value_uint32(info.Env(), info[i], out) == napi_ok) return true;
  Napi::TypeError::New(info.Env(), std::string(what) + " must be a number")
      .ThrowAsJavaScriptException();
  return false;
}

bool ArgInt64(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t* out) {
  if (napi_get_value_int64(info.Env(), info[i], out) == napi_ok) return true;
  Napi::TypeError::New(info.Env(), std::string(what) + " must be a number")
      .ThrowAsJavaScriptException();
  return false;
}

// timeoutMs: a negative number or Infinity waits forever. A fraction rounds up, so that a
// timer 0.3 ms away does not become a zero timeout and a busy loop until it is due.
bool ArgTimeout(const Napi::CallbackInfo& info, size_t i, int* out) {
  double ms;
  if (napi_get_value_double(info.Env(), info[i], &ms) != napi_ok || ms != ms) {
    Napi::TypeError::New(info.Env(), "timeoutMs must be a number").ThrowAsJavaScriptException();
    return false;
  }
  if (ms < 0 || ms > INT32_MAX) {
    *out = -1;
  } else {
    *out = static_cast<int>(ms);
    if (*out < ms) ++*out;
  }
  return true;
}

// (buffer: ArrayBuffer, byteOffset, capacity) from argument i on: where records go. False with
// a TypeError or RangeError pending when they do not describe room inside the buffer.
bool ArgRecords(const Napi::CallbackInfo& info, size_t i, const char* method, evp_record** out,
                int32_t* capacity) {
  Napi::Env env = info.Env();
  int64_t offset;
  void* data;
  size_t length;
  // One call both checks the type and fetches the memory (napi_invalid_arg otherwise).
  if (napi_get_arraybuffer_info(env, info[i], &data, &length) != napi_ok) {
    Napi::TypeError::New(env, "buffer must be an ArrayBuffer").ThrowAsJavaScriptException();
    return false;
  }
  if (!ArgInt64(info, i + 1, "byteOffset", &offset) ||
      !ArgInt32(info, i + 2, "capacity", capacity)) {
    return false;
  }
  // Records are written as aligned 32-bit words: the offset must keep them aligned.
  if (offset < 0 || offset % 4 != 0 || *capacity < 1 ||
      static_cast<uint64_t>(offset) + static_cast<uint64_t>(*capacity) * sizeof(evp_record) >
          length) {
    Napi::RangeError::New(env, std::string(method) +
                                   ": byteOffset must be a multiple of 4 and capacity >= 1, "
                                   "with byteOffset + capacity * 12 within the buffer")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = reinterpret_cast<evp_record*>(static_cast<char*>(data) + offset);
  return true;
}

class Backend : public Napi::ObjectWrap<Backend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Backend",
                       {
                           InstanceAccessor<&Backend::Name>("name"),
                           InstanceAccessor<&Backend::SupportEdgeTrigger>("supportEdgeTrigger"),
                           InstanceAccessor<&Backend::Fd>("fd"),
                           InstanceMethod<&Backend::Add>("add"),
                           InstanceMethod<&Backend::Modify>("modify"),
                           InstanceMethod<&Backend::Remove>("remove"),
                           InstanceMethod<&Backend::Wait>("wait"),
                           InstanceMethod<&Backend::Close>("close"),
                           InstanceMethod<&Backend::StartWatching>("startWatching"),
                           InstanceMethod<&Backend::StopWatching>("stopWatching"),
                           InstanceMethod<&Backend::TakeBatch>("takeBatch"),
                           InstanceMethod<&Backend::Rearm>("rearm"),
                           InstanceMethod<&Backend::Ref>("ref"),
                           InstanceMethod<&Backend::Unref>("unref"),
                       });
  }

  // new Backend(name: string, maxFd: number)
  explicit Backend(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Backend>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      Napi::TypeError::New(env, "mechanism name must be a string").ThrowAsJavaScriptException();
      return;
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    module_ = FindModule(name);
    if (module_ == nullptr) {
      Napi::TypeError::New(env, "unknown mechanism: '" + name + "'").ThrowAsJavaScriptException();
      return;
    }
    int32_t max_fd = 0;
    if (!info[1].IsUndefined() && !ArgInt32(info, 1, "maxFd", &max_fd)) return;
    int err = 0;
    backend_ = module_->init(max_fd, &err);
    if (backend_ == nullptr) {
      SystemError(env, err, module_->init_syscall).ThrowAsJavaScriptException();
      return;
    }
    if (module_->snapshot != nullptr) {
      // Integrated mode's helper thread is woken through it. Made now, not at startWatching:
      // select needs it below FD_SETSIZE, and the fds opened later only go higher.
      wake_fd_ = CreateWakeFd();
      if (wake_fd_ < 0) {
        SystemError(env, -wake_fd_, "eventfd").ThrowAsJavaScriptException();
        Release();
      }
    }
  }

  // Not reached while watching (the Watcher holds this object), except at the environment's
  // teardown, whose cleanup hook has stopped the Watcher first.
  ~Backend() override { Release(); }

 private:
  void Release() {
    if (watcher_ != nullptr) watcher_->Stop();  // joins the helper: it uses backend_
    if (backend_ != nullptr) {
      module_->clean(backend_);
      backend_ = nullptr;
    }
    if (wake_fd_ >= 0) {
      close(wake_fd_);
      wake_fd_ = -1;
    }
  }

  // A change of the registered set, serialised with the helper thread while watching.
  template <typename Change>
  int Apply(Change change) {
    return watcher_ != nullptr ? watcher_->Apply(change) : change();
  }

  Napi::Value Name(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), module_->name);
  }

  Napi::Value SupportEdgeTrigger(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), module_->support_edge_trigger != 0);
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), backend_ ? module_->pollable_fd(backend_) : -1);
  }

  // add(fd, interest, gen) / modify(fd, interest, gen) -> 0 or -errno
  Napi::Value Register(const Napi::CallbackInfo& info,
                       int (*op)(evp_backend*, int, int, uint32_t)) {
    int32_t fd, interest;
    uint32_t gen;
    if (!ArgInt32(info, 0, "fd", &fd) || !ArgInt32(info, 1, "interest", &interest) ||
        !ArgUint32(info, 2, "gen", &gen)) {
      return Napi::Value();
    }
    int r = backend_ ? Apply([&] { return op(backend_, fd, interest, gen); }) : -EBADF;
    return Napi::Number::New(info.Env(), r);
  }

  Napi::Value Add(const Napi::CallbackInfo& info) { return Register(info, module_->add); }
  Napi::Value Modify(const Napi::CallbackInfo& info) { return Register(info, module_->modify); }

  // remove(fd) -> 0 or -errno
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    int32_t fd;
    if (!ArgInt32(info, 0, "fd", &fd)) return Napi::Value();
    int r = backend_ ? Apply([&] { return module_->remove(backend_, fd); }) : -EBADF;
    return Napi::Number::New(info.Env(), r);
  }

  // wait(timeoutMs, buffer: ArrayBuffer, byteOffset, capacity) -> records written, or -errno.
  // The hot path: one call per loop iteration, no JS object allocated but the result number.
  // While watching, only wait(0, ...) is allowed (-EBUSY otherwise): blocking would stall the
  // very loop that is meant to go on running.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeout;
    int32_t capacity;
    evp_record* out;
    if (!ArgTimeout(info, 0, &timeout) || !ArgRecords(info, 1, "wait", &out, &capacity)) {
      return Napi::Value();
    }
    if (backend_ == nullptr) return Napi::Number::New(env, -EBADF);
    if (watcher_ == nullptr) {
      return Napi::Number::New(env, module_->wait(backend_, timeout, out, capacity));
    }
    if (timeout != 0) return Napi::Number::New(env, -EBUSY);
    // poll's wait drops the fds it finds closed: a change of the set, as far as the helper knows.
    return Napi::Number::New(env, Apply([&] { return module_->wait(backend_, 0, out, capacity); }));
  }

  // close(): stops watching and releases the OS resources now; idempotent. Later calls return
  // -EBADF.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // startWatching(onReady: () => void): integrated mode. From now on onReady() is called, on
  // this thread and with nextTick and microtasks drained after it, whenever the backend has or
  // may have ready fds; it is expected to call takeBatch(), dispatch, then rearm(). Ref'd at
  // first. Throws when already watching, closed, or the OS refuses (SystemError shape).
  Napi::Value StartWatching(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "onReady must be a function").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (backend_ == nullptr) {
      SystemError(env, EBADF, "startWatching").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (watcher_ != nullptr) {
      Napi::Error::New(env, "startWatching: already watching; stopWatching() first")
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    int err = 0;
    const char* syscall = "startWatching";
    if (Watcher::Start(env, info.This(), info[0], module_, backend_, wake_fd_, &watcher_, &err,
                       &syscall) == nullptr) {
      SystemError(env, -err, syscall).ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return env.Undefined();
  }

  // stopWatching(): no onReady() after this, and blocking wait() works again. Idempotent.
  Napi::Value StopWatching(const Napi::CallbackInfo& info) {
    if (watcher_ != nullptr) watcher_->Stop();
    return info.Env().Undefined();
  }

  // takeBatch(buffer: ArrayBuffer, byteOffset, capacity) -> records written (0: none), or
  // -errno. Never blocks: epoll waits with a zero timeout; poll and select hand out what their
  // helper thread found, keeping what does not fit for the next call, or with nothing found
  // yet wait with a zero timeout too. Not watching: as wait(0, ...).
  Napi::Value TakeBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int32_t capacity;
    evp_record* out;
    if (!ArgRecords(info, 0, "takeBatch", &out, &capacity)) return Napi::Value();
    if (backend_ == nullptr) return Napi::Number::New(env, -EBADF);
    int n = watcher_ != nullptr ? watcher_->TakeBatch(out, capacity)
                                : module_->wait(backend_, 0, out, capacity);
    return Napi::Number::New(env, n);
  }

  // rearm(): the batch has been handled; poll and select may wait again (onReady() comes
  // again at once if records are still untaken). A no-op for epoll and when not watching.
  Napi::Value Rearm(const Napi::CallbackInfo& info) {
    if (watcher_ != nullptr) watcher_->Rearm();
    return info.Env().Undefined();
  }

  // ref() / unref(): whether watching keeps the process (or worker) alive, as for Node's
  // handles. No-ops when not watching; each startWatching() begins ref'd.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (watcher_ != nullptr) watcher_->SetRef(true);
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (watcher_ != nullptr) watcher_->SetRef(false);
    return info.Env().Undefined();
  }

  const evp_module* module_ = nullptr;
  evp_backend* backend_ = nullptr;
  int wake_fd_ = -1;            // poll, select: the helper thread's wake-up eventfd
  Watcher* watcher_ = nullptr;  // while watching; cleared by Watcher::Stop()
};

// mechanisms() -> [{ name, supportEdgeTrigger, available }] in order of preference.
Napi::Value Mechanisms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env, sizeof kModules / sizeof kModules[0]);
  uint32_t i = 0;
  for (const evp_module* m : kModules) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, m->name));
    o.Set("supportEdgeTrigger", Napi::Boolean::New(env, m->support_edge_trigger != 0));
    o.Set("available", Napi::Boolean::New(env, m->available() != 0));
    list.Set(i++, o);
  }
  return list;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mechanisms", Napi::Function::New(env, Mechanisms, "mechanisms"));
  exports.Set("FD_SETSIZE", Napi::Number::New(env, FD_SETSIZE));
  exports.Set("Backend", Backend::Define(env));
  RegisterFdOps(env, exports);
  RegisterSignals(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(evpoll, Init)
