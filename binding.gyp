{
  "targets": [
    {
      # The pre-init hook: plain C, libc only, no Node or V8 symbols.
      "target_name": "gons_preinit",
      "type": "shared_library",
      "product_name": "gons_preinit",
      # One unit per concern; the constructor (native/preinit.c) runs them as stages (docs/hook.md).
      "sources": [
        "native/preinit.c", "native/preinit-state.c", "native/preinit-env.c", "native/preinit-fds.c",
        "native/cgroup.c", "native/preinit-sigusr1.c", "native/preinit-scrub.c", "native/preinit-plan.c",
        "native/preinit-join.c", "native/preinit-root.c", "native/preinit-pidns.c", "native/preinit-nss.c",
        "native/preinit-caps.c", "native/confine.c", "native/nsfilter.c", "native/preinit-dlopen.c"
      ],
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
