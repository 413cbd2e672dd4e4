// Thin fd helpers for evpoll/net and the tests: pipes, socketpairs, nonblocking listen/accept,
// connect/shutdown, read/write/close, TCP urgent data, pidfds. Numbers in, numbers out: OS
// refusals are returned as -errno (EAGAIN too, so a caller polling a nonblocking fd never pays
// for an exception); the JS layer decides.
#include <napi.h>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD static_cast<idtype_t>(3)  // glibc < 2.36; the kernel's number since 5.4
#endif

#include "fdops.h"

namespace {

int32_t Int(const Napi::CallbackInfo& info, size_t i, int32_t fallback = -1) {
  int32_t v;
  return napi_get_value_int32(info.Env(), info[i], &v) == napi_ok ? v : fallback;
}

Napi::Value Pair(Napi::Env env, int r, const int fds[2]) {
  if (r < 0) return Napi::Number::New(env, -errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

// pipe() -> [readFd, writeFd] | -errno; both nonblocking and close-on-exec.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  return Pair(info.Env(), pipe2(fds, O_NONBLOCK | O_CLOEXEC), fds);
}

// socketpair() -> [a, b] | -errno: AF_UNIX stream sockets, nonblocking and close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  return Pair(info.Env(), socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), fds);
}

// read/write/close are the hot path of every callback that drains an fd, so they use N-API
// directly: node-addon-api's CallbackInfo and value wrappers cost about 0.3 µs a call here,
// a quarter of the syscall they wrap.

// The int32 argument i, or `fallback` when it is absent, undefined or not a number.
int32_t RawInt(napi_env env, size_t argc, napi_value* argv, size_t i, int32_t fallback) {
  int32_t v;
  return i < argc && napi_get_value_int32(env, argv[i], &v) == napi_ok ? v : fallback;
}

napi_value RawInt32(napi_env env, int32_t v) {
  napi_value out;  // a Smi: no heap number allocated
  napi_create_int32(env, v, &out);
  return out;
}

// One read(2) or write(2) of `count` bytes at `data`, retried on EINTR: bytes moved (0 at EOF)
// or -errno, as a Smi. A pipe's EPIPE on write also raises SIGPIPE, which Node ignores. Linux
// moves at most 0x7ffff000 bytes a call: the count fits an int32.
napi_value MoveBytes(napi_env env, bool writing, int fd, uint8_t* data, size_t count) {
  ssize_t n;
  do n = writing ? write(fd, data, count) : read(fd, data, count);
  while (n < 0 && errno == EINTR);
  return RawInt32(env, n < 0 ? -errno : static_cast<int32_t>(n));
}

// read(fd, buffer, offset = 0, length = rest) -> bytes | 0 at EOF | -errno (EAGAIN included)
// write(fd, buffer, offset = 0, length = rest) -> bytes | -errno (EAGAIN included)
//
// buffer is the caller's Uint8Array itself. (Passing its ArrayBuffer and byteOffset instead,
// for the cheaper napi_get_arraybuffer_info, costs more than it saves: on Node 20 the JS
// `view.buffer` getter is a C++ builtin, ~450 instructions an access in optimized code against
// ~260 for napi_get_typedarray_info.) An fd that is not a number reads as -1 (-EBADF), an
// offset that is not one as 0, a length that is not one or is negative as the rest of the
// buffer; what would reach outside the view throws (a RangeError) whatever the caller checked.
napi_value Transfer(napi_env env, napi_callback_info info, bool writing) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t size;
  void* p;
  // No ArrayBuffer or byte offset asked for: the data pointer already has the offset added.
  if (argc < 2 ||
      napi_get_typedarray_info(env, argv[1], &type, &size, &p, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "buffer must be a Uint8Array or Buffer");
    return nullptr;
  }
  int32_t fd = RawInt(env, argc, argv, 0, -1);
  // int64, not int32: a view may be longer than 2 GiB, and an offset beyond 2^31 must not
  // wrap round.
  int64_t offset = 0, count = -1;
  if (argc > 2 && napi_get_value_int64(env, argv[2], &offset) != napi_ok) offset = 0;
  if (argc > 3 && napi_get_value_int64(env, argv[3], &count) != napi_ok) count = -1;
  if (offset < 0 || static_cast<uint64_t>(offset) > size) {
    napi_throw_range_error(env, nullptr, "offset/length outside the buffer");
    return nullptr;
  }
  if (count < 0) count = static_cast<int64_t>(size - static_cast<uint64_t>(offset));
  if (static_cast<uint64_t>(count) > size - static_cast<uint64_t>(offset)) {
    napi_throw_range_error(env, nullptr, "offset/length outside the buffer");
    return nullptr;
  }
  return MoveBytes(env, writing, fd, static_cast<uint8_t*>(p) + offset, static_cast<size_t>(count));
}

