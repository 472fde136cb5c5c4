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
 * Nothing here may print, exit or abort on a bad environment: the outcome is
 * recorded in gons_preinit_state, and Node (lib/status.ts) reports it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <nss.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preinit.h"

#define EXPORT __attribute__((visibility("default")))

/* The fuzz and sanitizer drivers include this file and run the parts themselves. */
#ifndef GONS_PREINIT_CONSTRUCTOR
#define GONS_PREINIT_CONSTRUCTOR __attribute__((constructor))
#endif

/* The protocol's other variables; removed from the environment like the kinds'. */
static const char *const other_vars[] = {"gons_order", "gons_preserve_credentials", "gons_parent_pid",
                                         "gons_target_pidfd", "gons_target_types", "gons_keep_fds",
                                         "gons_confine", "gons_cgroup_dirs", "gons_seccomp"};

EXPORT struct gons_preinit_state gons_preinit_state = {
    GONS_PREINIT_VERSION, 0, 0, "", "", "", "", 0, 0, 0,
};

/* O_PATH fds kept across the mount namespace switch; -1 when unused. */
static int orig_root_fd = -1;
static int orig_cwd_fd = -1;
static int target_root_fd = -1;
/*
 * The target pid namespace, kept for the late join (gons_preinit_join_pid);
 * -1 when none is pending. With the names of its step, for messages.
 */
static int pid_join_fd = -1;
static const char *pid_join_envvar = "";
static char *pid_join_path;

/*
 * One planned join, as in nsenter's enter_namespaces(): a namespace path (kind
 * set), or the pidfd of gons_target_pidfd (kind NULL), which joins every kind
 * in flag at once. envvar and path name the step in messages; early: open the
 * path up front ("!").
 */
struct step {
    const struct gons_nskind *kind;
    int flag;
    int early;
    const char *envvar;
    char *path;
    char *types; /* the pidfd's gons_target_types */
    int fd;
};

/* Records the first failure; later calls are ignored so the root cause wins. */
__attribute__((format(printf, 5, 6)))
static void fail(const char *envvar, const char *path, const char *syscall_name, int err,
                 const char *fmt, ...)
{
    struct gons_preinit_state *st = &gons_preinit_state;
    if (st->err)
        return;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    char *p = strdup(path ? path : "");
    st->err = err ? err : EINVAL;
    st->envvar = envvar;
    st->path = p ? p : "";
    st->syscall = syscall_name;
    st->message = (n >= 0 && msg) ? msg : "package gons: out of memory";
}

/* A copy of a non-empty variable, or NULL; running out of memory is recorded, never read as "unset". */
static char *dup_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return NULL;
    char *copy = strdup(v);
    if (!copy)
        fail(name, "", "strdup", ENOMEM, "package gons: out of memory reading %s", name);
    return copy;
}

static const struct gons_nskind *kind_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < GONS_NKINDS; i++)
        if (strlen(gons_nskinds[i].type) == len && memcmp(gons_nskinds[i].type, name, len) == 0)
            return &gons_nskinds[i];
    return NULL;
}

/*
 * One item of a comma list: its length in *len; returns the rest after the
 * comma, or NULL after the last item. Every item counts, so an empty one (as
 * after a trailing comma) is an unknown type, where gons would ignore a trailing one.
 */
static const char *next_item(const char *item, size_t *len)
{
    const char *comma = strchr(item, ',');
    *len = comma ? (size_t)(comma - item) : strlen(item);
    return comma ? comma + 1 : NULL;
}

/* The one number parser: s[0..len) as plain decimal digits (no sign, no space) up to INT_MAX; else -1. */
static long parse_uint(const char *s, size_t len)
{
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return len > 0 ? v : -1;
}

static int kind_var_set(void)
{
    for (size_t i = 0; i < GONS_NKINDS; i++) {
        const char *v = getenv(gons_nskinds[i].envvar);
        if (v && *v)
            return 1;
    }
    return 0;
}

/*
 * The fd number in gons_target_pidfd if it is a pidfd (of a live or dead
 * process), else -1: a hostile value must not make the hook close stdout.
 */
