{
  "targets": [
    {
      # The pre-init hook: plain C, libc only, no Node or V8 symbols.
      "target_name": "gons_preinit",
      "type": "shared_library",
      "product_name": "gons_preinit",
      "sources": ["native/preinit.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fPIC"],
      "ldflags": ["-Wl,-z,now", "-Wl,-z,relro"]
    },
    {
      # The netns helper: one socket in a network namespace behind a user namespace (native/netns-helper.c).
      "target_name": "gons_netns_helper",
      "type": "executable",
      "sources": ["native/netns-helper.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror"],
      "ldflags": ["-Wl,-z,now", "-Wl,-z,relro"]
    },
    {
      # The addon: reads the hook's state and calls its root handoff.
      "target_name": "gons",
      "sources": ["native/addon.cc", "native/netns.cc"],
      "include_dirs": ["<!(node -e \"require('nan')\")"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-cast-function-type"],
      "libraries": ["-ldl"]
    }
  ]
}
