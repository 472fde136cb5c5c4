/* The joins (preinit-join.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preinit-join.h"
#include "preinit-pidns.h"
#include "preinit-root.h"
#include "preinit-state.h"

int open_step(struct step *s)
{
    struct stat st;
    if (s->fd >= 0)
        return 0; /* opened up front, or the pidfd */
    if (stat(s->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fail(s->envvar, s->path, "stat", EINVAL, "package gons: invalid %s reference \"%s\": not a namespace file",
             s->envvar, s->path);
        return -1;
    }
    s->fd = open(s->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (s->fd < 0) {
        int err = errno;
        fail(s->envvar, s->path, "open", err, "package gons: invalid %s reference \"%s\": %s", s->envvar, s->path,
             strerror(err));
        return -1;
    }
    return 0;
}

int already_in(const struct stat *current, int fd)
{
    struct stat st;
    if (!current || fstat(fd, &st) != 0)
        return 0;
    return st.st_dev == current->st_dev && st.st_ino == current->st_ino;
}

/*
 * After joining a user namespace, become its root as nsenter and runc do, so
 * that files and further joins are judged as the container's root. An ID the
 * namespace does not map (EINVAL) is left as it is; dropping supplementary
 * groups is refused (EPERM) where setgroups is denied, which is harmless.
 */
static int become_root(const char *envvar, const char *path)
{
    const char *call = NULL, *what = NULL;
    if (setgroups(0, NULL) != 0 && errno != EPERM)
        call = "setgroups", what = "drop supplementary groups";
    else if (setresgid(0, 0, 0) != 0 && errno != EINVAL)
        call = "setresgid", what = "become gid 0";
    else if (setresuid(0, 0, 0) != 0 && errno != EINVAL)
        call = "setresuid", what = "become uid 0";
    if (!call)
        return 0;
    int err = errno;
    fail(envvar, path, call, err, "package gons: cannot %s in %s \"%s\": %s", what, envvar, path, strerror(err));
    return -1;
}

void join(struct step *steps, int nsteps, int preserve_credentials)
{
    struct stat current[GONS_NKINDS];
    int have_current[GONS_NKINDS];
    int nsdir = open("/proc/self/ns", O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < nsteps; i++)
        have_current[i] = nsdir >= 0 && steps[i].kind && fstatat(nsdir, steps[i].kind->procname, &current[i], 0) == 0;
    if (nsdir >= 0)
        close(nsdir);
    const struct step *mnt = step_joining(steps, nsteps, CLONE_NEWNS);
    if (mnt && keep_original_root(mnt->envvar, mnt->path) != 0)
        return;
    int opened = 1;
    for (int i = 0; i < nsteps && opened; i++)
        opened = !steps[i].early || open_step(&steps[i]) == 0;
    /* A pidfd's pid namespace is taken out of its mask and kept for the late join (preinit-pidns.c). */
    for (int i = 0; i < nsteps && opened; i++)
        if (!steps[i].kind && (steps[i].flag & CLONE_NEWPID))
            opened = pidfd_pid_namespace(&steps[i]) == 0;

    for (int i = 0; i < nsteps && opened; i++) {
        struct step *s = &steps[i];
        if ((s->flag & CLONE_NEWUSER) && s->kind && (gons_preinit_state.joined & CLONE_NEWUSER))
            continue; /* joined early, for an EPERM before it */
        if (s->kind && s->kind->flag == CLONE_NEWPID) {
            if (keep_pid_namespace(s, have_current[i] ? &current[i] : NULL) != 0)
                break;
            continue;
        }
        if (open_step(s) != 0)
            break;
        if (already_in(have_current[i] ? &current[i] : NULL, s->fd) || s->flag == 0)
            continue;
        int err = syscall(SYS_setns, s->fd, s->flag) == 0 ? 0 : errno;
        /*
         * As nsenter, the user namespace is tried first and last: an EPERM
         * before its step (a caller without privileges over the namespace
         * outside it) is retried once the user namespace is joined.
         */
        struct step *user = err == EPERM && s->kind ? (struct step *)step_joining(steps, nsteps, CLONE_NEWUSER) : NULL;
        if (user > s && !(gons_preinit_state.joined & CLONE_NEWUSER) && open_step(user) == 0 &&
            syscall(SYS_setns, user->fd, user->flag) == 0) {
            gons_preinit_state.joined |= (unsigned long)CLONE_NEWUSER;
            if (!preserve_credentials && become_root(user->envvar, user->path) != 0)
                break;
            err = syscall(SYS_setns, s->fd, s->flag) == 0 ? 0 : errno;
        }
        if (err) {
            fail(s->envvar, s->path, "setns", err,
                 s->kind ? "package gons: cannot join %s using reference \"%s\": %s"
                         : "package gons: cannot join %s namespaces of the process behind gons_target_pidfd %s: %s",
                 s->kind ? s->envvar : s->types, s->path, strerror(err));
            break;
        }
        gons_preinit_state.joined |= (unsigned long)s->flag;
        if ((s->flag & CLONE_NEWUSER) && !preserve_credentials && become_root(s->envvar, s->path) != 0)
            break;
    }
    if (mnt && (gons_preinit_state.joined & CLONE_NEWNS))
        hand_back_root(mnt->envvar, mnt->path);
}

void join_non_dumpable(struct step *steps, int nsteps, int preserve_credentials)
{
    int was_dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    if (was_dumpable < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        int err = errno;
        fail("", "", "prctl", err, "package gons: cannot make the process non-dumpable: %s", strerror(err));
    } else {
        join(steps, nsteps, preserve_credentials);
    }
    /*
     * Credential changes (become_root) reset dumpable to fs.suid_dumpable:
     * assert it again. Nothing joined: leave it as the kernel set it (e.g.
     * 0 for an unreadable binary).
     */
    int dumpable = gons_preinit_state.joined ? 0 : was_dumpable;
    if (was_dumpable >= 0 && prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) != 0) {
        int err = errno;
        fail("", "", "prctl", err, "package gons: cannot make the process non-dumpable: %s", strerror(err));
    }
}