static int pidfd_of(const char *fdstr)
{
    long fd = parse_uint(fdstr, strlen(fdstr));
    if (fd < 0)
        return -1;
    if (syscall(SYS_pidfd_send_signal, (int)fd, 0, NULL, 0) == 0 || errno == ESRCH || errno == EPERM)
        return (int)fd;
    return -1;
}

/* gons_target_types as a mask of the CLONE_NEW* flags of distinct kinds; 0 after recording an error. */
static int types_mask(const char *types)
{
    int mask = 0;
    for (const char *item = types ? types : "", *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        const struct gons_nskind *k = kind_by_name(item, len);
        if (!k || (mask & k->flag)) {
            fail("gons_target_types", types, "", EINVAL,
                 "package gons: %s namespace type \"%.*s\" in gons_target_types", k ? "duplicate" : "unknown",
                 (int)len, item);
            return 0;
        }
        mask |= k->flag;
    }
    return mask;
}

/* Adds a step for kind k when its variable is set and non-empty. */
static int add_step(struct step *steps, int nsteps, const struct gons_nskind *k, int early)
{
    char *path = dup_env(k->envvar);
    if (path)
        steps[nsteps++] = (struct step){k, k->flag, early, k->envvar, path, NULL, -1};
    return nsteps;
}

/*
 * Plans the joins; returns the number of steps. With gons_target_pidfd: one
 * step, its pidfd, which joins the process's namespaces of the kinds in
 * gons_target_types with one setns(pidfd, mask) (Linux 5.8): the pidfd pins
 * the process, so a pid recycled since the parent opened it cannot be joined.
 * Otherwise gons_order (or the default order, which is the table itself): a
 * step for each kind whose variable is set. An error is recorded, and the
 * steps planned so far are still returned, to be closed and freed.
 */
static int plan(struct step steps[GONS_NKINDS])
{
    int nsteps = 0;
    char *target = dup_env("gons_target_pidfd");
    if (target) {
        int fd = pidfd_of(target);
        steps[nsteps++] = (struct step){NULL, 0, 1, "gons_target_pidfd", target, dup_env("gons_target_types"), fd};
        if (kind_var_set())
            fail("gons_target_pidfd", target, "", EINVAL,
                 "package gons: gons_target_pidfd cannot be combined with gons_<type> variables");
        else if (fd < 0)
            fail("gons_target_pidfd", target, "pidfd_send_signal", EBADF,
                 "package gons: invalid gons_target_pidfd \"%s\": not a pidfd", target);
        else
            steps[0].flag = types_mask(steps[0].types);
        return nsteps;
    }
    char *order = dup_env("gons_order");
    int seen = 0;
    for (size_t i = 0; !order && i < GONS_NKINDS; i++)
        nsteps = add_step(steps, nsteps, &gons_nskinds[i], 1);
    for (const char *item = order, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        int early = len > 0 && item[0] == '!';
        const char *name = item + early;
        size_t namelen = len - early;
        const struct gons_nskind *k = kind_by_name(name, namelen);
        if (!k) {
            fail("gons_order", order, "", EINVAL, "package gons: unknown namespace type \"%.*s\" in gons_order",
                 (int)namelen, name);
            break;
        }
        if (seen & k->flag) {
            fail("gons_order", order, "", EINVAL, "package gons: duplicate namespace order type %s", k->type);
            break;
        }
        seen |= k->flag;
        nsteps = add_step(steps, nsteps, k, early);
    }
    free(order);
    return nsteps;
}

/* Closes the steps' fds: after the joins, and the pidfd also when nothing was joined (it must not leak into Node). */
static void close_steps(struct step *steps, int nsteps)
{
    for (int i = 0; i < nsteps; i++) {
        if (steps[i].fd >= 0)
            close(steps[i].fd);
        steps[i].fd = -1;
    }
}

static void free_steps(struct step *steps, int nsteps)
{
    for (int i = 0; i < nsteps; i++) {
        free(steps[i].path);
        free(steps[i].types);
    }
}

/* The step whose join includes flag's kind, or NULL. */
static const struct step *step_joining(const struct step *steps, int nsteps, int flag)
{
    for (int i = 0; i < nsteps; i++)
        if (steps[i].flag & flag)
            return &steps[i];
    return NULL;
}

