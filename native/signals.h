// Signals through self-pipes (PHP-FPM's fpm_signals.c): signalPipe, closeSignalPipe,
// watchSignal, unwatchSignal, pendingSignals and the SIGNALS map, added to the addon's exports.
#ifndef EVPOLL_SIGNALS_H
#define EVPOLL_SIGNALS_H
#include <napi.h>
void RegisterSignals(Napi::Env env, Napi::Object exports);
#endif
