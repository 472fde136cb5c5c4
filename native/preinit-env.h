/*
 * Reading the environment protocol: the variables' values, comma lists,
 * numbers and namespace type names, each parsed one way for every variable.
 */
#ifndef GONS_PREINIT_ENV_H
#define GONS_PREINIT_ENV_H

#include <stddef.h>

#include "preinit.h"

#pragma GCC visibility push(hidden)

/* A copy of a non-empty variable, or NULL; running out of memory is recorded, never read as "unset". */
char *dup_env(const char *name);

/*
 * The entry of gons_nskinds whose type is name[0..len), or NULL; kind_at(i):
 * the entry at index i. Every kind a step points to comes from these two, so
 * the hook's steps point into one copy of preinit.h's (static) table.
 */
const struct gons_nskind *kind_by_name(const char *name, size_t len);
const struct gons_nskind *kind_at(size_t i);

/*
 * One item of a comma list: its length in *len; returns the rest after the
 * comma, or NULL after the last item. Every item counts, so an empty one (as
 * after a trailing comma) is an unknown type, where gons would ignore a trailing one.
 */
const char *next_item(const char *item, size_t *len);

/* The one number parser: s[0..len) as plain decimal digits (no sign, no space) up to INT_MAX; else -1. */
long parse_uint(const char *s, size_t len);

/* 1 when any gons_<type> variable is set and non-empty. */
int kind_var_set(void);

#pragma GCC visibility pop

#endif