/*
 * Opens a namespace path. Namespace files (nsfs) are regular files; anything
 * else (a device, a FIFO, a directory) is refused before it is opened, since
 * opening some devices has side effects. O_NONBLOCK and O_NOCTTY guard the
 * race where the path changes between the check and the open.
 */
static int open_step(struct step *s)
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

/* True when fd is the namespace that /proc/self/ns/<procname> was before any join. */
static int already_in(const struct stat *current, int fd)
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

static int chroot_to(int dirfd)
{
    if (fchdir(dirfd) != 0 || chroot(".") != 0)
        return -errno;
    return 0;
}

/* Keeps fds to the original root and cwd, for the root handoff after joining a mount namespace. */
static int keep_original_root(const char *envvar, const char *path)
{
    orig_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    orig_cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (orig_root_fd < 0 || orig_cwd_fd < 0) {
        int err = errno;
        fail(envvar, path, "open", err, "package gons: cannot keep original root and working directory: %s",
             strerror(err));
        return -1;
    }
    return 0;
}

/*
 * Joining a mount namespace set root and cwd to the target's root. Keep that
 * root as an fd and go back to the original root and cwd, so Node still finds
 * its script, node_modules and addon while its mount namespace is the target.
 */
static void hand_back_root(const char *envvar, const char *path)
{
    target_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (target_root_fd < 0) {
        int err = errno;
        fail(envvar, path, "open", err, "package gons: cannot keep root of %s \"%s\": %s", envvar, path,
             strerror(err));
    }
    int r = chroot_to(orig_root_fd);
    if (r == 0 && fchdir(orig_cwd_fd) != 0)
        r = -errno;
    if (r != 0)
        fail(envvar, path, "chroot", -r,
             "package gons: cannot return to the original root after joining %s \"%s\": %s", envvar, path,
             strerror(-r));
}

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
static int keep_pid_namespace(struct step *s, const struct stat *current)
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

/*
 * The pid namespace of the process behind a pidfd, as an fd: its pid from
 * the pidfd's fdinfo, /proc/<pid>/ns/pid opened, then the pidfd asked whether
 * that process is still alive, so a pid recycled in between is not taken.
 * Done before any join, in the host's procfs, with the host's credentials.
 */
static int pidfd_pid_namespace(struct step *s)
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
 * Joins the planned steps in order, stopping at the first failure: one loop
 * for namespace paths and the pidfd alike, as nsenter's enter_namespaces().
 * A path to a namespace the process is already in is skipped.
 */
static void join(struct step *steps, int nsteps, int preserve_credentials)
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
    /* A pidfd's pid namespace is taken out of its mask and kept for the late join (above). */
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

/* Closes fds lo..hi; close_range (Linux 5.9), else a loop bounded by RLIMIT_NOFILE. */
static void close_fds(unsigned lo, unsigned hi)
{
    if (lo > hi || syscall(SYS_close_range, lo, hi, 0U) == 0)
        return;
    struct rlimit rl;
    unsigned long limit = 1UL << 20; /* the kernel's default fs.nr_open */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < limit)
        limit = (unsigned long)rl.rlim_cur;
    for (unsigned long fd = lo; fd <= hi && fd < limit; fd++)
        close((int)fd);
}

/* One item of gons_keep_fds: an fd number above 2, at most 10 digits; -1 otherwise. */
static long keep_item(const char *s, size_t len)
{
    long v = len <= 10 ? parse_uint(s, len) : -1;
    return v > 2 ? v : -1;
}

/* The smallest fd in the (valid) list that is >= from, or -1. */
static long next_kept(const char *list, long from)
{
    long best = -1;
    for (const char *item = *list ? list : NULL, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        long fd = keep_item(item, len);
        if (fd >= from && (best < 0 || fd < best))
            best = fd;
    }
    return best;
}

/*
 * gons_keep_fds: fds a parent inherited without close-on-exec (a shell's
 * "exec 300<dir") must not reach the child and the programs its actions run.
 * When the variable is set, every fd above 2 not in its comma list is closed
 * before the hook opens anything; "" keeps none. A malformed list fails
 * closed: it is recorded (so nothing is joined) and every fd above 2 is
 * closed, the channel included, since the list cannot be trusted to name it.
 */
