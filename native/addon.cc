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
#include "shm.h"
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

// Argument readers over raw N-API values: false (with a TypeError pending) when the argument
// is not a number. `what` is the whole message ("fd must be a number").
bool ArgInt32(napi_env env, napi_value v, const char* what, int32_t* out) {
  if (napi_get_value_int32(env, v, out) == napi_ok) return true;
  napi_throw_type_error(env, nullptr, what);
  return false;
}

bool ArgUint32(napi_env env, napi_value v, const char* what, uint32_t* out) {
  if (napi_get_value_uint32(env, v, out) == napi_ok) return true;
  napi_throw_type_error(env, nullptr, what);
  return false;
}

// timeoutMs: a negative number or Infinity waits forever. A fraction rounds up, so that a
// timer 0.3 ms away does not become a zero timeout and a busy loop until it is due.
bool ArgTimeout(napi_env env, napi_value v, int* out) {
  double ms;
  if (napi_get_value_double(env, v, &ms) != napi_ok || ms != ms) {
    napi_throw_type_error(env, nullptr, "timeoutMs must be a number");
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

// (buffer: ArrayBuffer, byteOffset, capacity) at argv[0..2]: where records go. False with a
// TypeError or RangeError pending when they do not describe room inside the buffer.
bool ArgRecords(napi_env env, const napi_value* argv, const char* range_message,
                evp_record** out, int32_t* capacity) {
  int64_t offset;
  void* data;
  size_t length;
  // One call both checks the type and fetches the memory (napi_invalid_arg otherwise).
  if (napi_get_arraybuffer_info(env, argv[0], &data, &length) != napi_ok) {
    napi_throw_type_error(env, nullptr, "buffer must be an ArrayBuffer");
    return false;
  }
  // int64, not int32: a byteOffset of 2^32 + 4 must be refused, not wrapped round to 4. (An
  // int32 in a Smi takes the same fast path either way.)
  if (napi_get_value_int64(env, argv[1], &offset) != napi_ok) {
    napi_throw_type_error(env, nullptr, "byteOffset must be a number");
    return false;
  }
  if (!ArgInt32(env, argv[2], "capacity must be a number", capacity)) return false;
  // Records are written as aligned 32-bit words: the offset must keep them aligned.
  if (offset < 0 || offset % 4 != 0 || *capacity < 1 ||
      static_cast<uint64_t>(offset) + static_cast<uint64_t>(*capacity) * sizeof(evp_record) >
          length) {
    napi_throw_range_error(env, nullptr, range_message);
    return false;
  }
  *out = reinterpret_cast<evp_record*>(static_cast<char*>(data) + offset);
  return true;
}

napi_value Int32(napi_env env, int32_t v) {
  napi_value out;  // a Smi: no heap number allocated
  napi_create_int32(env, v, &out);
  return out;
}

napi_value Undefined(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

// What a Backend's methods work on. Reference-counted, because it is shared between the
// Backend object (one reference, dropped by its destructor, which also releases the OS
// resources) and the Backend's own-property hot functions (one each, dropped by each
// function's finalizer): a function that outlives its Backend finds backend == nullptr and
// answers -EBADF, as after close(). Only ever touched on the thread of the env that made it
// (finalizers included), so the count need not be atomic; the integrated mode's helper thread
// has its own pointers (Watcher).
struct State {
  int refs = 1;
  const evp_module* module = nullptr;
  evp_backend* backend = nullptr;
  int wake_fd = -1;            // poll, select: the helper thread's wake-up eventfd
  Watcher* watcher = nullptr;  // while watching; cleared by Watcher::Stop()
};

void DropRef(State* s) {
  if (--s->refs == 0) delete s;
}

// Stops watching and releases the OS resources; idempotent.
void Release(State* s) {
  if (s->watcher != nullptr) s->watcher->Stop();  // joins the helper: it uses backend
  if (s->backend != nullptr) {
    s->module->clean(s->backend);
    s->backend = nullptr;
  }
  if (s->wake_fd >= 0) {
    close(s->wake_fd);
    s->wake_fd = -1;
  }
}

// A change of the registered set, serialised with the helper thread while watching.
template <typename Change>
int Apply(State* s, Change change) {
  return s->watcher != nullptr ? s->watcher->Apply(change) : change();
}

// The hot methods: add, modify, remove, wait, takeBatch, rearm. Each Backend gets its own
// functions for them (InstallHotMethods), with its State as their data: napi_get_cb_info hands
// over the arguments and the State in one call, with no napi_unwrap (a private-symbol property
// lookup, ~800 instructions a call) and no Napi::CallbackInfo. There are no prototype versions
// for a subclass to override or reach through super: the loop is their only caller. argv
// holds as many values as the method takes, undefined for those not passed; nullptr is
// returned with an exception pending.
template <size_t N>
State* Args(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  size_t argc = N;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);  // pads argv with undefined
  return static_cast<State*>(data);
}

// add(fd, interest, gen) / modify(fd, interest, gen) -> 0 or -errno
napi_value Register(napi_env env, napi_callback_info info, bool modify) {
  napi_value argv[3];
  State* s = Args(env, info, argv);
  int32_t fd, interest;
  uint32_t gen;
  if (!ArgInt32(env, argv[0], "fd must be a number", &fd) ||
      !ArgInt32(env, argv[1], "interest must be a number", &interest) ||
      !ArgUint32(env, argv[2], "gen must be a number", &gen)) {
    return nullptr;
  }
  if (s->backend == nullptr) return Int32(env, -EBADF);
  auto op = modify ? s->module->modify : s->module->add;
  return Int32(env, Apply(s, [&] { return op(s->backend, fd, interest, gen); }));
}

napi_value Add(napi_env env, napi_callback_info info) { return Register(env, info, false); }

napi_value Modify(napi_env env, napi_callback_info info) { return Register(env, info, true); }

// remove(fd) -> 0 or -errno
napi_value Remove(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  State* s = Args(env, info, argv);
  int32_t fd;
  if (!ArgInt32(env, argv[0], "fd must be a number", &fd)) return nullptr;
  if (s->backend == nullptr) return Int32(env, -EBADF);
  return Int32(env, Apply(s, [&] { return s->module->remove(s->backend, fd); }));
}

// wait(timeoutMs, buffer: ArrayBuffer, byteOffset, capacity) -> records written, or -errno.
// The hot path: one call per loop iteration, no JS object allocated (the result is a Smi).
// While watching, only wait(0, ...) is allowed (-EBUSY otherwise): blocking would stall the
// very loop that is meant to go on running.
napi_value Wait(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  State* s = Args(env, info, argv);
  int timeout;
  int32_t capacity;
  evp_record* out;
  if (!ArgTimeout(env, argv[0], &timeout) ||
      !ArgRecords(env, argv + 1,
                  "wait: byteOffset must be a multiple of 4 and capacity >= 1, "
                  "with byteOffset + capacity * 12 within the buffer",
                  &out, &capacity)) {
    return nullptr;
  }
  if (s->backend == nullptr) return Int32(env, -EBADF);
  if (s->watcher == nullptr) return Int32(env, s->module->wait(s->backend, timeout, out, capacity));
  if (timeout != 0) return Int32(env, -EBUSY);
  // poll's wait drops the fds it finds closed: a change of the set, as far as the helper knows.
  return Int32(env, Apply(s, [&] { return s->module->wait(s->backend, 0, out, capacity); }));
}

// takeBatch(buffer: ArrayBuffer, byteOffset, capacity) -> records written (0: none), or
// -errno. Never blocks: epoll waits with a zero timeout; poll and select hand out what their
// helper thread found, keeping what does not fit for the next call, or with nothing found
// yet wait with a zero timeout too. Not watching: as wait(0, ...).
napi_value TakeBatch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  State* s = Args(env, info, argv);
  int32_t capacity;
  evp_record* out;
  if (!ArgRecords(env, argv,
                  "takeBatch: byteOffset must be a multiple of 4 and capacity >= 1, "
                  "with byteOffset + capacity * 12 within the buffer",
                  &out, &capacity)) {
    return nullptr;
  }
  if (s->backend == nullptr) return Int32(env, -EBADF);
  int n = s->watcher != nullptr ? s->watcher->TakeBatch(out, capacity)
                                : s->module->wait(s->backend, 0, out, capacity);
  return Int32(env, n);
}

// rearm(): the batch has been handled; poll and select may wait again (onReady() comes
// again at once if records are still untaken). A no-op for epoll and when not watching.
napi_value Rearm(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
  State* s = static_cast<State*>(data);
  if (s->watcher != nullptr) s->watcher->Rearm();
  return Undefined(env);
}

const struct {
  const char* name;
  napi_callback cb;
} kHot[] = {
    {"add", Add},   {"modify", Modify},       {"remove", Remove},
    {"wait", Wait}, {"takeBatch", TakeBatch}, {"rearm", Rearm},
};

void OnFunctionGone(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  DropRef(static_cast<State*>(data));
}

// Gives `self` its own add/modify/remove/wait/takeBatch/rearm: functions whose data is the
// State, each holding a reference to it until the function is collected. False (with an
// exception pending, if the env can still take one) when a function cannot be made: the
// constructor then fails.
bool InstallHotMethods(napi_env env, napi_value self, State* s) {
  napi_property_descriptor props[sizeof kHot / sizeof kHot[0]];
  size_t n = 0;
  for (const auto& hot : kHot) {
    napi_value fn;
    if (napi_create_function(env, hot.name, NAPI_AUTO_LENGTH, hot.cb, s, &fn) != napi_ok ||
        napi_add_finalizer(env, fn, s, OnFunctionGone, nullptr, nullptr) != napi_ok) {
      break;  // a function without a finalizer is never installed: no reference needed
    }
    s->refs++;
    // As a class method: writable and configurable, not enumerable.
    props[n++] = {hot.name, nullptr, nullptr, nullptr, nullptr, fn, napi_default_method,
                  nullptr};
  }
  if (n == sizeof kHot / sizeof kHot[0] &&
      napi_define_properties(env, self, n, props) == napi_ok) {
    return true;
  }
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
    napi_throw_error(env, nullptr, "Backend: could not make its methods");
  }
  return false;
}

