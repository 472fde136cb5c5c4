/* SIGUSR1 ignored for good (preinit-sigusr1.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "preinit-sigusr1.h"
#include "preinit-state.h"

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

void ignore_sigusr1(void)
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

void guard_sigusr1(void)
{
    __atomic_store_n(&guarded_pid, getpid(), __ATOMIC_RELEASE);
}