static void keep_only_fds(const char *list)
{
    for (const char *item = *list ? list : NULL, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        if (keep_item(item, len) < 0) {
            fail("gons_keep_fds", list, "", EINVAL,
                 "package gons: invalid gons_keep_fds \"%s\": must be a comma list of fd numbers above 2", list);
            close_fds(3, ~0U);
            return;
        }
    }
    long from = 3;
    for (long fd; (fd = next_kept(list, from)) >= 0; from = fd + 1)
        close_fds((unsigned)from, (unsigned)fd - 1);
    close_fds((unsigned)from, ~0U);
}

/*
 * glibc's NSS reads the current root's /etc/nsswitch.conf and dlopen()s the
 * modules it names from the current root's /lib: inside the target's root a
 * container could run its code in this privileged process through
 * dns.lookup() or os.userInfo(). While the root is still the host's, pin every
 * database to the services built into libc (glibc >= 2.34), which also stops
 * glibc from reloading nsswitch.conf. Lookups still read the files of the
 * root they run in (/etc/hosts, /etc/passwd, /etc/resolv.conf).
 * The databases are glibc's own list (nss/databases.def).
 */
static void pin_nss(const char *envvar, const char *path)
{
    static const char *const dbs[] = {"aliases", "ethers", "group", "gshadow", "hosts", "initgroups", "netgroup",
                                      "networks", "passwd", "protocols", "publickey", "rpc", "services", "shadow"};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        const char *services = strcmp(dbs[i], "hosts") == 0 ? "files dns" : "files";
        if (__nss_configure_lookup(dbs[i], services) != 0) {
            int err = errno;
            fail(envvar, path, "__nss_configure_lookup", err,
                 "package gons: cannot restrict the %s name service database to \"%s\"", dbs[i], services);
            return;
        }
    }
}

/* Same file by device and inode; for LD_PRELOAD entries that spell our path differently. */
static int same_file(const char *a, const struct stat *b)
{
    struct stat st;
    return strchr(a, '/') && stat(a, &st) == 0 && st.st_dev == b->st_dev && st.st_ino == b->st_ino;
}

/*
 * Removes this library from LD_PRELOAD (keeping the user's other entries) so
 * that grandchildren do not inherit the hook. The dynamic loader already read
 * LD_PRELOAD, so changing it now has no effect on this process. Our name may
 * no longer stat: a parent whose path LD_PRELOAD cannot spell passes us as
 * /proc/self/fd/N, and that fd is closed by now; the name still matches.
 */
static void scrub_preload(void)
{
    const char *preload = getenv("LD_PRELOAD");
    Dl_info info;
    struct stat self;
    if (!preload || !dladdr((void *)&gons_preinit_state, &info) || !info.dli_fname)
        return;
    int have_self = stat(info.dli_fname, &self) == 0;
    char *copy = strdup(preload);
    char *kept = calloc(1, strlen(preload) + 1);
    if (!copy || !kept) {
        free(copy);
        free(kept);
        return;
    }
    char *save = NULL;
    for (char *e = strtok_r(copy, " :\t\n", &save); e; e = strtok_r(NULL, " :\t\n", &save)) {
        if (strcmp(e, info.dli_fname) == 0 || (have_self && same_file(e, &self)))
            continue;
        if (*kept)
            strcat(kept, ":");
        strcat(kept, e);
    }
    if (*kept)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
    free(copy);
    free(kept);
}

static void scrub_env(void)
{
    for (size_t i = 0; i < GONS_NKINDS; i++)
        unsetenv(gons_nskinds[i].envvar);
    for (size_t i = 0; i < sizeof(other_vars) / sizeof(other_vars[0]); i++)
        unsetenv(other_vars[i]);
    scrub_preload();
}

