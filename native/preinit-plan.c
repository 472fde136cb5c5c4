/* The plan of joins (preinit-plan.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preinit-env.h"
#include "preinit-plan.h"
#include "preinit-state.h"

int pidfd_of(const char *fdstr)
{
    long fd = parse_uint(fdstr, strlen(fdstr));
    if (fd < 0)
        return -1;
    if (syscall(SYS_pidfd_send_signal, (int)fd, 0, NULL, 0) == 0 || errno == ESRCH || errno == EPERM)
        return (int)fd;
    return -1;
}

int types_mask(const char *types)
{
    int mask = 0;
    for (const char *item = types ? types : "", *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        const struct gons_nskind *k = kind_by_name(item, len);
        if (!k || (mask & k->flag)) {
            fail("gons_target_types", types, "", EINVAL,
                 "package gons: %s namespace type \"%.*s\" in gons_target_types", k ? "duplicate" : "unknown",
                 (int)len, item);
            return 0;
        }
        mask |= k->flag;
    }
    return mask;
}

/* Adds a step for kind k when its variable is set and non-empty. */
static int add_step(struct step *steps, int nsteps, const struct gons_nskind *k, int early)
{
    char *path = dup_env(k->envvar);
    if (path)
        steps[nsteps++] = (struct step){k, k->flag, early, k->envvar, path, NULL, -1};
    return nsteps;
}

int plan(struct step steps[GONS_NKINDS])
{
    int nsteps = 0;
    char *target = dup_env("gons_target_pidfd");
    if (target) {
        int fd = pidfd_of(target);
        steps[nsteps++] = (struct step){NULL, 0, 1, "gons_target_pidfd", target, dup_env("gons_target_types"), fd};
        if (kind_var_set())
            fail("gons_target_pidfd", target, "", EINVAL,
                 "package gons: gons_target_pidfd cannot be combined with gons_<type> variables");
        else if (fd < 0)
            fail("gons_target_pidfd", target, "pidfd_send_signal", EBADF,
                 "package gons: invalid gons_target_pidfd \"%s\": not a pidfd", target);
        else
            steps[0].flag = types_mask(steps[0].types);
        return nsteps;
    }
    char *order = dup_env("gons_order");
    int seen = 0;
    for (size_t i = 0; !order && i < GONS_NKINDS; i++)
        nsteps = add_step(steps, nsteps, kind_at(i), 1);
    for (const char *item = order, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        int early = len > 0 && item[0] == '!';
        const char *name = item + early;
        size_t namelen = len - early;
        const struct gons_nskind *k = kind_by_name(name, namelen);
        if (!k) {
            fail("gons_order", order, "", EINVAL, "package gons: unknown namespace type \"%.*s\" in gons_order",
                 (int)namelen, name);
            break;
        }
        if (seen & k->flag) {
            fail("gons_order", order, "", EINVAL, "package gons: duplicate namespace order type %s", k->type);
            break;
        }
        seen |= k->flag;
        nsteps = add_step(steps, nsteps, k, early);
    }
    free(order);
    return nsteps;
}

void close_steps(struct step *steps, int nsteps)
{
    for (int i = 0; i < nsteps; i++) {
        if (steps[i].fd >= 0)
            close(steps[i].fd);
        steps[i].fd = -1;
    }
}

void free_steps(struct step *steps, int nsteps)
{
    for (int i = 0; i < nsteps; i++) {
        free(steps[i].path);
        free(steps[i].types);
    }
}

const struct step *step_joining(const struct step *steps, int nsteps, int flag)
{
    for (int i = 0; i < nsteps; i++)
        if (steps[i].flag & flag)
            return &steps[i];
    return NULL;
}
