/* fd hygiene: gons_keep_fds, the fds a child may inherit. */
#ifndef GONS_PREINIT_FDS_H
#define GONS_PREINIT_FDS_H

#pragma GCC visibility push(hidden)

/*
 * gons_keep_fds: fds a parent inherited without close-on-exec (a shell's
 * "exec 300<dir") must not reach the child and the programs its actions run.
 * When the variable is set, every fd above 2 not in its comma list is closed
 * before the hook opens anything; "" keeps none. A malformed list fails
 * closed: it is recorded (so nothing is joined) and every fd above 2 is
 * closed, the channel included, since the list cannot be trusted to name it.
 */
void keep_only_fds(const char *list);

#pragma GCC visibility pop

#endif
