/*
 * Confinement (gons_confine), a unit of the pre-init hook (confine.h).
 *
 * gons_confine=RUID,EUID,SUID;RGID,EGID,SGID;G1,G2,...;INH,PRM,EFF,BND,AMB
 * (decimal ids as seen inside the joined user namespace, hex capability
 * masks as in /proc/<pid>/status) asks the hook to give the process the
 * credentials of the target process, in two steps:
 *
 * confine_apply(), from the constructor while single-threaded: groups, gids,
 * uids, the bounding set, inheritable, permitted and effective sets,
 * ambient, no_new_privs. Capabilities, the bounding set and no_new_privs are
 * per thread; every thread Node creates later inherits them from here. Two
 * things are kept beyond the target's sets, because Node still has to load
 * its code from the original root and then enter the target's: the host-root
 * fds, and CAP_SYS_CHROOT in the permitted and effective sets (not in the
 * bounding set: chroot(2) checks only the effective set). For a target whose
 * uids are all non-zero the saved uid stays 0 (and CAP_SETUID is kept) until
 * the second step.
 *
 * gons_preinit_confine(), at serve time (before the first action): enters
 * the target root, closes every fd to the host root, original cwd and target
 * root, and drops the extras. Dropping the saved uid 0 goes through glibc's
 * setxid broadcast to every thread, and the kernel clears the permitted and
 * effective sets of every thread whose uids all become non-zero: the threads
 * Node made in between lose everything (the main thread keeps the target's
 * sets through PR_SET_KEEPCAPS). For a uid-0 target no uid change happens,
 * and threads made before this step keep CAP_SYS_CHROOT when the target
 * lacks it; with no fd or path to the host left in the process it only lets
 * a thread chroot into directories it can already reach (docs/confinement.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"
#include "nsfilter.h"
#include "preinit-pidns.h"
#include "preinit-root.h"
#include "preinit-state.h"

#define CONFINE_NCAPS 64

struct confine_creds {
    uid_t uid[3];            /* real, effective, saved */
    gid_t gid[3];
    gid_t *groups;
    size_t ngroups;
    uint64_t inh, prm, eff, bnd, amb;
};

/* 0: not asked; 1: applied, serve-time step pending; 2: done; -1: failed (fail closed). */
static int confine_stage;
static struct confine_creds confine_target;
/* The saved uid was left 0 to be dropped through the setxid broadcast. */
static int confine_saved_uid_pending;

/*
 * One unsigned decimal (at most 10 digits) or lower-case hex (at most 16)
 * field, ending at one of stops, or at the end of the string when stops is "".
 */
static int confine_number(const char **p, int base, const char *stops, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    for (; *s && !strchr(stops, *s); s++, n++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else
            return -1;
        if (n >= (base == 16 ? 16 : 10))
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (n == 0 || v > max || (*stops ? !*s : *s != 0))
        return -1;
    *out = v;
    *p = s;
    return 0;
}

/* Strict parser of the gons_confine value; 0, or -1 on any malformation. */
static int confine_parse(const char *v, struct confine_creds *c)
{
    const char *p = v;
    uint64_t x;
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 6; i++) {
        if (confine_number(&p, 10, i % 3 < 2 ? "," : ";", 0xfffffffeU, &x) != 0)
            return -1;
        if (i < 3)
            c->uid[i] = (uid_t)x;
        else
            c->gid[i - 3] = (gid_t)x;
        p++;
    }
    size_t max = 1;
    for (const char *q = p; *q && *q != ';'; q++)
        max += *q == ',';
    c->groups = calloc(max, sizeof(gid_t));
    if (!c->groups)
        return -1;
    if (*p == ';') {
        p++; /* no supplementary groups */
    } else {
        for (;;) {
            if (c->ngroups >= max || confine_number(&p, 10, ",;", 0xfffffffeU, &x) != 0)
                return -1;
            c->groups[c->ngroups++] = (gid_t)x;
            if (*p++ == ';')
                break;
        }
    }
    uint64_t *caps[5] = {&c->inh, &c->prm, &c->eff, &c->bnd, &c->amb};
    for (int i = 0; i < 5; i++) {
        if (confine_number(&p, 16, i < 4 ? "," : "", UINT64_MAX, caps[i]) != 0)
            return -1;
        if (i < 4)
            p++;
    }
    /* What a process can hold: effective within permitted, ambient within permitted and inheritable. */
    if ((c->eff & ~c->prm) || (c->amb & ~(c->prm & c->inh)))
        return -1;
    return 0;
}

static int confine_capset(uint64_t inh, uint64_t prm, uint64_t eff)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
    };
    return (int)syscall(SYS_capset, &hdr, data);
}

/* This thread's sets equal the wanted ones (read back, so nothing is assumed about the kernel). */
static int confine_check(uint64_t inh, uint64_t prm, uint64_t eff, uint64_t amb, uint64_t bnd)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &hdr, d) != 0)
        return -1;
    uint64_t gi = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    uint64_t gp = d[0].permitted | (uint64_t)d[1].permitted << 32;
    uint64_t ge = d[0].effective | (uint64_t)d[1].effective << 32;
    if (gi != inh || gp != prm || ge != eff)
        return -1;
    for (int cap = 0; cap < CONFINE_NCAPS; cap++) {
        int b = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (b < 0)
            break; /* beyond the kernel's last capability */
        int a = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (b != !!(bnd & (1ULL << cap)) || a != !!(amb & (1ULL << cap)))
            return -1;
    }
    return 0;
}

