/*
 * The hook's record of what it did, shared by its units: gons_preinit_state
 * (the one symbol the addon reads, see preinit.h), the first-failure rule
 * that fills it, and the lookup of libc's definitions behind the symbols the
 * hook interposes. Internal to the hook: everything declared in the hook's
 * headers is hidden, whatever the compiler flags; only what is marked EXPORT
 * leaves the shared object.
 */
#ifndef GONS_PREINIT_STATE_H
#define GONS_PREINIT_STATE_H

#include "preinit.h"

/* The hook's exported symbols: the addon's (preinit.h) and the libc functions it interposes. */
#define EXPORT __attribute__((visibility("default")))

extern EXPORT struct gons_preinit_state gons_preinit_state;

#pragma GCC visibility push(hidden)

/* Records the first failure; later calls are ignored so the root cause wins. */
__attribute__((format(printf, 5, 6)))
void fail(const char *envvar, const char *path, const char *syscall_name, int err, const char *fmt, ...);

/* The next definition of a symbol after this library (libc's); resolved on first use into *cache. */
void *next_symbol(void **cache, const char *name);

/* The constructor (preinit.c); the sanitizer driver builds it without the constructor attribute and calls it. */
void gons_preinit(void);

#pragma GCC visibility pop

#endif
