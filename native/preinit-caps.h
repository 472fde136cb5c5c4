/* CAP_SYS_PTRACE dropped by a child that joined a mount namespace (without gons_confine). */
#ifndef GONS_PREINIT_CAPS_H
#define GONS_PREINIT_CAPS_H

#pragma GCC visibility push(hidden)

/*
 * Following /proc/<pid>/root (or cwd, fd, exe) of another process needs
 * ptrace read access to it (proc_fd_access_allowed): CAP_SYS_PTRACE over it,
 * or the same uid with a dumpable target whose permitted set is within the
 * follower's effective set. A child that joined a mount namespace follows
 * paths the container controls: with CAP_SYS_PTRACE a link it planted,
 * /tmp/x -> /proc/<host process>/root/etc/..., would take an action's write
 * to the host (a container in the host's pid namespace sees every host
 * process). So such a child drops CAP_SYS_PTRACE from its bounding,
 * inheritable, permitted and effective sets (ambient follows) while still
 * single-threaded, for every thread Node makes and every program an action
 * runs. Under gons_confine the target's own sets are taken instead.
 */
void drop_ptrace(const char *envvar, const char *path);

#pragma GCC visibility pop

#endif