/*
 * SIGUSR1 makes Node open its inspector (on loopback of the child's network
 * namespace): anyone in the container who may signal the child could then
 * run JavaScript in it. Node unblocks all signals at start-up, resets
 * dispositions and installs its inspector handler with sigaction() after
 * main(), so the hook ignores SIGUSR1 and interposes sigaction() and
 * signal(): in the process the constructor ran in, SIGUSR1 stays ignored.
 * Other processes (a child libuv forked that resets dispositions before
 * exec) are let through, so programs an action runs get the default.
 */
static pid_t guarded_pid;

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);

/* The next definition of a symbol after this library (libc's); resolved on first use. */
static void *next_symbol(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

static sigaction_fn real_sigaction(void)
{
    static void *cache;
    return (sigaction_fn)next_symbol(&cache, "sigaction");
}

static int guarding(int sig)
{
    pid_t pid = __atomic_load_n(&guarded_pid, __ATOMIC_ACQUIRE);
    return sig == SIGUSR1 && pid != 0 && getpid() == pid;
}

/* Fails closed: a SIGUSR1 that cannot be ignored is recorded, so nothing is joined. */
static void ignore_sigusr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction_fn fn = real_sigaction();
    if (!fn || fn(SIGUSR1, &sa, NULL) != 0) {
        int err = fn ? errno : ENOSYS;
        fail("", "", "sigaction", err, "package gons: cannot ignore SIGUSR1: %s", strerror(err));
    }
}

/* Installing an action for SIGUSR1 in the guarded process succeeds and changes nothing. */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    sigaction_fn fn = real_sigaction();
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    return fn(sig, guarding(sig) ? NULL : act, oldact);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    static void *cache;
    signal_fn fn = (signal_fn)next_symbol(&cache, "signal");
    if (!fn) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    if (guarding(sig)) {
        struct sigaction old;
        return sigaction(sig, NULL, &old) == 0 ? old.sa_handler : SIG_ERR;
    }
    return fn(sig, handler);
}

/*
 * Enters the target root for good: the fds to the host's root and cwd (and
 * the target root's own) are closed, so nothing in the process reaches the
 * host's filesystem any more. Measured: with them open, a container that can
 * see the child in its procfs plants /tmp/x -> /proc/self/fd/<host root>/...
 * and an action's plain writeFileSync('/tmp/x') writes a host file. 0 or -errno.
 */
static int seal_target_root(void)
{
    if (target_root_fd >= 0 && !__atomic_load_n(&gons_preinit_state.root_moved, __ATOMIC_ACQUIRE)) {
        int r = chroot_to(target_root_fd);
        if (r != 0)
            return r;
        __atomic_store_n(&gons_preinit_state.root_moved, 1, __ATOMIC_RELEASE);
    }
    int *fds[] = {&orig_root_fd, &orig_cwd_fd, &target_root_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0 && close(*fds[i]) != 0)
            return -errno;
        *fds[i] = -1;
    }
    return 0;
}

EXPORT int gons_preinit_seal_target_root(void)
{
    if (target_root_fd < 0 && !__atomic_load_n(&gons_preinit_state.root_moved, __ATOMIC_ACQUIRE))
        return -ENOENT;
    return seal_target_root();
}

/* gons_cgroup_dirs: the target's cgroups (a section of its own). */
#include "cgroup.c"
/* The seccomp filter of a confined child (a section of its own). */
#include "nsfilter.c"
/* gons_confine: the target's credentials (a section of its own). */
#include "confine.c"

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
static void drop_ptrace(const char *envvar, const char *path)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    const char *call = "prctl";
    int ok = prctl(PR_CAPBSET_READ, CAP_SYS_PTRACE, 0, 0, 0) == 0 ||
             prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) == 0;
    if (ok) {
        call = "capget";
        ok = syscall(SYS_capget, &hdr, d) == 0;
    }
    if (ok) {
        call = "capset";
        uint32_t bit = 1U << CAP_SYS_PTRACE; /* below 32: in the first word */
        d[0].effective &= ~bit;
        d[0].permitted &= ~bit;
        d[0].inheritable &= ~bit;
        ok = syscall(SYS_capset, &hdr, d) == 0;
    }
    if (!ok) {
        int err = errno;
        fail(envvar, path, call, err, "package gons: cannot drop CAP_SYS_PTRACE after joining %s \"%s\": %s", envvar,
             path, strerror(err));
    }
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
    int raise_admin = confine_stage == 1 && syscall(SYS_capget, &hdr, d) == 0 && !(d[0].effective & admin);
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

