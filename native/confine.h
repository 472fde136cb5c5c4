/* Confinement (gons_confine): the target's credentials, in two steps (confine.c). */
#ifndef GONS_CONFINE_H
#define GONS_CONFINE_H

#include "preinit-state.h"

EXPORT int gons_preinit_confine(void);

#pragma GCC visibility push(hidden)

/* Step one, from the constructor after the joins (single-threaded). */
void confine_apply(const char *value);

/* 1 after step one, while the serve-time step (gons_preinit_confine) is pending. */
int confine_applied(void);

#pragma GCC visibility pop

#endif