class Backend : public Napi::ObjectWrap<Backend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Backend",
                       {
                           InstanceAccessor<&Backend::Name>("name"),
                           InstanceAccessor<&Backend::SupportEdgeTrigger>("supportEdgeTrigger"),
                           InstanceAccessor<&Backend::Fd>("fd"),
                           InstanceMethod<&Backend::Close>("close"),
                           InstanceMethod<&Backend::StartWatching>("startWatching"),
                           InstanceMethod<&Backend::StopWatching>("stopWatching"),
                           InstanceMethod<&Backend::Ref>("ref"),
                           InstanceMethod<&Backend::Unref>("unref"),
                       });
  }

  // new Backend(name: string, maxFd: number)
  explicit Backend(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Backend>(info), s_(new State) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      Napi::TypeError::New(env, "mechanism name must be a string").ThrowAsJavaScriptException();
      return;
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    s_->module = FindModule(name);
    if (s_->module == nullptr) {
      Napi::TypeError::New(env, "unknown mechanism: '" + name + "'").ThrowAsJavaScriptException();
      return;
    }
    int32_t max_fd = 0;
    if (!info[1].IsUndefined() && !ArgInt32(env, info[1], "maxFd must be a number", &max_fd)) {
      return;
    }
    int err = 0;
    s_->backend = s_->module->init(max_fd, &err);
    if (s_->backend == nullptr) {
      SystemError(env, err, s_->module->init_syscall).ThrowAsJavaScriptException();
      return;
    }
    if (s_->module->needs_helper_thread) {
      // Integrated mode's helper thread is woken through it. Made now, not at startWatching:
      // select needs it below FD_SETSIZE, and the fds opened later only go higher.
      s_->wake_fd = CreateWakeFd();
      if (s_->wake_fd < 0) {
        SystemError(env, -s_->wake_fd, "eventfd").ThrowAsJavaScriptException();
        Release(s_);
        return;
      }
    }
    // On failure the constructor throws, and the destructor releases what was made.
    InstallHotMethods(env, info.This(), s_);
  }

  // Not reached while watching (the Watcher holds this object), except at the environment's
  // teardown, whose cleanup hook has stopped the Watcher first. The State lives on while one
  // of the own-property functions does.
  ~Backend() override {
    Release(s_);
    DropRef(s_);
  }

 private:
  Napi::Value Name(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), s_->module->name);
  }

  Napi::Value SupportEdgeTrigger(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), s_->module->support_edge_trigger != 0);
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), s_->backend ? s_->module->pollable_fd(s_->backend) : -1);
  }

  // close(): stops watching and releases the OS resources now; idempotent. Later calls return
  // -EBADF.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release(s_);
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
    if (s_->backend == nullptr) {
      SystemError(env, EBADF, "startWatching").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    if (s_->watcher != nullptr) {
      Napi::Error::New(env, "startWatching: already watching; stopWatching() first")
          .ThrowAsJavaScriptException();
      return Napi::Value();
    }
    int err = 0;
    const char* syscall = "startWatching";
    // The Watcher holds this object (so this State) until it is stopped.
    if (Watcher::Start(env, info.This(), info[0], s_->module, s_->backend, s_->wake_fd,
                       &s_->watcher, &err, &syscall) == nullptr) {
      SystemError(env, -err, syscall).ThrowAsJavaScriptException();
      return Napi::Value();
    }
    return env.Undefined();
  }

  // stopWatching(): no onReady() after this, and blocking wait() works again. Idempotent.
  Napi::Value StopWatching(const Napi::CallbackInfo& info) {
    if (s_->watcher != nullptr) s_->watcher->Stop();
    return info.Env().Undefined();
  }

  // ref() / unref(): whether watching keeps the process (or worker) alive, as for Node's
  // handles. No-ops when not watching; each startWatching() begins ref'd.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (s_->watcher != nullptr) s_->watcher->SetRef(true);
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (s_->watcher != nullptr) s_->watcher->SetRef(false);
    return info.Env().Undefined();
  }

  State* s_;
};

