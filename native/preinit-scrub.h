/*
 * Environment scrubbing: the protocol's variables and the hook's LD_PRELOAD
 * entry leave the environment, and the exec-time environment block (what
 * /proc/<pid>/environ shows) is cleared.
 */
#ifndef GONS_PREINIT_SCRUB_H
#define GONS_PREINIT_SCRUB_H

#pragma GCC visibility push(hidden)

/*
 * Removes the protocol's variables (the kinds' and the others) and the
 * hook's LD_PRELOAD entry from the environment.
 */
void scrub_env(void);

/*
 * /proc/<pid>/environ shows the environment block as it was at exec, however
 * the environment changes later, and it holds the parent's whole environment.
 * Measured on Linux 6.18: a process in a container that shares the child's uid
 * reads it despite non-dumpable. So every string in that block moves to the
 * heap, environ points at the copies, and the block is cleared. The block's
 * bounds come from /proc/self/stat (env_start, env_end: fields 50 and 51).
 */
void scrub_exec_environ(void);

#pragma GCC visibility pop

#endif
