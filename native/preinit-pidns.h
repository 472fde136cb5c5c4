/*
 * The pid namespace, joined late: the constructor only checks the target's
 * and keeps it as an fd; gons_preinit_join_pid() (preinit.h), called by the
 * addon once Node's threads exist, makes it the calling thread's namespace
 * for children.
 */
#ifndef GONS_PREINIT_PIDNS_H
#define GONS_PREINIT_PIDNS_H

#include <sys/stat.h>

#include "preinit-plan.h"
#include "preinit-state.h"

EXPORT int gons_preinit_join_pid(void);

#pragma GCC visibility push(hidden)

/*
 * The pid namespace is joined late, not here. A process sees only its own and
 * descendant pid namespaces in procfs: as long as the child stays in ours, a
 * container cannot find it in its /proc, so it can neither stop it nor follow
 * /proc/<child>/root (or cwd, fd, exe) while the child still sits on the
 * host's root (Node's whole start-up). As in gons, gons_pid is the namespace
 * for *children*: gons_preinit_join_pid() sets it for the calling thread once
 * the child sealed itself into the target and Node's thread pool exists (a
 * thread whose pid namespace for children differs from its own may not create
 * threads). Here the namespace is only checked and kept as an fd.
 */
int keep_pid_namespace(struct step *s, const struct stat *current);

/*
 * The pid namespace of the process behind a pidfd, as an fd: its pid from
 * the pidfd's fdinfo, /proc/<pid>/ns/pid opened, then the pidfd asked whether
 * that process is still alive, so a pid recycled in between is not taken.
 * Done before any join, in the host's procfs, with the host's credentials.
 */
int pidfd_pid_namespace(struct step *s);

/* 1 while a pid namespace is kept for the late join. */
int pid_namespace_pending(void);

/*
 * The constructor's last word on it: a pid namespace kept for later is given
 * up when anything failed (nothing will run); gons_preinit_state.pid_pending
 * says whether one is still kept.
 */
void settle_pid_namespace(void);

#pragma GCC visibility pop

#endif