// mechanisms() -> [{ name, supportEdgeTrigger, available, supportExclusive, fdLimit,
// helperThread, syscalls: { add, wait } }] in order of preference: the module struct's
// capabilities, so that JS never decides by name. fdLimit is null when there is none.
Napi::Value Mechanisms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env, sizeof kModules / sizeof kModules[0]);
  uint32_t i = 0;
  for (const evp_module* m : kModules) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, m->name));
    o.Set("supportEdgeTrigger", Napi::Boolean::New(env, m->support_edge_trigger != 0));
    o.Set("available", Napi::Boolean::New(env, m->available() != 0));
    o.Set("supportExclusive", Napi::Boolean::New(env, m->support_exclusive != 0));
    o.Set("fdLimit", m->fd_limit > 0 ? Napi::Number::New(env, m->fd_limit) : env.Null());
    o.Set("helperThread", Napi::Boolean::New(env, m->needs_helper_thread != 0));
    Napi::Object syscalls = Napi::Object::New(env);
    syscalls.Set("add", Napi::String::New(env, m->add_syscall));
    syscalls.Set("wait", Napi::String::New(env, m->wait_syscall));
    o.Set("syscalls", syscalls);
    list.Set(i++, o);
  }
  return list;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mechanisms", Napi::Function::New(env, Mechanisms, "mechanisms"));
  exports.Set("FD_SETSIZE", Napi::Number::New(env, FD_SETSIZE));
  exports.Set("Backend", Backend::Define(env));
  RegisterFdOps(env, exports);
  RegisterShm(env, exports);
  RegisterSignals(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(evpoll, Init)