static int confine_raise_ambient(uint64_t amb)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        return -1;
    for (int cap = 0; cap < CONFINE_NCAPS; cap++)
        if ((amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            return -1;
    return 0;
}

#define CONFINE_BIT(cap) (1ULL << (cap))

__attribute__((format(printf, 3, 4)))
static void confine_fail(const char *value, const char *syscall_name, const char *fmt, ...)
{
    int err = errno ? errno : EINVAL;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    confine_stage = -1;
    fail("gons_confine", value, syscall_name, err, "package gons: cannot confine to the target's credentials: %s: %s",
         n >= 0 && msg ? msg : "out of memory", strerror(err));
    free(msg);
}

void confine_apply(const char *value)
{
    struct confine_creds *c = &confine_target;
    confine_stage = -1;
    if (gons_preinit_state.err)
        return; /* nothing was joined as asked; the recorded error already refuses every action */
    errno = EINVAL;
    if (confine_parse(value, c) != 0) {
        confine_fail(value, "", "malformed gons_confine value");
        return;
    }
    int nonzero = c->uid[0] && c->uid[1] && c->uid[2];
    uint64_t extra = CONFINE_BIT(CAP_SYS_CHROOT) | (nonzero ? CONFINE_BIT(CAP_SETUID) : 0);
    /* For the late pid namespace join (gons_preinit_join_pid): permitted only, raised for the setns alone. */
    uint64_t pid_extra = pid_namespace_pending() ? CONFINE_BIT(CAP_SYS_ADMIN) : 0;
    errno = 0;
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
        confine_fail(value, "prctl", "PR_SET_KEEPCAPS");
        return;
    }
    if (setgroups(c->ngroups, c->groups) != 0) {
        int err = errno;
        /* Denied in a user namespace whose setgroups is "deny": fine if they already are the target's. */
        gid_t *have = errno == EPERM ? calloc(c->ngroups + 1, sizeof(gid_t)) : NULL;
        int n = have ? getgroups((int)c->ngroups + 1, have) : -1;
        int same = n == (int)c->ngroups;
        for (int i = 0; same && i < n; i++)
            same = have[i] == c->groups[i];
        free(have);
        if (!same) {
            errno = err;
            confine_fail(value, "setgroups", "supplementary groups");
            return;
        }
    }
    if (setresgid(c->gid[0], c->gid[1], c->gid[2]) != 0) {
        confine_fail(value, "setresgid", "gids %u,%u,%u", c->gid[0], c->gid[1], c->gid[2]);
        return;
    }
    /* All non-zero: keep saved uid 0 for now, so that dropping it later clears every thread's sets. */
    if (setresuid(c->uid[0], c->uid[1], nonzero ? 0 : c->uid[2]) != 0) {
        confine_fail(value, "setresuid", "uids %u,%u,%u", c->uid[0], c->uid[1], c->uid[2]);
        return;
    }
    confine_saved_uid_pending = nonzero;
    /* Effective was cleared if the effective uid left 0: take it back from permitted for the changes below. */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &hdr, d) != 0) {
        confine_fail(value, "capget", "current capabilities");
        return;
    }
    uint64_t prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
    if (confine_capset(c->inh, prm, prm) != 0) {
        confine_fail(value, "capset", "inheritable set %llx", (unsigned long long)c->inh);
        return;
    }
    for (int cap = 0; cap < CONFINE_NCAPS; cap++) {
        int b = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (b < 0)
            break;
        if (b == 1 && !(c->bnd & CONFINE_BIT(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            confine_fail(value, "prctl", "PR_CAPBSET_DROP %d", cap);
            return;
        }
    }
    if (confine_capset(c->inh, c->prm | extra | pid_extra, c->eff | extra) != 0) {
        confine_fail(value, "capset", "permitted %llx, effective %llx", (unsigned long long)c->prm,
                     (unsigned long long)c->eff);
        return;
    }
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 || confine_raise_ambient(c->amb) != 0) {
        confine_fail(value, "prctl", "ambient set %llx", (unsigned long long)c->amb);
        return;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        confine_fail(value, "prctl", "PR_SET_NO_NEW_PRIVS");
        return;
    }
    errno = EPERM;
    if (confine_check(c->inh, c->prm | extra | pid_extra, c->eff | extra, c->amb, c->bnd) != 0) {
        confine_fail(value, "capget", "the capability sets did not take");
        return;
    }
    confine_stage = 1;
}

/*
 * Step two, at serve time: enter the target root, close every way back to
 * the host, drop the extras. Returns 1 when confined (now or before), 0 when
 * confinement was not asked for, -errno when it failed (then for good).
 */
EXPORT int gons_preinit_confine(void)
{
    struct confine_creds *c = &confine_target;
    if (confine_stage == 0 || confine_stage == 2)
        return confine_stage / 2;
    if (confine_stage < 0)
        return -EPERM;
    /* The pid namespace first, while CAP_SYS_ADMIN is still in the permitted set. */
    int joined = gons_preinit_join_pid();
    if (joined != 0)
        return joined;
    confine_stage = -1;
    int sealed = seal_target_root();
    if (sealed != 0)
        return sealed;
    if (confine_saved_uid_pending) {
        /* glibc applies this to every thread; the kernel clears the sets of each (PR_SET_KEEPCAPS is per thread). */
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setresuid(-1, -1, c->uid[2]) != 0 ||
            prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
            return -errno;
        confine_saved_uid_pending = 0;
    }
    if (confine_capset(c->inh, c->prm, c->eff) != 0 || confine_raise_ambient(c->amb) != 0)
        return -errno;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -errno;
    if (confine_check(c->inh, c->prm, c->eff, c->amb, c->bnd) != 0)
        return -EPERM;
    if (nsfilter_install() != 0 || nsfilter_install_copies() != 0) /* native/nsfilter.c */
        return -errno;
    confine_stage = 2;
    return 1;
}

int confine_applied(void)
{
    return confine_stage == 1;
}