napi_value Read(napi_env env, napi_callback_info info) { return Transfer(env, info, false); }
napi_value Write(napi_env env, napi_callback_info info) { return Transfer(env, info, true); }

// Registered ("fixed") buffers, as io_uring has them: memory allocated here once, shown to JS
// as an external ArrayBuffer that is passed back with each read or write. A call then costs
// napi_get_arraybuffer_info instead of napi_get_typedarray_info (the largest part of
// read/write above): a pointer and a length read out of the ArrayBuffer, three numbers to
// convert and a bounds check before the syscall.
//
// fixedBuffer(size) -> ArrayBuffer | -ENOMEM
// fixedRead(memory, fd, offset, length) -> bytes | 0 at EOF | -errno
// fixedWrite(memory, fd, offset, length) -> bytes | -errno
//
// One read and one write function for every buffer, not a pair bound to each: a call site
// that sees several JS functions goes megamorphic, and V8 then reaches a native function
// through its generic call path (~0.2 us a call here) instead of calling it directly.
//
// The memory is freed by the ArrayBuffer's finalizer: when it is collected, or at once if it
// is detached (%ArrayBufferDetach); ArrayBuffer.prototype.transfer hands the memory, and the
// finalizer, to the new ArrayBuffer. Node does not hand an external ArrayBuffer's memory to
// another thread (postMessage and structuredClone copy it).

// Bytes of fixed buffers not yet freed, in every thread: what the leak tests watch.
std::atomic<int64_t> fixed_bytes{0};

void FixedGone(napi_env, void* data, void* hint) {
  fixed_bytes -= static_cast<int64_t>(reinterpret_cast<uintptr_t>(hint));
  free(data);
}

// read/write(memory, fd, offset, length): numbers converted as ToInt32 does (the JS wrapper has
// refused anything but exact integers in range before: a fraction or 2^32 + 1 would otherwise
// wrap round to some other int32). Whatever they convert to, nothing outside the memory is
// touched: a negative offset or length, or a range past the end (a detached ArrayBuffer has
// none), throws a RangeError; a memory that is not an ArrayBuffer, or a value that is not a
// number, a TypeError. Any ArrayBuffer will do: the bounds are its own.
template <bool writing>
napi_value FixedTransfer(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];  // napi_get_cb_info fills what was not passed with undefined
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* p;
  size_t size;
  if (napi_get_arraybuffer_info(env, argv[0], &p, &size) != napi_ok) {
    napi_throw_type_error(env, nullptr, "memory must be an ArrayBuffer");
    return nullptr;
  }
  int32_t fd, offset, count;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[2], &offset) != napi_ok ||
      napi_get_value_int32(env, argv[3], &count) != napi_ok) {
    napi_throw_type_error(env, nullptr, "fd, offset and length must be numbers");
    return nullptr;
  }
  if (offset < 0 || count < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(count) > size) {
    napi_throw_range_error(env, nullptr, "offset/length outside the buffer");
    return nullptr;
  }
  return MoveBytes(env, writing, fd, static_cast<uint8_t*>(p) + offset, static_cast<size_t>(count));
}

napi_value FixedBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  double size;
  if (napi_get_value_double(env, arg, &size) != napi_ok) {
    napi_throw_type_error(env, nullptr, "size must be a number");
    return nullptr;
  }
  if (!(size >= 1 && size <= INT32_MAX && size == static_cast<double>(static_cast<int32_t>(size)))) {
    napi_throw_range_error(env, nullptr, "size must be an integer from 1 to 2147483647");
    return nullptr;
  }
  // Zeroed, as a new ArrayBuffer is; a large calloc comes straight from mmap, already zero.
  auto* data = calloc(static_cast<size_t>(size), 1);
  if (data == nullptr) return RawInt32(env, -ENOMEM);
  auto bytes = static_cast<uintptr_t>(size);
  fixed_bytes += static_cast<int64_t>(bytes);
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, data, bytes, FixedGone, reinterpret_cast<void*>(bytes), &buffer) != napi_ok) {
    FixedGone(env, data, reinterpret_cast<void*>(bytes));  // not made: no finalizer will run for it
    return nullptr;
  }
  return buffer;
}

// fixedBytes() -> bytes held by fixed buffers, in all threads (for the leak tests).
napi_value FixedBytes(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_double(env, static_cast<double>(fixed_bytes.load()), &out);
  return out;
}

// close(fd) -> 0 | -errno. EINTR is not retried: on Linux the fd is gone whatever close says.
napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int r = close(RawInt(env, argc, argv, 0, -1));
  return RawInt32(env, r < 0 && errno != EINTR ? -errno : 0);
}

