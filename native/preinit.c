/*
 * gons pre-init hook: a plain C shared library that is LD_PRELOADed into a
 * (re-spawned) Node process. Its constructor runs before Node's main(), while
 * the process is still single-threaded, which is the only time the kernel lets
 * a process join mount, user and time namespaces. It speaks the environment
 * protocol of Go's github.com/thediveo/gons (gons_<type>, gons_order), plus
 * gons_time, gons_preserve_credentials, gons_parent_pid, gons_target_pidfd,
 * gons_target_types, gons_keep_fds, gons_cgroup_dirs and gons_confine.
 *
 * Against a hostile container whose namespaces the process joins, the hook
 * also: ignores SIGUSR1 for good in this process (Node's inspector), closes
 * inherited fds (gons_keep_fds), pins glibc's NSS to its built-in services
 * (no module from the target's /lib), refuses dlopen() while the process sits
 * on the target's root, and keeps the process non-dumpable.
 *
 * This file is the constructor: a list of stages, each in a unit of its own
 * (docs/hook.md lists them):
 *   preinit-state   gons_preinit_state and the first-failure rule (fail)
 *   preinit-env     reading the protocol's variables, lists and numbers
 *   preinit-fds     gons_keep_fds: inherited fds closed
 *   cgroup          gons_cgroup_dirs: the target's cgroups joined
 *   preinit-sigusr1 SIGUSR1 ignored for good; sigaction()/signal() interposed
 *   preinit-scrub   the exec-time environment block and the protocol's variables
 *   preinit-plan    which namespaces to join, in which order
 *   preinit-join    the joins, non-dumpable throughout
 *   preinit-root    the root handoff after a mount namespace join
 *   preinit-pidns   the pid namespace, kept for the late join
 *   preinit-nss     glibc's NSS pinned to libc's built-in services
 *   preinit-caps    CAP_SYS_PTRACE dropped after a mount namespace join
 *   confine         gons_confine: the target's credentials (nsfilter: seccomp)
 *   preinit-dlopen  dlopen() refused while on the target's root
 *
 * Nothing here may print, exit or abort on a bad environment: the outcome is
 * recorded in gons_preinit_state, and Node (lib/status.ts) reports it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cgroup.h"
#include "confine.h"
#include "nsfilter.h"
#include "preinit-caps.h"
#include "preinit-env.h"
#include "preinit-fds.h"
#include "preinit-join.h"
#include "preinit-nss.h"
#include "preinit-pidns.h"
#include "preinit-plan.h"
#include "preinit-scrub.h"
#include "preinit-sigusr1.h"
#include "preinit-state.h"

/* The sanitizer driver builds this file with it empty and runs gons_preinit() itself. */
#ifndef GONS_PREINIT_CONSTRUCTOR
#define GONS_PREINIT_CONSTRUCTOR __attribute__((constructor))
#endif

/* The protocol's switches, copied before scrub_env() removes them. */
struct switches {
    char *preserve, *parent, *confine;
    int preserve_credentials;
};

static void read_switches(struct switches *sw)
{
    sw->preserve = dup_env("gons_preserve_credentials");
    sw->parent = dup_env("gons_parent_pid");
    sw->confine = dup_env("gons_confine");
    nsfilter_read_env(); /* gons_seccomp, for confinement's serve-time step */
    sw->preserve_credentials = sw->preserve && strcmp(sw->preserve, "1") == 0;
    if (sw->preserve && strcmp(sw->preserve, "0") != 0 && !sw->preserve_credentials)
        fail("gons_preserve_credentials", sw->preserve, "", EINVAL,
             "package gons: invalid gons_preserve_credentials value \"%s\": must be 0 or 1", sw->preserve);
}

static void free_switches(struct switches *sw)
{
    free(sw->preserve);
    free(sw->parent);
    free(sw->confine);
}

/* The step that joined a mount namespace, or NULL. */
static const struct step *joined_mount(const struct step *steps, int nsteps)
{
    const struct step *mnt = step_joining(steps, nsteps, CLONE_NEWNS);
    return mnt && (gons_preinit_state.joined & CLONE_NEWNS) ? mnt : NULL;
}

/* gons_parent_pid: the parent-death signal, cleared by credential changes, so it comes after them. */
static void watch_parent(const char *parent)
{
    long parent_pid = parent ? parse_uint(parent, strlen(parent)) : 0;
    if (parent && parent_pid <= 0)
        fail("gons_parent_pid", parent, "", EINVAL, "package gons: invalid gons_parent_pid \"%s\": not a pid", parent);
    if (parent_pid > 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent_pid))
        raise(SIGKILL);
}

GONS_PREINIT_CONSTRUCTOR void gons_preinit(void)
{
    /* Under setuid or file capabilities the environment is not ours to trust. */
    if (getauxval(AT_SECURE))
        return;
    gons_preinit_state.ran = 1;
    /* First, before anything is opened: fds the parent did not mean to pass. */
    const char *keep_fds = getenv("gons_keep_fds");
    if (keep_fds)
        keep_only_fds(keep_fds);
    /* Then the target's cgroups, before anything of the target is touched. */
    cgroup_join();
    ignore_sigusr1();
    scrub_exec_environ();

    struct switches sw;
    read_switches(&sw);
    /* Planned after an error too (the first error is kept), so that an inherited pidfd is closed below. */
    struct step steps[GONS_NKINDS];
    int nsteps = plan(steps);
    /*
     * Before the joins: the variables and the hook's LD_PRELOAD entry go
     * whatever the joins do, and scrub_preload() stats LD_PRELOAD's entries
     * to recognise the hook while paths resolve in the host's root and are
     * judged with the process's own credentials, not a joined user
     * namespace's, from which host files may be out of reach.
     */
    scrub_env();

    /* Any error so far (bad order, out of memory) means no switch at all. */
    if (!gons_preinit_state.err && nsteps > 0)
        join_non_dumpable(steps, nsteps, sw.preserve_credentials);
    close_steps(steps, nsteps);

    const struct step *mnt = joined_mount(steps, nsteps);
    if (mnt)
        pin_nss(mnt->envvar, mnt->path);
    if (sw.confine)
        confine_apply(sw.confine);
    else if (mnt && !gons_preinit_state.err)
        drop_ptrace(mnt->envvar, mnt->path);

    watch_parent(sw.parent);
    settle_pid_namespace();
    guard_sigusr1();

    free_steps(steps, nsteps);
    free_switches(&sw);
}
