/* The seccomp filters of a confined child (nsfilter.c): gons's own, and the target's copied ones (gons_seccomp). */
#ifndef GONS_NSFILTER_H
#define GONS_NSFILTER_H

#pragma GCC visibility push(hidden)

/* Installs the filter on every thread of the process; 0, or -1 with errno. */
int nsfilter_install(void);

/* Reads gons_seccomp, before the environment is scrubbed. */
void nsfilter_read_env(void);

/* Installs the copied filters (if any); 0, or -1 with errno (EINVAL for a malformed value). */
int nsfilter_install_copies(void);

#pragma GCC visibility pop

#endif
