{
  "variables": {
    # EVPOLL_SANITIZE=1 builds with AddressSanitizer and UBSan (the sanitizer run).
    "evpoll_sanitize%": "<!(node -p \"Number(process.env.EVPOLL_SANITIZE === '1')\")"
  },
  "targets": [
    {
      "target_name": "evpoll",
      "sources": [
        "native/addon.cc",
        "native/fdops.cc",
        "native/shm.cc",
        "native/signals.cc",
        "native/integrate.cc",
        "native/epoll.c",
        "native/poll.c",
        "native/select.c"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        # A worker_thread being terminated refuses napi_throw: without this, a method called
        # then (onReady's takeBatch, say) fails napi_unwrap and node-addon-api aborts the
        # whole process trying to throw about it.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=gnu++17"],
      "configurations": {
        # node-gyp's common.gypi asks for -O3; the last -O wins.
        "Release": { "cflags": ["-O2"] }
      },
      "conditions": [
        ["evpoll_sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
