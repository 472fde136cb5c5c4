/* The target's cgroups (gons_cgroup_dirs), joined before anything else of the target is touched (cgroup.c). */
#ifndef GONS_CGROUP_H
#define GONS_CGROUP_H

#pragma GCC visibility push(hidden)

/*
 * gons_cgroup_dirs: moves the process into each directory it names, or
 * records why not (see cgroup.c).
 */
void cgroup_join(void);

/*
 * Splits value (changed in place) into its paths; returns their number
 * (> 0), or -1 after recording what is malformed (whole: the value as it
 * was, for the message). *dirs is allocated for the caller to free.
 */
int cgroup_parse(char *value, const char *whole, char ***dirs);

#pragma GCC visibility pop

#endif
