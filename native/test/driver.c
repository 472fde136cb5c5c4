/*
 * Sanitizer test driver for the pre-init hook (test/hook-scenarios.test.ts).
 *
 * It links the hook's units (binding.gyp's gons_preinit sources), built with
 * -DGONS_PREINIT_CONSTRUCTOR= so that the constructor does not run at load
 * time, runs gons_preinit() from main() once the environment is set up, and
 * prints what the hook did as one JSON line on stdout:
 *
 *   {"version":1,"ran":1,"err":0,"envvar":"","path":"","syscall":"","message":"",
 *    "joined":0,"root_moved":0,"dumpable":1,"pid":123,"ppid":100,"uid":0,"gid":0,
 *    "ngroups":0,"nodename":"...",
 *    "self":"/abs/path/driver","LD_PRELOAD":null,"gons_env":{}, ...}
 *
 * "self" is what dladdr() reports for the hook's state symbol (for the main
 * executable glibc reports argv[0]), i.e. the name scrub_preload() looks for.
 * "gons_env" holds every environment variable left whose name starts with
 * "gons_" (compared case-insensitively, so GONS_NET shows up too).
 *
 * Strings are escaped for JSON: '"', '\\' and control characters are escaped,
 * and every byte >= 0x80 is written as \u00XX (that is, strings are read as
 * Latin-1), so any byte sequence survives the round trip unambiguously.
 *
 * Options, applied in order before the hook runs (values set from inside the
 * process, so they are not limited by the kernel's 128 KiB per-string limit,
 * and LD_PRELOAD does not make the dynamic loader preload anything):
 *
 *   -s NAME=VALUE   setenv(NAME, VALUE)
 *   -f NAME=FILE    setenv(NAME, contents of FILE) (must not contain NUL bytes)
 *   -u NAME         unsetenv(NAME)
 *   -P PID          setenv("gons_target_pidfd", a pidfd of PID), "self" for the
 *                   driver itself
 *   -X              setenv("gons_target_pidfd", a pidfd of a process that has
 *                   exited and been reaped)
 *   -F PATH         setenv("gons_target_pidfd", an fd open on PATH, O_RDONLY)
 *                   (with -P, -X, -F the JSON has "target_fd_open": whether
 *                   that fd is still open after the hook; the hook closes a
 *                   pidfd it is given, joined or not, and nothing else)
 *   -e              after the hook: gons_preinit_enter_target_root(), then
 *                   gons_preinit_leave_target_root(); reports "enter",
 *                   "root_moved_entered", "leave" (0 or -errno)
 *   -p PATH         with -e: reports "probe":[before,entered,after], whether
 *                   PATH exists (access F_OK) before entering, while entered
 *                   (the target mount namespace's root) and after leaving
 *
 * Exit status 0 on success, 2 on a usage error (nothing is printed then).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../preinit-root.h"
#include "../preinit-state.h"

extern char **environ;

static void drv_put_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (*p < 0x20 || *p >= 0x7f)
                fprintf(out, "\\u%04x", (unsigned)*p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* Like drv_put_str, for the first len bytes of s. */
static void drv_put_strn(FILE *out, const char *s, size_t len)
{
    char *copy = strndup(s, len);
    if (!copy) {
        fputs("null", out);
        return;
    }
    drv_put_str(out, copy);
    free(copy);
}

static void drv_put_str_or_null(FILE *out, const char *s)
{
    if (s)
        drv_put_str(out, s);
    else
        fputs("null", out);
}

static char *drv_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t n; buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        if (memchr(buf, '\0', len)) {
            free(buf);
            return NULL;
        }
        buf[len] = '\0';
    }
    return buf;
}

/* Splits "NAME=VALUE" in place; NULL when there is no '=' or no name. */
static char *drv_split_assignment(char *arg)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return NULL;
    *eq = '\0';
    return eq + 1;
}

/* setenv("gons_target_pidfd", fd), remembering fd; -1 when fd < 0. */
static int drv_target_fd = -1;
static int drv_set_target_fd(int fd)
{
    char num[16];
    if (fd < 0)
        return -1;
    drv_target_fd = fd;
    snprintf(num, sizeof(num), "%d", fd);
    return setenv("gons_target_pidfd", num, 1);
}

static int drv_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0U);
}

/* A pidfd of a child that has exited and been reaped. */
static int drv_exited_pidfd(void)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    int fd = drv_pidfd_open(child);
    close(p[1]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    return fd;
}

