/*
 * The hook's state (preinit-state.h): what the constructor did, recorded for
 * Node (lib/status.ts) rather than printed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preinit-state.h"

EXPORT struct gons_preinit_state gons_preinit_state = {
    GONS_PREINIT_VERSION, 0, 0, "", "", "", "", 0, 0, 0,
};

__attribute__((format(printf, 5, 6)))
void fail(const char *envvar, const char *path, const char *syscall_name, int err,
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

void *next_symbol(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}
