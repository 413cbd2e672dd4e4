// fd helpers (pipe, socketpair, listen, accept, connect, shutdown, read, write, close, urgent data, pidfds) added to the addon's exports.
#ifndef EVPOLL_FDOPS_H
#define EVPOLL_FDOPS_H
#include <napi.h>
void RegisterFdOps(Napi::Env env, Napi::Object exports);
#endif
