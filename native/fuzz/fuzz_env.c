/*
 * libFuzzer target for the pre-init hook's environment parsing
 * (scripts/fuzz.sh builds and runs it).
 *
 * It links the hook's units (binding.gyp's gons_preinit sources, the
 * constructor disabled) and drives only the parsing parts, never a namespace
 * switch:
 *   - plan()          gons_order and the gons_<type> variables
 *   - types_mask()    gons_target_types, then join() of a pidfd step (and
 *                     gons_target_pidfd's text in its messages); setns() is a
 *                     stub here (below) that records its arguments and fails,
 *                     so nothing can switch
 *   - pidfd_of()      pidfd_send_signal() is a stub too, failing with EBADF
 *   - kind_var_set(), parse_uint()
 *   - scrub_env()     with it scrub_preload() on an LD_PRELOAD from the input
 * Each result is checked against a small reference implementation written
 * from the protocol's description; a mismatch is a crash (__builtin_trap).
 * join() of namespace paths and fork are never called (fork and any other
 * syscall() trap). The hook's getenv/setenv/unsetenv work on a private
 * table here (see fuzz_getenv below), not on the process environment: every
 * unit is built with -include native/fuzz/stubs.h, which points them here.
 *
 * Input: fields separated by NUL bytes; a missing field leaves the variable
 * unset, an empty one sets it to "":
 *   0      gons_order
 *   1..8   gons_user, gons_mnt, gons_cgroup, gons_ipc, gons_net, gons_pid,
 *          gons_time, gons_uts (values are only copied, never opened)
 *   9      LD_PRELOAD; each '@' is replaced by the path dladdr() reports for
 *          the hook (this executable), so entries naming the hook show up
 *   10     gons_target_types
 *   11     a number for parse_uint(), pidfd_of() (and the text of
 *          gons_target_pidfd in join()'s messages)
 *   12     gons_cgroup_dirs, for cgroup_parse() (parsed only, never opened)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sanitizer/allocator_interface.h>

#include "../cgroup.h"
#include "../preinit-env.h"
#include "../preinit-join.h"
#include "../preinit-pidns.h"
#include "../preinit-plan.h"
#include "../preinit-root.h"
#include "../preinit-scrub.h"
#include "../preinit-state.h"
#include "stubs.h"

/* The stubs are defined below; stubs.h's macros would rename their definitions. */
#undef syscall
#undef fork
#undef getenv
#undef setenv
#undef unsetenv

/*
 * The hook's syscall(): setns(fd, flags) and pidfd_send_signal(fd, 0, NULL, 0)
 * only record their arguments and fail; anything else is never expected here.
 */
static int setns_calls, setns_fd, pidfd_calls, pidfd_fd;
static unsigned long setns_flags;

long fuzz_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    if (nr == SYS_setns) {
        setns_fd = va_arg(ap, int);
        setns_flags = (unsigned long)(unsigned)va_arg(ap, int);
        setns_calls++;
        errno = EINVAL;
    } else if (nr == SYS_pidfd_send_signal) {
        pidfd_fd = va_arg(ap, int);
        pidfd_calls++;
        errno = EBADF;
    } else {
        __builtin_trap();
    }
    va_end(ap);
    return -1;
}

pid_t fuzz_fork(void)
{
    __builtin_trap();
}

/*
 * A private environment for the hook's getenv/setenv/unsetenv. glibc's
 * setenv() never frees the strings it allocates (by design: getenv() pointers
 * must stay valid), so millions of distinct values would grow the fuzzer to
 * its RSS limit. Here setenv() and unsetenv() free the old value, so ASan
 * would also catch the hook using a getenv() result after changing that
 * variable.
 */
struct fuzz_var {
    char *name, *value;
};
static struct fuzz_var fuzz_vars[32];
static size_t fuzz_nvars;

static struct fuzz_var *fuzz_find(const char *name)
{
    for (size_t i = 0; i < fuzz_nvars; i++)
        if (strcmp(fuzz_vars[i].name, name) == 0)
            return &fuzz_vars[i];
    return NULL;
}

char *fuzz_getenv(const char *name)
{
    struct fuzz_var *v = fuzz_find(name);
    return v ? v->value : NULL;
}

