/* Environment scrubbing (preinit-scrub.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preinit-scrub.h"
#include "preinit-state.h"

/* The protocol's other variables; removed from the environment like the kinds'. */
static const char *const other_vars[] = {"gons_order", "gons_preserve_credentials", "gons_parent_pid",
                                         "gons_target_pidfd", "gons_target_types", "gons_keep_fds",
                                         "gons_confine", "gons_cgroup_dirs", "gons_seccomp"};

/* Same file by device and inode; for LD_PRELOAD entries that spell our path differently. */
static int same_file(const char *a, const struct stat *b)
{
    struct stat st;
    return strchr(a, '/') && stat(a, &st) == 0 && st.st_dev == b->st_dev && st.st_ino == b->st_ino;
}

/*
 * Removes this library from LD_PRELOAD (keeping the user's other entries) so
 * that grandchildren do not inherit the hook. The dynamic loader already read
 * LD_PRELOAD, so changing it now has no effect on this process. Our name may
 * no longer stat: a parent whose path LD_PRELOAD cannot spell passes us as
 * /proc/self/fd/N, and that fd is closed by now; the name still matches.
 */
static void scrub_preload(void)
{
    const char *preload = getenv("LD_PRELOAD");
    Dl_info info;
    struct stat self;
    if (!preload || !dladdr((void *)&gons_preinit_state, &info) || !info.dli_fname)
        return;
    int have_self = stat(info.dli_fname, &self) == 0;
    char *copy = strdup(preload);
    char *kept = calloc(1, strlen(preload) + 1);
    if (!copy || !kept) {
        free(copy);
        free(kept);
        return;
    }
    char *save = NULL;
    for (char *e = strtok_r(copy, " :\t\n", &save); e; e = strtok_r(NULL, " :\t\n", &save)) {
        if (strcmp(e, info.dli_fname) == 0 || (have_self && same_file(e, &self)))
            continue;
        if (*kept)
            strcat(kept, ":");
        strcat(kept, e);
    }
    if (*kept)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
    free(copy);
    free(kept);
}

void scrub_env(void)
{
    for (size_t i = 0; i < GONS_NKINDS; i++)
        unsetenv(gons_nskinds[i].envvar);
    for (size_t i = 0; i < sizeof(other_vars) / sizeof(other_vars[0]); i++)
        unsetenv(other_vars[i]);
    scrub_preload();
}

void scrub_exec_environ(void)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap = cap ? cap * 2 : 1024);
            if (!grown)
                break;
            buf = grown;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    unsigned long start = 0, end = 0;
    char *fields = buf ? (buf[len] = 0, strrchr(buf, ')')) : NULL;
    /* After ")" comes field 3; env_start and env_end are fields 50 and 51. */
    for (int field = 2; fields && field < 51; field++) {
        fields = strchr(fields + 1, ' ');
        if (fields && field + 1 == 50)
            start = strtoul(fields + 1, NULL, 10);
        if (fields && field + 1 == 51)
            end = strtoul(fields + 1, NULL, 10);
    }
    free(buf);
    if (!start || end <= start)
        return;
    size_t count = 0;
    for (char **e = environ; *e; e++)
        count++;
    char **copy = calloc(count + 1, sizeof(char *));
    if (!copy)
        return;
    for (size_t i = 0; i < count; i++) {
        unsigned long at = (unsigned long)environ[i];
        copy[i] = (at >= start && at < end) ? strdup(environ[i]) : environ[i];
        if (!copy[i]) {
            /* Out of memory: keep the block as it is rather than lose variables. */
            for (size_t j = 0; j < i; j++)
                if (copy[j] != environ[j])
                    free(copy[j]);
            free(copy);
            return;
        }
    }
    environ = copy;
    memset((void *)start, 0, end - start);
}
