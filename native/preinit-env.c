/* Reading the environment protocol (preinit-env.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "preinit-env.h"
#include "preinit-state.h"

char *dup_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return NULL;
    char *copy = strdup(v);
    if (!copy)
        fail(name, "", "strdup", ENOMEM, "package gons: out of memory reading %s", name);
    return copy;
}

const struct gons_nskind *kind_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < GONS_NKINDS; i++)
        if (strlen(gons_nskinds[i].type) == len && memcmp(gons_nskinds[i].type, name, len) == 0)
            return &gons_nskinds[i];
    return NULL;
}

const struct gons_nskind *kind_at(size_t i)
{
    return &gons_nskinds[i];
}

const char *next_item(const char *item, size_t *len)
{
    const char *comma = strchr(item, ',');
    *len = comma ? (size_t)(comma - item) : strlen(item);
    return comma ? comma + 1 : NULL;
}

long parse_uint(const char *s, size_t len)
{
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return len > 0 ? v : -1;
}

int kind_var_set(void)
{
    for (size_t i = 0; i < GONS_NKINDS; i++) {
        const char *v = getenv(gons_nskinds[i].envvar);
        if (v && *v)
            return 1;
    }
    return 0;
}
