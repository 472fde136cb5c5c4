/* The late pid namespace join (preinit-pidns.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"
#include "preinit-join.h"
#include "preinit-pidns.h"
#include "preinit-state.h"

/*
 * The target pid namespace, kept for the late join (gons_preinit_join_pid);
 * -1 when none is pending. With the names of its step, for messages.
 */
static int pid_join_fd = -1;
static const char *pid_join_envvar = "";
static char *pid_join_path;

int keep_pid_namespace(struct step *s, const struct stat *current)
{
    if (open_step(s) != 0)
        return -1;
    if (already_in(current, s->fd))
        return 0;
    int type = ioctl(s->fd, NS_GET_NSTYPE);
    if (type != CLONE_NEWPID) {
        int err = type < 0 ? errno : EINVAL;
        fail(s->envvar, s->path, "setns", err, "package gons: cannot join %s using reference \"%s\": %s", s->envvar,
             s->path, strerror(err));
        return -1;
    }
    pid_join_fd = s->fd;
    pid_join_envvar = s->envvar;
    pid_join_path = strdup(s->path);
    s->fd = -1;
    return 0;
}

int pidfd_pid_namespace(struct step *s)
{
    char path[64], *buf = NULL;
    size_t cap = 0;
    long pid = -1;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", s->fd);
    FILE *f = fopen(path, "re");
    while (f && getline(&buf, &cap, f) > 0)
        if (strncmp(buf, "Pid:", 4) == 0)
            pid = strtol(buf + 4, NULL, 10);
    int err = f ? 0 : errno;
    if (f)
        fclose(f);
    free(buf);
    int fd = -1;
    if (pid > 0) {
        snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        err = fd < 0 ? errno : 0;
    } else if (!err) {
        err = ESRCH; /* "Pid: -1": the process has exited */
    }
    if (fd >= 0 && syscall(SYS_pidfd_send_signal, s->fd, 0, NULL, 0) != 0 && errno != EPERM) {
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        fail(s->envvar, s->path, "setns", err,
             "package gons: cannot join %s namespaces of the process behind gons_target_pidfd %s: %s", s->types,
             s->path, strerror(err));
        return -1;
    }
    struct stat st, self;
    if (fstat(fd, &st) == 0 && stat("/proc/self/ns/pid_for_children", &self) == 0 && st.st_dev == self.st_dev &&
        st.st_ino == self.st_ino) {
        close(fd); /* already ours: nothing to join, as for a path */
    } else {
        pid_join_fd = fd;
        pid_join_envvar = s->envvar;
        pid_join_path = strdup(s->path);
    }
    s->flag &= ~CLONE_NEWPID;
    return 0;
}

/*
 * The late step: the calling thread's pid namespace for children becomes the
 * target's, and the fd to it is closed. From then on the processes this
 * thread forks (what an action spawns) are in the target pid namespace, and
 * the thread may no longer create threads. 0 (also when nothing is pending)
 * or -errno, recorded like a constructor failure so no action runs.
 */
static int join_pid_namespace(void)
{
    if (pid_join_fd < 0)
        return 0;
    int r = (int)syscall(SYS_setns, pid_join_fd, CLONE_NEWPID);
    int err = errno;
    close(pid_join_fd);
    pid_join_fd = -1;
    if (r != 0) {
        fail(pid_join_envvar, pid_join_path, "setns", err, "package gons: cannot join %s using reference \"%s\": %s",
             pid_join_envvar, pid_join_path ? pid_join_path : "", strerror(err));
        return -err;
    }
    __atomic_or_fetch(&gons_preinit_state.joined, (unsigned long)CLONE_NEWPID, __ATOMIC_RELEASE);
    gons_preinit_state.pid_pending = 0;
    return 0;
}

/*
 * int gons_preinit_join_pid(void): the late pid namespace join (see
 * keep_pid_namespace). A confined child kept CAP_SYS_ADMIN in its permitted
 * set for it (not in its effective set, which the threads made before this
 * step inherited): raised here for the setns alone.
 */
EXPORT int gons_preinit_join_pid(void)
{
    if (pid_join_fd < 0)
        return gons_preinit_state.err && gons_preinit_state.pid_pending ? -EPERM : 0;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    uint32_t admin = 1U << CAP_SYS_ADMIN; /* below 32: in the first word */
    int raise_admin = confine_applied() && syscall(SYS_capget, &hdr, d) == 0 && !(d[0].effective & admin);
    if (raise_admin) {
        d[0].effective |= admin;
        if (syscall(SYS_capset, &hdr, d) != 0)
            raise_admin = 0; /* the setns below then fails and says why */
    }
    int r = join_pid_namespace();
    if (raise_admin) {
        d[0].effective &= ~admin;
        if (syscall(SYS_capset, &hdr, d) != 0 && r == 0) {
            r = -errno;
            fail(pid_join_envvar, pid_join_path, "capset", -r, "package gons: cannot lower CAP_SYS_ADMIN again: %s",
                 strerror(-r));
        }
    }
    return r;
}

int pid_namespace_pending(void)
{
    return pid_join_fd >= 0;
}

void settle_pid_namespace(void)
{
    if (gons_preinit_state.err && pid_join_fd >= 0) {
        close(pid_join_fd);
        pid_join_fd = -1;
    }
    gons_preinit_state.pid_pending = pid_join_fd >= 0;
}

