// Memory shared between processes, for evpoll/shm: a memfd that the master makes and hands to its
// children as it hands the listener, each process mapping it MAP_SHARED. Numbers in, numbers out:
// OS refusals come back as -errno (the JS layer names the syscall and builds the error). Nothing
// here runs per lock operation: the accept mutex is Atomics on the mapping, no call at all.
//
// shmCreate(bytes, name) -> fd | -errno
// shmSize(fd) -> bytes | -errno (-EINVAL: not a region, i.e. not a memfd sealed against shrinking)
// shmMap(fd, bytes) -> ArrayBuffer | -errno (-EINVAL: more bytes than the file holds)
// shmUnmap(buffer): detaches a mapping's ArrayBuffer (its finalizer then unmaps it)
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm.h"

namespace {

// Every region is sealed with these: its size is fixed for good. F_SEAL_SHRINK is the one that
// matters: a file shrunk under a mapping turns each access past its new end into SIGBUS, so a
// buggy (or hostile) child could otherwise crash the master by an ftruncate. shmSize refuses an
// fd without it.
constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// bytes rounded up to whole pages: the mapping's size is, and so is the file's.
size_t PageAligned(double bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t n = static_cast<size_t>(bytes);
  return (n + page - 1) / page * page;
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // The JS layer has checked both; these only keep a bad call from reaching the kernel.
  if (!info[0].IsNumber() || !info[1].IsString()) {
    Napi::TypeError::New(env, "shmCreate(bytes: number, name: string)").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1 && bytes <= 2147483648.0)) {
    Napi::RangeError::New(env, "bytes must be from 1 to 2^31").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const std::string name = info[1].As<Napi::String>().Utf8Value();
  // Close-on-exec: a child gets the region only when it is handed down on purpose (spawn's
  // stdio dup2s it into the child, clearing the flag there), never by accident.
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Napi::Number::New(env, -errno);
  // A fresh memfd reads as zeros: every lock word in it starts free.
  if (ftruncate(fd, static_cast<off_t>(PageAligned(bytes))) < 0 || fcntl(fd, F_ADD_SEALS, kSeals) < 0) {
    const int err = errno;
    close(fd);
    return Napi::Number::New(env, -err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Size(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  struct stat st;
  if (fstat(fd, &st) < 0) return Napi::Number::New(env, -errno);
  // F_GET_SEALS fails with EINVAL on anything but a memfd (or shmem file): a pipe, a socket, a
  // regular file that could be truncated under the mapping.
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return Napi::Number::New(env, -errno);
  if ((seals & F_SEAL_SHRINK) == 0 || st.st_size <= 0) return Napi::Number::New(env, -EINVAL);
  return Napi::Number::New(env, static_cast<double>(st.st_size));
}

void Unmapped(napi_env, void* data, void* hint) {
  munmap(data, reinterpret_cast<uintptr_t>(hint));
}

// The mapping belongs to the ArrayBuffer: unmapped by its finalizer, when it is collected or
// soon after it is detached (SharedRegion.close() detaches it: every view becomes empty, so no
// access can reach the unmapped pages).
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "shmMap(fd: number, bytes: number)").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const double bytes = info[1].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1 && bytes <= 2147483648.0)) {
    Napi::RangeError::New(env, "bytes must be from 1 to 2^31").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const size_t length = static_cast<size_t>(bytes);
  // Pages wholly past the file's end raise SIGBUS when touched: never map more than it holds
  // (the JS layer passes shmSize's answer; this keeps any other caller from crashing Node).
  struct stat st;
  if (fstat(fd, &st) < 0) return Napi::Number::New(env, -errno);
  if (static_cast<double>(st.st_size) < bytes) return Napi::Number::New(env, -EINVAL);
  void* data = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) return Napi::Number::New(env, -errno);
  // The region now owns the fd: close-on-exec, whoever handed it down (the dup2 of a spawn
  // clears the flag; Node sets it again at start-up, other programs need not).
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, data, length, Unmapped, reinterpret_cast<void*>(length), &buffer) != napi_ok) {
    munmap(data, length);  // not made: no finalizer will run for it
    Napi::Error::New(env, "evpoll: cannot make an ArrayBuffer over the shared mapping").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return Napi::Value(env, buffer);
}

// Detaching, not munmap here: every view on the buffer becomes empty at once, so no JS access can
// reach the pages after they are gone, and the finalizer stays the only place that unmaps.
// A buffer already detached (closed twice, or transferred away) is left alone.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool detached = false;
  if (!info[0].IsArrayBuffer() || napi_is_detached_arraybuffer(env, info[0], &detached) != napi_ok) {
    Napi::TypeError::New(env, "shmUnmap(buffer: ArrayBuffer)").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  if (!detached && napi_detach_arraybuffer(env, info[0]) != napi_ok) {
    Napi::Error::New(env, "evpoll: cannot detach the shared mapping's ArrayBuffer").ThrowAsJavaScriptException();
  }
  return Napi::Value();
}

}  // namespace

void RegisterShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmCreate", Napi::Function::New(env, Create, "shmCreate"));
  exports.Set("shmSize", Napi::Function::New(env, Size, "shmSize"));
  exports.Set("shmMap", Napi::Function::New(env, Map, "shmMap"));
  exports.Set("shmUnmap", Napi::Function::New(env, Unmap, "shmUnmap"));
}
