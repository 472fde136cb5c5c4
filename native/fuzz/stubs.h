/*
 * Force-included (-include) into every hook unit and into fuzz_env.c by
 * scripts/fuzz.sh: the hook's syscall(), fork(), getenv(), setenv() and
 * unsetenv() become fuzz_env.c's stubs, so that nothing the fuzzer drives can
 * switch a namespace or change the process environment. Function-like, so the
 * struct member gons_preinit_state.syscall is untouched.
 */
#ifndef GONS_FUZZ_STUBS_H
#define GONS_FUZZ_STUBS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

long fuzz_syscall(long nr, ...);
pid_t fuzz_fork(void);
char *fuzz_getenv(const char *name);
int fuzz_setenv(const char *name, const char *value, int overwrite);
int fuzz_unsetenv(const char *name);

#define syscall(...) fuzz_syscall(__VA_ARGS__)
#define getenv(name) fuzz_getenv(name)
#define setenv(name, value, overwrite) fuzz_setenv(name, value, overwrite)
#define unsetenv(name) fuzz_unsetenv(name)
#define fork() fuzz_fork()

#endif
