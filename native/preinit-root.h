/*
 * The root handoff: joining a mount namespace moves root and cwd to the
 * target's; the hook keeps fds to the original root and cwd, goes back to
 * them so Node can start, and keeps the target's root as an fd, which the
 * addon enters and leaves (gons_preinit_enter_target_root and
 * gons_preinit_leave_target_root) or enters for good (seal_target_root).
 */
#ifndef GONS_PREINIT_ROOT_H
#define GONS_PREINIT_ROOT_H

#include "preinit-state.h"

/* The addon's (preinit.h): 0 or -errno. */
EXPORT int gons_preinit_enter_target_root(void);
EXPORT int gons_preinit_leave_target_root(void);
EXPORT int gons_preinit_seal_target_root(void);

#pragma GCC visibility push(hidden)

/* O_PATH fds kept across the mount namespace switch; -1 when unused. Not static: the fuzzer closes what a run left. */
extern int orig_root_fd;
extern int orig_cwd_fd;
extern int target_root_fd;

/* Keeps fds to the original root and cwd, for the root handoff after joining a mount namespace. */
int keep_original_root(const char *envvar, const char *path);

/*
 * Joining a mount namespace set root and cwd to the target's root. Keep that
 * root as an fd and go back to the original root and cwd, so Node still finds
 * its script, node_modules and addon while its mount namespace is the target.
 */
void hand_back_root(const char *envvar, const char *path);

/*
 * Enters the target root for good: the fds to the host's root and cwd (and
 * the target root's own) are closed, so nothing in the process reaches the
 * host's filesystem any more. Measured: with them open, a container that can
 * see the child in its procfs plants /tmp/x -> /proc/self/fd/<host root>/...
 * and an action's plain writeFileSync('/tmp/x') writes a host file. 0 or -errno.
 */
int seal_target_root(void);

#pragma GCC visibility pop

#endif