int fuzz_unsetenv(const char *name)
{
    struct fuzz_var *v = fuzz_find(name);
    if (v) {
        free(v->name);
        free(v->value);
        *v = fuzz_vars[--fuzz_nvars];
    }
    return 0;
}

int fuzz_setenv(const char *name, const char *value, int overwrite)
{
    struct fuzz_var *v = fuzz_find(name);
    if (v && !overwrite)
        return 0;
    char *copy = strdup(value);
    if (!copy)
        return -1;
    if (!v) {
        if (fuzz_nvars == sizeof(fuzz_vars) / sizeof(fuzz_vars[0]))
            __builtin_trap();
        v = &fuzz_vars[fuzz_nvars];
        v->name = strdup(name);
        if (!v->name) {
            free(copy);
            return -1;
        }
        fuzz_nvars++;
    } else {
        free(v->value);
    }
    v->value = copy;
    return 0;
}

/* The checks below use the same table as the hook. */
#define getenv(name) fuzz_getenv(name)
#define setenv(name, value, overwrite) fuzz_setenv(name, value, overwrite)
#define unsetenv(name) fuzz_unsetenv(name)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_env: check failed at line %d: %s\n", __LINE__, #cond); \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

#define NFIELDS 13
#define F_ORDER 0
#define F_PRELOAD 9
#define F_TYPES 10
#define F_NUMBER 11
#define F_CGROUP 12

static const struct gons_preinit_state initial_state = {
    GONS_PREINIT_VERSION, 0, 0, "", "", "", "", 0, 0, 0,
};

static const char *self_path; /* what dladdr reports for the hook */

/* Frees what fail() allocated (static fallbacks are left alone) and starts over. */
static void reset_state(void)
{
    struct gons_preinit_state *st = &gons_preinit_state;
    if (__sanitizer_get_ownership(st->path))
        free((void *)st->path);
    if (__sanitizer_get_ownership(st->message))
        free((void *)st->message);
    *st = initial_state;
    if (orig_root_fd >= 0)
        close(orig_root_fd);
    if (orig_cwd_fd >= 0)
        close(orig_cwd_fd);
    orig_root_fd = orig_cwd_fd = -1;
    CHECK(target_root_fd < 0);
    setns_calls = pidfd_calls = 0;
}

static const char *const known_vars[] = {
    "gons_user", "gons_mnt", "gons_cgroup", "gons_ipc", "gons_net", "gons_pid", "gons_time",
    "gons_uts", "gons_order", "gons_preserve_credentials", "gons_parent_pid", "gons_target_pidfd",
    "gons_target_types", "gons_cgroup_dirs", "gons_seccomp",
};

static void set_or_unset(const char *name, const char *value)
{
    if (value)
        CHECK(setenv(name, value, 1) == 0);
    else
        unsetenv(name);
}

static int eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* --- reference implementations ------------------------------------------------ */

static const char *const ref_types[] = {"user", "mnt", "cgroup", "ipc", "net", "pid", "time", "uts"};

/* Index of the type spelled by s[0..len), or -1. */
static int ref_type(const char *s, size_t len)
{
    for (int i = 0; i < 8; i++)
        if (strlen(ref_types[i]) == len && strncmp(ref_types[i], s, len) == 0)
            return i;
    return -1;
}

struct ref_item {
    const char *s;
    size_t len;
};

/* Splits s at every ',' (an empty s is one empty item); returns the count. */
static size_t ref_split(const char *s, struct ref_item *items, size_t max)
{
    size_t n = 0;
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == ',' || *p == '\0') {
            if (n < max)
                items[n] = (struct ref_item){start, (size_t)(p - start)};
            n++;
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    return n;
}

static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    CHECK(n >= 0 && s);
    return s;
}

/* --- the parts under test --------------------------------------------------------- */