static int drv_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "driver: %s: %s\n"
                    "usage: driver [-s NAME=VALUE] [-f NAME=FILE] [-u NAME] [-P PID|self] [-X] [-F PATH]\n"
                    "              [-e [-p PATH]]...\n",
            msg, arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    int enter_leave = 0;
    const char *probe = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "-e") == 0) {
            enter_leave = 1;
            continue;
        }
        if (strcmp(opt, "-X") == 0) {
            if (drv_set_target_fd(drv_exited_pidfd()) != 0)
                return drv_usage("cannot make a pidfd of an exited process", strerror(errno));
            continue;
        }
        if (i + 1 >= argc)
            return drv_usage("missing argument", opt);
        char *arg = argv[++i];
        if (strcmp(opt, "-u") == 0) {
            unsetenv(arg);
        } else if (strcmp(opt, "-p") == 0) {
            probe = arg;
        } else if (strcmp(opt, "-P") == 0) {
            char *end = NULL;
            long pid = strcmp(arg, "self") == 0 ? (long)getpid() : strtol(arg, &end, 10);
            if ((end && (*end || end == arg)) || pid <= 0 || drv_set_target_fd(drv_pidfd_open((pid_t)pid)) != 0)
                return drv_usage("cannot open a pidfd", arg);
        } else if (strcmp(opt, "-F") == 0) {
            if (drv_set_target_fd(open(arg, O_RDONLY | O_CLOEXEC)) != 0)
                return drv_usage("cannot open", arg);
        } else if (strcmp(opt, "-s") == 0 || strcmp(opt, "-f") == 0) {
            char *value = drv_split_assignment(arg);
            if (!value)
                return drv_usage("expected NAME=VALUE", arg);
            if (opt[1] == 's') {
                if (setenv(arg, value, 1) != 0)
                    return drv_usage("setenv failed", arg);
            } else {
                char *contents = drv_read_file(value);
                if (!contents)
                    return drv_usage("cannot read file (or it contains NUL bytes)", value);
                int r = setenv(arg, contents, 1);
                free(contents);
                if (r != 0)
                    return drv_usage("setenv failed", arg);
            }
        } else {
            return drv_usage("unknown option", opt);
        }
    }

    gons_preinit();

    /* Everything below runs after the hook, as Node would. */
    const struct gons_preinit_state *st = &gons_preinit_state;
    int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    int enter = 0, leave = 0, moved_entered = 0;
    int probes[3] = {-1, -1, -1};
    if (enter_leave) {
        if (probe)
            probes[0] = access(probe, F_OK) == 0;
        enter = gons_preinit_enter_target_root();
        moved_entered = st->root_moved;
        if (probe)
            probes[1] = access(probe, F_OK) == 0;
        leave = gons_preinit_leave_target_root();
        if (probe)
            probes[2] = access(probe, F_OK) == 0;
    }
    struct utsname uts;
    if (uname(&uts) != 0)
        uts.nodename[0] = '\0';
    Dl_info info;
    const char *self = NULL;
    if (dladdr((void *)&gons_preinit_state, &info) && info.dli_fname)
        self = info.dli_fname;

    FILE *out = stdout;
    fprintf(out, "{\"version\":%d,\"ran\":%d,\"err\":%d,\"envvar\":", st->version, st->ran, st->err);
    drv_put_str_or_null(out, st->envvar);
    fputs(",\"path\":", out);
    drv_put_str_or_null(out, st->path);
    fputs(",\"syscall\":", out);
    drv_put_str_or_null(out, st->syscall);
    fputs(",\"message\":", out);
    drv_put_str_or_null(out, st->message);
    fprintf(out, ",\"joined\":%lu,\"root_moved\":%d,\"pid_pending\":%d,\"dumpable\":%d,\"pid\":%ld,\"ppid\":%ld",
            st->joined, st->root_moved, st->pid_pending, dumpable, (long)getpid(), (long)getppid());
    fprintf(out, ",\"uid\":%ld,\"gid\":%ld,\"ngroups\":%d", (long)getuid(), (long)getgid(),
            getgroups(0, NULL));
    fputs(",\"nodename\":", out);
    drv_put_str(out, uts.nodename);
    fputs(",\"self\":", out);
    drv_put_str_or_null(out, self);
    fputs(",\"LD_PRELOAD\":", out);
    drv_put_str_or_null(out, getenv("LD_PRELOAD"));
    fputs(",\"gons_env\":{", out);
    int first = 1;
    for (char **e = environ; e && *e; e++) {
        if (strncasecmp(*e, "gons_", 5) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t namelen = eq ? (size_t)(eq - *e) : strlen(*e);
        if (!first)
            fputc(',', out);
        first = 0;
        drv_put_strn(out, *e, namelen);
        fputc(':', out);
        drv_put_str(out, eq ? eq + 1 : "");
    }
    fputc('}', out);
    if (drv_target_fd >= 0)
        fprintf(out, ",\"target_fd_open\":%d", fcntl(drv_target_fd, F_GETFD) != -1);
    if (enter_leave) {
        fprintf(out, ",\"enter\":%d,\"root_moved_entered\":%d,\"leave\":%d", enter, moved_entered,
                leave);
        if (probe)
            fprintf(out, ",\"probe\":[%d,%d,%d]", probes[0], probes[1], probes[2]);
    }
    fputs("}\n", out);
    fflush(out);

    /*
     * The hook leaves the process non-dumpable after a join (by design). The
     * driver is done checking it, and LeakSanitizer stops the process with
     * ptrace at exit, which a non-dumpable process may refuse once it has left
     * the user namespace it was started in; so make it dumpable again here.
     */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    return ferror(out) ? 1 : 0;
}
