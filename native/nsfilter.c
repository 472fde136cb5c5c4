/*
 * The seccomp filters of a confined child, a unit of the pre-init hook
 * (nsfilter.h), installed by confine.c.
 *
 * A container usually runs under its engine's seccomp filter (Docker's
 * default profile refuses unshare, setns, mount, ptrace, bpf, keyctl, ...
 * to a container without CAP_SYS_ADMIN). The kernel hands a process's
 * filters out only to a CAP_SYS_ADMIN tracer of the stopped process
 * (PTRACE_SECCOMP_GET_FILTER): the parent copies them where it can
 * (gons_seccomp, below), and every confined child also installs a fixed
 * filter of its own at serve time (with SECCOMP_FILTER_FLAG_TSYNC: every
 * thread Node made gets it), on top of no_new_privs. That one refuses with
 * EPERM what lets a process leave or widen its container, whatever its
 * capabilities: new namespaces (unshare and clone with a CLONE_NEW* flag;
 * without this an unprivileged process creates a user namespace and gains
 * every capability inside it), setns, the mount API, ptrace and
 * process_vm_*, pidfd_getfd, kernel modules, kexec, bpf, perf_event_open,
 * userfaultfd, keyrings, open_by_handle_at, swap, reboot and acct. clone3
 * answers ENOSYS (its flags sit in memory a filter cannot read; glibc then
 * falls back to clone), as Docker's profile does. System calls of another
 * ABI (i386, x32) answer ENOSYS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsfilter.h"
#include "preinit-env.h"
#include "preinit.h"

#if defined(__x86_64__)
#define NSFILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NSFILTER_ARCH AUDIT_ARCH_AARCH64
#endif

/* The CLONE_NEW* flags; CLONE_NEWTIME (0x80) only for unshare: in clone's flags that bit is the exit signal's. */
#define NSFILTER_CLONE_NEW                                                                                    \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* Older libc headers lack it; x86_64 and aarch64 share the number. */
#if defined(NSFILTER_ARCH) && !defined(SYS_clone3)
#define SYS_clone3 435
#endif

#ifdef NSFILTER_ARCH
static const long nsfilter_denied[] = {
    SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev,
    SYS_kexec_load, SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_bpf, SYS_perf_event_open,
    SYS_userfaultfd, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_open_by_handle_at, SYS_swapon, SYS_swapoff,
    SYS_reboot, SYS_acct,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    /* The new mount API and pidfd_getfd (not in every libc's headers): x86_64 and aarch64 share these numbers. */
    428 /* open_tree */, 429 /* move_mount */, 430 /* fsopen */, 431 /* fsconfig */, 432 /* fsmount */,
    433 /* fspick */, 438 /* pidfd_getfd */, 442 /* mount_setattr */,
};
#define NSFILTER_NDENIED (sizeof(nsfilter_denied) / sizeof(nsfilter_denied[0]))
#endif

int nsfilter_install(void)
{
#ifndef NSFILTER_ARCH
    errno = ENOSYS; /* no filter written for this architecture: confinement fails closed */
    return -1;
#else
    enum { PROLOGUE = 6, EPILOGUE = 9 };
    struct sock_filter prog[PROLOGUE + NSFILTER_NDENIED + EPILOGUE];
    size_t n = 0;
    /* Jumps are relative to the next instruction; the targets are the last two. */
    const size_t total = sizeof(prog) / sizeof(prog[0]);
    const size_t eperm = total - 2, enosys = total - 1;
#define NSF_TO(target) ((unsigned char)((target) - (n + 1)))
    prog[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), n++;
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NSFILTER_ARCH, 0, NSF_TO(enosys)), n++;
    prog[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)), n++;
#if defined(__x86_64__)
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, NSF_TO(enosys), 0), n++;
#else
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0), n++;
#endif
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, NSF_TO(enosys), 0), n++;
    /* unshare and clone: look at the flags (args[0]; its low word, on these little-endian ABIs). */
    const size_t flags = PROLOGUE + NSFILTER_NDENIED + 2;
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, NSF_TO(flags), 0), n++;
    for (size_t i = 0; i < NSFILTER_NDENIED; i++)
        prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nsfilter_denied[i], NSF_TO(eperm), 0), n++;
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, NSF_TO(flags + 2), 0), n++;
    prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), n++;
    /* flags: unshare */
    prog[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), n++;
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSFILTER_CLONE_NEW | CLONE_NEWTIME, NSF_TO(eperm), 0), n++;
    /* flags + 2: clone */
    prog[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), n++;
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSFILTER_CLONE_NEW, NSF_TO(eperm), 0), n++;
    prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), n++;
    prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)), n++;
    prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)), n++;
#undef NSF_TO
    if (n != total) {
        errno = EINVAL; /* a layout mistake: never install a filter whose jumps are wrong */
        return -1;
    }
    struct sock_fprog fprog = {(unsigned short)n, prog};
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
    if (r > 0)
        errno = ESRCH; /* TSYNC: r names a thread that could not be synchronised */
    return r == 0 ? 0 : -1;
#endif
}

/*
 * gons_seccomp: the target's own filters, as the parent read them
 * (PTRACE_SECCOMP_GET_FILTER, lib/confine.ts), most recently installed
 * first: comma-separated, each the hex of its raw struct sock_filter array.
 * Read before the environment is scrubbed; installed at serve time after
 * gons's own filter, oldest first, so that they stack as in the target.
 * Only with gons_confine; a malformed value fails confinement (closed).
 */
#define NSFILTER_ENV "gons_seccomp"
static char *nsfilter_copied;

void nsfilter_read_env(void)
{
    nsfilter_copied = dup_env(NSFILTER_ENV);
}

static int nsfilter_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int nsfilter_install_copies(void)
{
    const char *v = nsfilter_copied;
    if (!v)
        return 0;
    size_t nfilters = 1;
    for (const char *p = v; *p; p++)
        nfilters += *p == ',';
    /* Oldest first: the last item of the list. */
    for (size_t want = nfilters; want-- > 0;) {
        const char *item = v;
        for (size_t i = 0; i < want; i++)
            item = strchr(item, ',') + 1;
        size_t len = strcspn(item, ",");
        size_t n = len / (2 * sizeof(struct sock_filter));
        if (len == 0 || len % (2 * sizeof(struct sock_filter)) != 0 || n > BPF_MAXINSNS) {
            errno = EINVAL;
            return -1;
        }
        struct sock_filter *prog = calloc(n, sizeof(struct sock_filter));
        if (!prog)
            return -1;
        unsigned char *bytes = (unsigned char *)prog;
        for (size_t i = 0; i < len / 2; i++) {
            int hi = nsfilter_hex(item[2 * i]), lo = nsfilter_hex(item[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                free(prog);
                errno = EINVAL;
                return -1;
            }
            bytes[i] = (unsigned char)(hi << 4 | lo);
        }
        struct sock_fprog fprog = {(unsigned short)n, prog};
        long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
        int err = r > 0 ? ESRCH : errno;
        free(prog);
        if (r != 0) {
            errno = err;
            return -1;
        }
    }
    return 0;
}
