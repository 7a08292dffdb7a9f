{
  "targets": [{
    "target_name": "iapp",
    "sources": [
      "native/binding.cc",
      "native/errors.cc",
      "native/sys.cc",
      "native/addr.cc",
      "native/poller_epoll.cc",
      "native/poller_kqueue.cc",
      "native/uv_glue.cc",
      "native/loop.cc",
      "native/listener.cc",
      "native/socket.cc",
      "native/sendfile.cc",
      "native/udp.cc",
      "native/inbox.cc",
      "native/handoff.cc",
      "native/timers.cc",
      "native/child.cc",
      "native/pool.cc",
      "native/file.cc",
      "native/beneath.cc",
      "native/uring.cc",
      "native/pipe.cc",
      "native/faults.cc",
      "native/live.cc",
      "native/conns.cc",
      "native/dialer.cc",
      "native/idle.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "MACOSX_DEPLOYMENT_TARGET": "11.0"
    },
    "conditions": [
      ["OS=='linux'", { "defines": ["IAPP_EPOLL=1"] }],
      ["OS=='mac' or OS=='freebsd'", { "defines": ["IAPP_KQUEUE=1"] }]
    ]
  }]
}