static void check_plan(const char *values[NFIELDS])
{
    const struct gons_preinit_state *st = &gons_preinit_state;
    char *order = dup_env("gons_order");
    CHECK(eq(order, values[F_ORDER]) || (!order && (!values[F_ORDER] || !*values[F_ORDER])));

    /* plan() takes the pidfd's way when gons_target_pidfd is set: not this check's. */
    char *target = dup_env("gons_target_pidfd");
    unsetenv("gons_target_pidfd");
    struct step steps[GONS_NKINDS];
    memset(steps, 0xa5, sizeof(steps));
    int n = plan(steps);

    /* What plan() should have produced. */
    int want_kind[GONS_NKINDS], want_early[GONS_NKINDS], nwant = 0;
    char *want_message = NULL;
    if (!order) {
        for (int i = 0; i < 8; i++)
            if (values[1 + i] && *values[1 + i]) {
                want_kind[nwant] = i;
                want_early[nwant++] = 1;
            }
    } else {
        size_t cap = strlen(order) + 1;
        struct ref_item *items = calloc(cap, sizeof(*items));
        CHECK(items);
        size_t nitems = ref_split(order, items, cap);
        unsigned seen = 0;
        for (size_t i = 0; i < nitems && !want_message; i++) {
            int early = items[i].len > 0 && items[i].s[0] == '!';
            const char *name = items[i].s + early;
            size_t len = items[i].len - (size_t)early;
            int t = ref_type(name, len);
            if (t < 0)
                want_message = fmt("package gons: unknown namespace type \"%.*s\" in gons_order", (int)len, name);
            else if (seen & (1u << t))
                want_message = fmt("package gons: duplicate namespace order type %s", ref_types[t]);
            else {
                seen |= 1u << t;
                if (values[1 + t] && *values[1 + t]) {
                    CHECK(nwant < (int)GONS_NKINDS);
                    want_kind[nwant] = t;
                    want_early[nwant++] = early;
                }
            }
        }
        free(items);
    }

    /* On an error, the steps before it are planned all the same (to be freed). */
    CHECK(n == nwant);
    for (int i = 0; i < n; i++) {
        CHECK(steps[i].kind == kind_at((size_t)want_kind[i])); /* the hook's copy of the table (preinit-env.h) */
        CHECK(eq(steps[i].kind->type, ref_types[want_kind[i]]));
        CHECK(steps[i].flag == steps[i].kind->flag);
        CHECK(eq(steps[i].envvar, steps[i].kind->envvar));
        CHECK(steps[i].early == want_early[i]);
        CHECK(steps[i].fd == -1 && steps[i].types == NULL);
        CHECK(eq(steps[i].path, values[1 + want_kind[i]]));
    }
    free_steps(steps, n);
    if (want_message) {
        CHECK(st->err == EINVAL);
        CHECK(eq(st->envvar, "gons_order"));
        CHECK(eq(st->path, order));
        CHECK(eq(st->syscall, ""));
        CHECK(eq(st->message, want_message));
    } else {
        CHECK(st->err == 0);
    }
    if (target)
        set_or_unset("gons_target_pidfd", target);
    free(target);
    free(want_message);
    free(order);
    reset_state();
}

