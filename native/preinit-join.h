/*
 * The joins: the planned steps in order, one loop for namespace paths and a
 * pidfd alike (as nsenter's enter_namespaces()), with the user namespace
 * tried first and last, its root become, the mount namespace's root handed
 * back (preinit-root.c) and the pid namespace kept for later (preinit-pidns.c).
 */
#ifndef GONS_PREINIT_JOIN_H
#define GONS_PREINIT_JOIN_H

#include <sys/stat.h>

#include "preinit-plan.h"

#pragma GCC visibility push(hidden)

/*
 * Opens a namespace path. Namespace files (nsfs) are regular files; anything
 * else (a device, a FIFO, a directory) is refused before it is opened, since
 * opening some devices has side effects. O_NONBLOCK and O_NOCTTY guard the
 * race where the path changes between the check and the open.
 */
int open_step(struct step *s);

/* True when fd is the namespace that /proc/self/ns/<procname> was before any join. */
int already_in(const struct stat *current, int fd);

/*
 * Joins the planned steps in order, stopping at the first failure: one loop
 * for namespace paths and the pidfd alike, as nsenter's enter_namespaces().
 * A path to a namespace the process is already in is skipped.
 */
void join(struct step *steps, int nsteps, int preserve_credentials);

/*
 * The join stage of the constructor: the process is made non-dumpable before
 * join() and kept so after it (credential changes reset it); a process that
 * joined nothing is left as dumpable as the kernel made it.
 */
void join_non_dumpable(struct step *steps, int nsteps, int preserve_credentials);

#pragma GCC visibility pop

#endif
