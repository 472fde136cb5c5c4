/*
 * The plan: which namespaces to join, in which order, from gons_order and
 * the gons_<type> variables, or from gons_target_pidfd and
 * gons_target_types. Nothing is joined here (preinit-join.c does).
 */
#ifndef GONS_PREINIT_PLAN_H
#define GONS_PREINIT_PLAN_H

#include "preinit.h"

#pragma GCC visibility push(hidden)

/*
 * One planned join, as in nsenter's enter_namespaces(): a namespace path (kind
 * set), or the pidfd of gons_target_pidfd (kind NULL), which joins every kind
 * in flag at once. envvar and path name the step in messages; early: open the
 * path up front ("!").
 */
struct step {
    const struct gons_nskind *kind;
    int flag;
    int early;
    const char *envvar;
    char *path;
    char *types; /* the pidfd's gons_target_types */
    int fd;
};

/*
 * The fd number in gons_target_pidfd if it is a pidfd (of a live or dead
 * process), else -1: a hostile value must not make the hook close stdout.
 */
int pidfd_of(const char *fdstr);

/* gons_target_types as a mask of the CLONE_NEW* flags of distinct kinds; 0 after recording an error. */
int types_mask(const char *types);

/*
 * Plans the joins; returns the number of steps. With gons_target_pidfd: one
 * step, its pidfd, which joins the process's namespaces of the kinds in
 * gons_target_types with one setns(pidfd, mask) (Linux 5.8): the pidfd pins
 * the process, so a pid recycled since the parent opened it cannot be joined.
 * Otherwise gons_order (or the default order, which is the table itself): a
 * step for each kind whose variable is set. An error is recorded, and the
 * steps planned so far are still returned, to be closed and freed.
 */
int plan(struct step steps[GONS_NKINDS]);

/* Closes the steps' fds: after the joins, and the pidfd also when nothing was joined (it must not leak into Node). */
void close_steps(struct step *steps, int nsteps);

/* Frees the steps' strings. */
void free_steps(struct step *steps, int nsteps);

/* The step whose join includes flag's kind, or NULL. */
const struct step *step_joining(const struct step *steps, int nsteps, int flag);

#pragma GCC visibility pop

#endif