/*
 * /proc/<pid>/environ shows the environment block as it was at exec, however
 * the environment changes later, and it holds the parent's whole environment.
 * Measured on Linux 6.18: a process in a container that shares the child's uid
 * reads it despite non-dumpable. So every string in that block moves to the
 * heap, environ points at the copies, and the block is cleared. The block's
 * bounds come from /proc/self/stat (env_start, env_end: fields 50 and 51).
 */
static void scrub_exec_environ(void)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap = cap ? cap * 2 : 1024);
            if (!grown)
                break;
            buf = grown;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    unsigned long start = 0, end = 0;
    char *fields = buf ? (buf[len] = 0, strrchr(buf, ')')) : NULL;
    /* After ")" comes field 3; env_start and env_end are fields 50 and 51. */
    for (int field = 2; fields && field < 51; field++) {
        fields = strchr(fields + 1, ' ');
        if (fields && field + 1 == 50)
            start = strtoul(fields + 1, NULL, 10);
        if (fields && field + 1 == 51)
            end = strtoul(fields + 1, NULL, 10);
    }
    free(buf);
    if (!start || end <= start)
        return;
    size_t count = 0;
    for (char **e = environ; *e; e++)
        count++;
    char **copy = calloc(count + 1, sizeof(char *));
    if (!copy)
        return;
    for (size_t i = 0; i < count; i++) {
        unsigned long at = (unsigned long)environ[i];
        copy[i] = (at >= start && at < end) ? strdup(environ[i]) : environ[i];
        if (!copy[i]) {
            /* Out of memory: keep the block as it is rather than lose variables. */
            for (size_t j = 0; j < i; j++)
                if (copy[j] != environ[j])
                    free(copy[j]);
            free(copy);
            return;
        }
    }
    environ = copy;
    memset((void *)start, 0, end - start);
}

GONS_PREINIT_CONSTRUCTOR static void gons_preinit(void)
{
    /* Under setuid or file capabilities the environment is not ours to trust. */
    if (getauxval(AT_SECURE))
        return;
    gons_preinit_state.ran = 1;
    /* First, before anything is opened: fds the parent did not mean to pass. */
    const char *keep_fds = getenv("gons_keep_fds");
    if (keep_fds)
        keep_only_fds(keep_fds);
    /* Then the target's cgroups, before anything of the target is touched (native/cgroup.c). */
    cgroup_join();
    ignore_sigusr1();
    scrub_exec_environ();

    char *preserve = dup_env("gons_preserve_credentials");
    char *parent = dup_env("gons_parent_pid");
    char *confine = dup_env("gons_confine");
    nsfilter_read_env(); /* gons_seccomp, for confinement's serve-time step */
    int preserve_credentials = preserve && strcmp(preserve, "1") == 0;
    if (preserve && strcmp(preserve, "0") != 0 && !preserve_credentials)
        fail("gons_preserve_credentials", preserve, "", EINVAL,
             "package gons: invalid gons_preserve_credentials value \"%s\": must be 0 or 1", preserve);
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
    if (!gons_preinit_state.err && nsteps > 0) {
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
    close_steps(steps, nsteps);
    const struct step *mnt = step_joining(steps, nsteps, CLONE_NEWNS);
    if (mnt && (gons_preinit_state.joined & CLONE_NEWNS))
        pin_nss(mnt->envvar, mnt->path);

    if (confine)
        confine_apply(confine);
    else if (mnt && (gons_preinit_state.joined & CLONE_NEWNS) && !gons_preinit_state.err)
        drop_ptrace(mnt->envvar, mnt->path);

    /* The parent-death signal is cleared by credential changes, so it comes after them. */
    long parent_pid = parent ? parse_uint(parent, strlen(parent)) : 0;
    if (parent && parent_pid <= 0)
        fail("gons_parent_pid", parent, "", EINVAL, "package gons: invalid gons_parent_pid \"%s\": not a pid", parent);
    if (parent_pid > 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent_pid))
        raise(SIGKILL);
    /* A pid namespace kept for later is given up when anything failed: nothing will run. */
    if (gons_preinit_state.err && pid_join_fd >= 0) {
        close(pid_join_fd);
        pid_join_fd = -1;
    }
    gons_preinit_state.pid_pending = pid_join_fd >= 0;
    /* From here on, this process (the one Node runs in) keeps SIGUSR1 ignored. */
    __atomic_store_n(&guarded_pid, getpid(), __ATOMIC_RELEASE);

    free_steps(steps, nsteps);
    free(preserve);
    free(parent);
    free(confine);
}

