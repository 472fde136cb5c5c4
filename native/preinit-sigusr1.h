/*
 * SIGUSR1 (Node's inspector) ignored for good in the process the
 * constructor ran in; sigaction() and signal() are interposed to keep it so.
 */
#ifndef GONS_PREINIT_SIGUSR1_H
#define GONS_PREINIT_SIGUSR1_H

#pragma GCC visibility push(hidden)

/* Fails closed: a SIGUSR1 that cannot be ignored is recorded, so nothing is joined. */
void ignore_sigusr1(void);

/* From here on, this process (the one Node runs in) keeps SIGUSR1 ignored. */
void guard_sigusr1(void);

#pragma GCC visibility pop

#endif