// TCP urgent (out-of-band) data: one byte a connection, which the peer's poll reports as
// POLLPRI (EV.PRI) until it is read. Numbers only, as read/write.
//
// sendUrgent(fd, byte) -> 1 | -errno. MSG_NOSIGNAL: a peer that is gone answers EPIPE, here as
// for a pipe, without raising SIGPIPE.
napi_value SendUrgent(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int fd = RawInt(env, argc, argv, 0, -1);
  auto byte = static_cast<uint8_t>(RawInt(env, argc, argv, 1, 0));
  ssize_t n;
  do n = send(fd, &byte, 1, MSG_OOB | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return RawInt32(env, n < 0 ? -errno : static_cast<int32_t>(n));
}

// readUrgent(fd) -> the byte 0..255 | -errno. Linux answers EINVAL when no urgent byte is pending
// (none sent, already read, or SO_OOBINLINE) and EAGAIN when the urgent mark has arrived but its
// byte not yet; recv's 0 (the peer closed before the byte came: it never will) is ENOTCONN here,
// since 0 is also a byte.
napi_value ReadUrgent(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int fd = RawInt(env, argc, argv, 0, -1);
  uint8_t byte;
  ssize_t n;
  do n = recv(fd, &byte, 1, MSG_OOB);
  while (n < 0 && errno == EINTR);
  return RawInt32(env, n < 0 ? -errno : n == 0 ? -ENOTCONN : byte);
}

// An IPv4 or IPv6 literal and a port as a sockaddr; false for anything else (a name to resolve,
// an IPv6 scope "%eth0").
bool ParseAddress(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len) {
  auto* in4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in4;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in6;
    return true;
  }
  return false;
}

// listen(host, port, backlog, reusePort) -> fd | -errno. IPv4 or IPv6 literal host;
// nonblocking, close-on-exec, SO_REUSEADDR (and SO_REUSEPORT on request).
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "127.0.0.1";
  int port = Int(info, 1, 0), backlog = Int(info, 2, 511);
  bool reuse_port = info[3].ToBoolean();
  sockaddr_storage ss{};
  socklen_t len;
  if (!ParseAddress(host, port, &ss, &len)) return Napi::Number::New(env, -EINVAL);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    return Napi::Number::New(env, -err);
  }
  return Napi::Number::New(env, fd);
}

// connect(host, port) -> fd | -errno. A nonblocking, close-on-exec TCP socket with connect()
// begun: EINPROGRESS (Linux's answer even on loopback, for a port with no listener too: the
// refusal comes as SO_ERROR) and an immediate success both give
// the fd; any other refusal closes it. -EINVAL: host is not a literal, or the kernel refused
// the address (an IPv6 link-local one, which needs a scope).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return Napi::Number::New(env, -EINVAL);
  sockaddr_storage ss{};
  socklen_t len;
  if (!ParseAddress(info[0].As<Napi::String>().Utf8Value(), Int(info, 1, 0), &ss, &len)) return Napi::Number::New(env, -EINVAL);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  // A nonblocking connect never sleeps, so it is never interrupted (no EINTR to retry).
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return Napi::Number::New(env, -err);
  }
  return Napi::Number::New(env, fd);
}

// connectResult(fd) -> 0 | -errno: how a connect begun on fd went. getpeername answers for a
// connected socket, whatever poll says (its send buffer may be full). For one not connected,
// poll tells whether the attempt is over (in SYN_SENT a socket is not writable; after a failure,
// or with no attempt, it is), and SO_ERROR, which the kernel clears as it reports it, says how it
// failed, once; after that, ENOTCONN.
Napi::Value ConnectResult(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Int(info, 0);
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) return Napi::Number::New(env, 0);
  if (errno != ENOTCONN) return Napi::Number::New(env, -errno);  // EBADF, ENOTSOCK
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, 0) == 0) {
    // A listener is never writable either, and never connects.
    int listening = 0;
    socklen_t size = sizeof listening;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size);
    return Napi::Number::New(env, listening ? -ENOTCONN : -EINPROGRESS);
  }
  int err = 0;
  socklen_t size = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0) return Napi::Number::New(env, -errno);
  if (err != 0) return Napi::Number::New(env, -err);
  // Asked again: the connection may have been made between the first look and the poll.
  len = sizeof ss;
  return Napi::Number::New(env, getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? 0 : -ENOTCONN);
}

