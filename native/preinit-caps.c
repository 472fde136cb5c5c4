/* CAP_SYS_PTRACE dropped (preinit-caps.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preinit-caps.h"
#include "preinit-state.h"

void drop_ptrace(const char *envvar, const char *path)
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
