/*
 * While the process sits on the target's root, a dlopen() would load code
 * from the container's filesystem into this privileged process: refused.
 * libuv (process.dlopen) reads dlerror() after a failure, so a refusal leaves
 * a thread-local message that dlerror() returns once, like glibc's own.
 * glibc's internal loads (NSS, iconv) do not come through here; pin_nss
 * covers NSS. The pass-through calls compile to tail jumps (checked with
 * objdump), so glibc still sees the real caller for its RUNPATH and $ORIGIN.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "preinit-state.h"

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
