{
  "targets": [
    {
      "target_name": "tsrun",
      "sources": ["native/addon.cc", "native/spawn.cc", "native/host.cc", "native/seccomp.cc"],
      "libraries": ["-lseccomp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"]
    },
    {
      "target_name": "tsrun-monitor",
      "type": "executable",
      "sources": ["native/monitor.cc"],
      "defines": ["_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Os", "-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti"],
      "ldflags": ["-static", "-s"]
    },
    {
      "target_name": "tsrun-init",
      "type": "executable",
      "sources": ["native/init.cc"],
      "defines": ["_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Os", "-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti"],
      "ldflags": ["-static", "-s"]
    },
    {
      "target_name": "tsrun-exec",
      "type": "executable",
      "sources": ["native/exec-helper.cc"],
      "cflags!": ["-fPIC", "-pthread"],
      "cflags_cc!": ["-fPIC", "-pthread"],
      "cflags_cc": ["-std=c++17", "-Os", "-Wall", "-Wextra", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fno-exceptions", "-fno-rtti", "-fno-asynchronous-unwind-tables", "-fno-pie"],
      "ldflags!": ["-pthread", "-rdynamic"],
      "ldflags": ["-nostdlib", "-static", "-no-pie", "-s", "-Wl,--build-id=none"]
    }
  ]
}