static void check_target(const char *values[NFIELDS])
{
    const struct gons_preinit_state *st = &gons_preinit_state;
    int any = 0;
    for (int i = 0; i < 8; i++)
        any |= values[1 + i] && *values[1 + i];
    CHECK(kind_var_set() == any);

    const int fd = 1000; /* only handed to the setns stub */
    const char *fdstr = values[F_NUMBER] ? values[F_NUMBER] : "";
    char *types = dup_env("gons_target_types");
    const char *t = types ? types : "";

    unsigned long want_mask = 0;
    char *want_message = NULL;
    size_t cap = strlen(t) + 1;
    struct ref_item *items = calloc(cap, sizeof(*items));
    CHECK(items);
    size_t nitems = ref_split(t, items, cap);
    for (size_t i = 0; i < nitems && !want_message; i++) {
        int k = ref_type(items[i].s, items[i].len);
        if (k < 0 || (want_mask & (unsigned long)gons_nskinds[k].flag))
            want_message = fmt("package gons: %s namespace type \"%.*s\" in gons_target_types",
                               k < 0 ? "unknown" : "duplicate", (int)items[i].len, items[i].s);
        else
            want_mask |= (unsigned long)gons_nskinds[k].flag;
    }
    free(items);

    /* The pidfd step plan() makes of a pidfd (the stub has none: it is made here). */
    int mask = types_mask(types);
    struct step step = {NULL, mask, 1, "gons_target_pidfd", (char *)fdstr, types, fd};
    CHECK(mask == 0 ? st->err != 0 : st->err == 0);
    if (mask != 0)
        join(&step, 1, 0);

    CHECK(pidfd_calls == 0);
    CHECK(st->joined == 0);
    CHECK(target_root_fd < 0);
    /* With pid, the pidfd's pid namespace is looked up first (its fdinfo): fd 1000 is not open, so ENOENT. */
    int pid_first = !want_message && (want_mask & CLONE_NEWPID);
    CHECK(st->err == (pid_first ? ENOENT : EINVAL));
    CHECK(!pid_namespace_pending());
    if (want_message) {
        CHECK(setns_calls == 0);
        CHECK(eq(st->envvar, "gons_target_types"));
        CHECK(eq(st->path, t));
        CHECK(eq(st->syscall, ""));
        CHECK(eq(st->message, want_message));
    } else {
        CHECK(pid_first ? setns_calls == 0 : setns_calls == 1 && setns_fd == fd && setns_flags == want_mask);
        CHECK(eq(st->envvar, "gons_target_pidfd"));
        CHECK(eq(st->path, fdstr));
        CHECK(eq(st->syscall, "setns"));
        char *m = fmt("package gons: cannot join %s namespaces of the process behind gons_target_pidfd %s: %s", t,
                      fdstr, strerror(pid_first ? ENOENT : EINVAL));
        CHECK(eq(st->message, m));
        free(m);
    }
    free(want_message);
    free(types);
    reset_state();
}

