/*
 * Joining the target's cgroups (gons_cgroup_dirs), a unit of the pre-init
 * hook (cgroup.h).
 *
 * gons_cgroup_dirs=DIR\nDIR...: absolute paths of cgroup directories, one
 * for each cgroup v1 hierarchy the target process is in and/or its cgroup v2
 * directory, as the parent found them in /proc/<pid>/cgroup and its own
 * /proc/self/mountinfo (lib/cgroup.ts). First thing after closing inherited
 * fds, before any namespace is joined and while the process still sits on
 * the host's root, the hook moves the process into each of them, as
 * `runc exec` does: the device cgroup judges the *opener's* cgroup, so a
 * child left in the host program's cgroup could open a device node the
 * container planted but may not open itself; the container's limits apply
 * to the child the same way.
 *
 * The value is parsed strictly (absolute paths; no empty, "." or ".."
 * component; no NUL, and newline only as the separator) and every directory
 * is opened, one component at a time without following symlinks, and checked
 * to be on a cgroup file system, before the first move. Then "0" (this
 * process) is written to each <dir>/cgroup.procs. The first failure is
 * recorded, so nothing is joined and no action runs; a failure after a move
 * leaves the process in the cgroups joined so far, where it runs nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cgroup.h"
#include "preinit-env.h"
#include "preinit-state.h"

#define CGROUP_ENV "gons_cgroup_dirs"
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* An absolute path without empty, "." or ".." components. */
static int cgroup_dir_ok(const char *d)
{
    if (d[0] != '/')
        return 0;
    for (const char *c = d + 1;; c++) {
        size_t len = strcspn(c, "/");
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        c += len;
        if (!*c)
            return 1;
    }
}

int cgroup_parse(char *value, const char *whole, char ***dirs)
{
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == '\n';
    *dirs = calloc(n, sizeof(char *));
    if (!*dirs) {
        fail(CGROUP_ENV, "", "calloc", ENOMEM, "package gons: out of memory reading %s", CGROUP_ENV);
        return -1;
    }
    size_t count = 0;
    char *save = NULL;
    for (char *item = value, *dir; count < n && (dir = strtok_r(item, "\n", &save)) != NULL; item = NULL)
        (*dirs)[count++] = dir;
    /* strtok_r skips empty items: an empty line (or a leading or trailing newline) is malformed. */
    int bad = count != n;
    for (size_t i = 0; !bad && i < count; i++)
        bad = !cgroup_dir_ok((*dirs)[i]);
    if (bad) {
        fail(CGROUP_ENV, whole, "", EINVAL,
             "package gons: invalid %s value: must be absolute cgroup directories, one per line, without empty, "
             "\".\" or \"..\" components",
             CGROUP_ENV);
        return -1;
    }
    return (int)count;
}

/* Opens dir as an O_PATH fd, one component at a time, refusing symlinks on the way; -1 with errno. */
static int cgroup_open_dir(const char *dir)
{
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char *copy = fd >= 0 ? strdup(dir) : NULL;
    if (fd >= 0 && !copy) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    char *save = NULL;
    for (char *c = copy, *name; fd >= 0 && (name = strtok_r(c, "/", &save)) != NULL; c = NULL) {
        int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        close(fd);
        errno = err;
        fd = next;
    }
    free(copy);
    return fd;
}

void cgroup_join(void)
{
    char *value = dup_env(CGROUP_ENV);
    if (!value)
        return;
    char *whole = strdup(value); /* for messages: cgroup_parse cuts value into pieces */
    char **dirs = NULL;
    int n = whole ? cgroup_parse(value, whole, &dirs) : -1;
    if (!whole)
        fail(CGROUP_ENV, "", "strdup", ENOMEM, "package gons: out of memory reading %s", CGROUP_ENV);
    int *procs = n > 0 ? malloc((size_t)n * sizeof(int)) : NULL;
    if (n > 0 && !procs)
        fail(CGROUP_ENV, "", "malloc", ENOMEM, "package gons: out of memory reading %s", CGROUP_ENV);
    int opened = 0;
    for (; procs && opened < n; opened++) {
        const char *call = "open";
        int dirfd = cgroup_open_dir(dirs[opened]);
        struct statfs sfs;
        if (dirfd >= 0) {
            call = "fstatfs";
            if (fstatfs(dirfd, &sfs) != 0) {
                procs[opened] = -1;
            } else if (sfs.f_type != CGROUP_SUPER_MAGIC && sfs.f_type != CGROUP2_SUPER_MAGIC) {
                errno = ENOTDIR;
                procs[opened] = -1;
            } else {
                call = "open";
                procs[opened] = openat(dirfd, "cgroup.procs", O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
            }
            int err = errno;
            close(dirfd);
            errno = err;
        } else {
            procs[opened] = -1;
        }
        if (procs[opened] < 0) {
            int err = errno;
            fail(CGROUP_ENV, dirs[opened], call, err, "package gons: cannot join cgroup \"%s\": %s", dirs[opened],
                 strcmp(call, "fstatfs") == 0 && err == ENOTDIR ? "not a cgroup directory" : strerror(err));
            break;
        }
    }
    /* Moves only once every directory was opened: a malformed or missing one joins nothing. */
    for (int i = 0; procs && opened == n && i < n; i++) {
        if (write(procs[i], "0", 1) != 1) {
            int err = errno;
            fail(CGROUP_ENV, dirs[i], "write", err, "package gons: cannot join cgroup \"%s\": %s", dirs[i],
                 strerror(err));
            break;
        }
    }
    for (int i = 0; procs && i < opened && i < n; i++)
        if (procs[i] >= 0)
            close(procs[i]);
    free(procs);
    free(dirs);
    free(whole);
    free(value);
}
