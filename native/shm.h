// Memory shared between processes (a sealed memfd, mapped): shmCreate, shmSize and shmMap, added
// to the addon's exports.
#ifndef EVPOLL_SHM_H
#define EVPOLL_SHM_H
#include <napi.h>
void RegisterShm(Napi::Env env, Napi::Object exports);
#endif