/* Reference for one gons_cgroup_dirs item: absolute, no empty, "." or ".." component. */
static int ref_cgroup_item(const char *item, size_t len)
{
    if (len == 0 || item[0] != '/')
        return 0;
    for (size_t i = 1; i <= len;) {
        size_t n = 0;
        while (i + n < len && item[i + n] != '/')
            n++;
        if (n == 0 || (n == 1 && item[i] == '.') || (n == 2 && item[i] == '.' && item[i + 1] == '.'))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* cgroup_parse() against the reference: the same items, or a recorded EINVAL for any bad one. */
static void check_cgroup(const char *v)
{
    if (!v)
        return;
    char *copy = strdup(v);
    CHECK(copy);
    int want = 0;
    for (const char *item = v;;) {
        const char *nl = strchr(item, '\n');
        size_t len = nl ? (size_t)(nl - item) : strlen(item);
        if (!ref_cgroup_item(item, len)) {
            want = -1;
            break;
        }
        want++;
        if (!nl)
            break;
        item = nl + 1;
    }
    char **dirs = NULL;
    int got = cgroup_parse(copy, v, &dirs);
    CHECK(got == want);
    CHECK((gons_preinit_state.err != 0) == (want < 0));
    if (want < 0)
        CHECK(gons_preinit_state.err == EINVAL && strcmp(gons_preinit_state.envvar, "gons_cgroup_dirs") == 0 &&
              strcmp(gons_preinit_state.path, v) == 0);
    for (int i = 0, at = 0; i < got; i++) {
        size_t len = strlen(dirs[i]);
        CHECK(strncmp(v + at, dirs[i], len) == 0 && (v[at + len] == '\n' || v[at + len] == '\0'));
        at += (int)len + 1;
    }
    free(dirs);
    free(copy);
    reset_state();
}

static void check_numbers(const char *s)
{
    if (!s)
        return;
    long i = parse_uint(s, strlen(s));
    CHECK(i >= -1 && i <= INT32_MAX);
    CHECK(pidfd_of(s) == -1); /* the stub says EBADF: no pidfd */
    CHECK(pidfd_calls == (i >= 0) && (i < 0 || pidfd_fd == i));
    CHECK(setns_calls == 0);
    reset_state();
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    /* Plain decimal digits only: no sign, no white space. */
    int digits = *s != '\0' && strspn(s, "0123456789") == strlen(s);
    int whole = digits && errno == 0 && end != s && *end == '\0';
    CHECK(i == ((whole && v >= 0 && v <= INT32_MAX) ? v : -1));
}

/* Is entry (a token of LD_PRELOAD) the hook? Same name, or a path to the same file. */
static int ref_is_self(const char *entry, const struct stat *self)
{
    struct stat st;
    if (strcmp(entry, self_path) == 0)
        return 1;
    return strchr(entry, '/') && stat(entry, &st) == 0 && st.st_dev == self->st_dev &&
           st.st_ino == self->st_ino;
}

static void check_scrub(const char *preload)
{
    struct stat self;
    CHECK(stat(self_path, &self) == 0);
    char *want = NULL;
    if (preload) {
        size_t len = strlen(preload);
        want = calloc(1, len + 1);
        char *entry = malloc(len + 1);
        CHECK(want && entry);
        size_t w = 0;
        for (const char *p = preload; *p;) {
            size_t n = strcspn(p, " :\t\n");
            if (n > 0) {
                memcpy(entry, p, n);
                entry[n] = '\0';
                if (!ref_is_self(entry, &self)) {
                    if (w > 0)
                        want[w++] = ':';
                    memcpy(want + w, entry, n);
                    w += n;
                }
            }
            p += n;
            p += strspn(p, " :\t\n");
        }
        want[w] = '\0';
        free(entry);
        if (w == 0) {
            free(want);
            want = NULL;
        }
    }

    scrub_env();

    const char *got = getenv("LD_PRELOAD");
    CHECK(want ? eq(got, want) : got == NULL);
    for (size_t i = 0; i < sizeof(known_vars) / sizeof(known_vars[0]); i++)
        CHECK(getenv(known_vars[i]) == NULL);
    CHECK(gons_preinit_state.err == 0);
    free(want);
}

/* --- libFuzzer ------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    (void)gons_preinit; /* the whole hook is never run here */
    Dl_info info;
    if (!dladdr((void *)&gons_preinit_state, &info) || !info.dli_fname) {
        fprintf(stderr, "fuzz_env: dladdr failed\n");
        abort();
    }
    self_path = info.dli_fname;
    struct stat st;
    if (stat(self_path, &st) != 0) {
        fprintf(stderr, "fuzz_env: cannot stat %s (run it by a path, e.g. ./fuzz_env)\n", self_path);
        abort();
    }
    for (size_t i = 0; i < sizeof(known_vars) / sizeof(known_vars[0]); i++)
        unsetenv(known_vars[i]);
    unsetenv("LD_PRELOAD");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return -1; /* the interesting structure is small; keeps setenv's copies small */
    /* Split into NUL-separated fields; a trailing part without NUL counts too. */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *values[NFIELDS] = {0};
    size_t nfields = 0;
    for (size_t pos = 0; nfields < NFIELDS && pos <= size;) {
        values[nfields++] = buf + pos;
        pos += strlen(buf + pos) + 1;
        if (pos > size)
            break;
    }
    if (size == 0)
        nfields = 0, values[0] = NULL;

    /* LD_PRELOAD with '@' standing for the hook's own path. */
    char *preload = NULL;
    if (values[F_PRELOAD]) {
        const char *p = values[F_PRELOAD];
        size_t ats = 0, len = strlen(p), sl = strlen(self_path);
        for (size_t i = 0; i < len; i++)
            ats += p[i] == '@';
        preload = malloc(len + ats * sl + 1);
        CHECK(preload);
        char *w = preload;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '@') {
                memcpy(w, self_path, sl);
                w += sl;
            } else {
                *w++ = p[i];
            }
        }
        *w = '\0';
    }

    set_or_unset("gons_order", values[F_ORDER]);
    for (int i = 0; i < 8; i++)
        set_or_unset(gons_nskinds[i].envvar, values[1 + i]);
    set_or_unset("LD_PRELOAD", preload);
    set_or_unset("gons_target_types", values[F_TYPES]);
    set_or_unset("gons_target_pidfd", values[F_NUMBER]);
    set_or_unset("gons_parent_pid", values[F_NUMBER]);

    check_plan(values);
    check_target(values);
    check_numbers(values[F_NUMBER]);
    check_scrub(preload);
    check_cgroup(values[F_CGROUP]);

    free(preload);
    free(buf);
    return 0;
}