// shutdown(fd) -> 0 | -errno: shutdown(SHUT_WR), a half-close. The peer reads what was sent,
// then EOF, and may still write back; writes here then fail with EPIPE.
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  int r = shutdown(Int(info, 0), SHUT_WR);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// listenQueue(fd, out: Int32Array(2)) -> 0 | -errno. TCP_INFO on a listening socket: Linux
// reports the connections waiting in its accept queue as tcpi_unacked and the queue's limit
// (the backlog listen() was given, capped at net.core.somaxconn) as tcpi_sacked. A socket that
// is not listening is EINVAL: those two fields mean something else there.
Napi::Value ListenQueue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Int(info, 0);
  if (!info[1].IsTypedArray()) return Napi::Number::New(env, -EINVAL);
  auto out = info[1].As<Napi::Int32Array>();
  if (out.ElementLength() < 2) return Napi::Number::New(env, -EINVAL);
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return Napi::Number::New(env, -errno);
  if (ti.tcpi_state != TCP_LISTEN) return Napi::Number::New(env, -EINVAL);
  out[0] = static_cast<int32_t>(ti.tcpi_unacked);
  out[1] = static_cast<int32_t>(ti.tcpi_sacked);
  return Napi::Number::New(env, 0);
}

// accept(fd, out: Int32Array, max) -> count written | -errno when the first accept fails.
// Drains up to max connections per readiness (lighttpd's batch); ECONNABORTED is skipped (the
// peer gave up before we got to it). An error after some fds were taken is left for the next
// call, which will meet it again.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_typedarray_type type;
  size_t count, offset;
  napi_value ab;
  void* p;
  if (napi_get_typedarray_info(env, info[1], &type, &count, &p, &ab, &offset) != napi_ok || type != napi_int32_array) {
    Napi::TypeError::New(env, "out must be an Int32Array").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  int listener = Int(info, 0);
  size_t max = static_cast<size_t>(Int(info, 2, static_cast<int32_t>(count)));
  if (max > count) max = count;
  auto* out = static_cast<int32_t*>(p);
  size_t n = 0;
  while (n < max) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      out[n++] = fd;
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (n == 0) return Napi::Number::New(env, -errno);
    break;
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// localPort(fd) -> port | -errno
Napi::Value LocalPort(const Napi::CallbackInfo& info) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(Int(info, 0), reinterpret_cast<sockaddr*>(&ss), &len) < 0) return Napi::Number::New(info.Env(), -errno);
  int port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return Napi::Number::New(info.Env(), port);
}

// setNoDelay(fd, on) -> 0 | -errno
Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
  int on = info[1].ToBoolean() ? 1 : 0;
  int r = setsockopt(Int(info, 0), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// pidfdOpen(pid) -> fd | -errno: a pidfd (Linux >= 5.3), readable once the process has exited.
// The kernel makes it close-on-exec. ESRCH: no such process (or already reaped).
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  long fd = syscall(SYS_pidfd_open, static_cast<pid_t>(Int(info, 0)), 0);
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : static_cast<double>(fd));
}

// pidfdExit(fd) -> [code, null] or [null, signo] once the child has exited, null while it runs,
// or -errno (ECHILD: not our child, or already reaped by someone else).
Napi::Value PidfdExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  siginfo_t si{};  // si_pid stays 0 when WNOHANG finds nothing
  int r;
  // WNOWAIT: look, do not reap. libuv reaps its children with waitpid(pid); one reaped behind
  // its back never gets its 'exit', and its handle keeps the process alive for ever.
  do r = waitid(P_PIDFD, static_cast<id_t>(Int(info, 0)), &si, WEXITED | WNOHANG | WNOWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::Number::New(env, -errno);
  if (si.si_pid == 0) return env.Null();
  Napi::Array out = Napi::Array::New(env, 2);
  bool exited = si.si_code == CLD_EXITED;
  out.Set(0u, exited ? Napi::Value(Napi::Number::New(env, si.si_status)) : env.Null());
  out.Set(1u, exited ? env.Null() : Napi::Value(Napi::Number::New(env, si.si_status)));
  return out;
}

}  // namespace

void RegisterFdOps(Napi::Env env, Napi::Object exports) {
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  for (auto [name, fn] : {std::pair{"read", Read}, std::pair{"write", Write}, std::pair{"close", Close},
                          std::pair{"fixedBuffer", FixedBuffer}, std::pair{"fixedBytes", FixedBytes},
                          std::pair{"fixedRead", FixedTransfer<false>}, std::pair{"fixedWrite", FixedTransfer<true>},
                          std::pair{"sendUrgent", SendUrgent}, std::pair{"readUrgent", ReadUrgent}}) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("connectResult", Napi::Function::New(env, ConnectResult, "connectResult"));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown, "shutdown"));
  exports.Set("localPort", Napi::Function::New(env, LocalPort, "localPort"));
  exports.Set("listenQueue", Napi::Function::New(env, ListenQueue, "listenQueue"));
  exports.Set("setNoDelay", Napi::Function::New(env, SetNoDelay, "setNoDelay"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdExit", Napi::Function::New(env, PidfdExit, "pidfdExit"));
}