EXPORT int gons_preinit_enter_target_root(void)
{
    if (target_root_fd < 0)
        return -ENOENT;
    if (gons_preinit_state.root_moved)
        return 0;
    int r = chroot_to(target_root_fd);
    if (r == 0)
        __atomic_store_n(&gons_preinit_state.root_moved, 1, __ATOMIC_RELEASE);
    return r;
}

EXPORT int gons_preinit_leave_target_root(void)
{
    if (!gons_preinit_state.root_moved)
        return 0;
    int r = chroot_to(orig_root_fd);
    if (r == 0 && fchdir(orig_cwd_fd) != 0)
        r = -errno;
    if (r == 0)
        __atomic_store_n(&gons_preinit_state.root_moved, 0, __ATOMIC_RELEASE);
    return r;
}

/*
 * While the process sits on the target's root, a dlopen() would load code
 * from the container's filesystem into this privileged process: refused.
 * libuv (process.dlopen) reads dlerror() after a failure, so a refusal leaves
 * a thread-local message that dlerror() returns once, like glibc's own.
 * glibc's internal loads (NSS, iconv) do not come through here; pin_nss
 * covers NSS. The pass-through calls compile to tail jumps (checked with
 * objdump), so glibc still sees the real caller for its RUNPATH and $ORIGIN.
 */
typedef void *(*dlopen_fn)(const char *, int);
typedef void *(*dlmopen_fn)(Lmid_t, const char *, int);
typedef char *(*dlerror_fn)(void);

/* initial-exec: a preloaded library gets static TLS, and the hook stays libc-only (no __tls_get_addr). */
#define THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))
static THREAD_LOCAL char *refusal;       /* pending, for the next dlerror() */
static THREAD_LOCAL char *refusal_shown; /* returned by dlerror(), freed on its next call */
static THREAD_LOCAL int refusal_pending;

static dlerror_fn real_dlerror(void)
{
    static void *cache;
    return (dlerror_fn)next_symbol(&cache, "dlerror");
}

static int in_target_root(const char *file)
{
    return file && __atomic_load_n(&gons_preinit_state.root_moved, __ATOMIC_ACQUIRE);
}

static void *refuse(const char *file)
{
    dlerror_fn clear = real_dlerror();
    if (clear)
        clear(); /* an older error of glibc's must not be reported for this call */
    free(refusal);
    if (asprintf(&refusal, "gons: loading \"%s\" refused while inside the target's root filesystem", file) < 0)
        refusal = NULL;
    refusal_pending = 1;
    return NULL;
}

EXPORT void *dlopen(const char *file, int mode)
{
    static void *cache;
    if (in_target_root(file))
        return refuse(file);
    dlopen_fn fn = (dlopen_fn)next_symbol(&cache, "dlopen");
    return fn ? fn(file, mode) : NULL;
}

EXPORT void *dlmopen(Lmid_t lmid, const char *file, int mode)
{
    static void *cache;
    if (in_target_root(file))
        return refuse(file);
    dlmopen_fn fn = (dlmopen_fn)next_symbol(&cache, "dlmopen");
    return fn ? fn(lmid, file, mode) : NULL;
}

EXPORT char *dlerror(void)
{
    if (!refusal_pending) {
        dlerror_fn fn = real_dlerror();
        return fn ? fn() : NULL;
    }
    refusal_pending = 0;
    free(refusal_shown);
    refusal_shown = refusal;
    refusal = NULL;
    return refusal_shown ? refusal_shown
                         : (char *)"gons: loading refused while inside the target's root filesystem";
}
