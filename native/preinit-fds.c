/* fd hygiene (preinit-fds.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preinit-env.h"
#include "preinit-fds.h"
#include "preinit-state.h"

/* Closes fds lo..hi; close_range (Linux 5.9), else a loop bounded by RLIMIT_NOFILE. */
static void close_fds(unsigned lo, unsigned hi)
{
    if (lo > hi || syscall(SYS_close_range, lo, hi, 0U) == 0)
        return;
    struct rlimit rl;
    unsigned long limit = 1UL << 20; /* the kernel's default fs.nr_open */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < limit)
        limit = (unsigned long)rl.rlim_cur;
    for (unsigned long fd = lo; fd <= hi && fd < limit; fd++)
        close((int)fd);
}

/* One item of gons_keep_fds: an fd number above 2, at most 10 digits; -1 otherwise. */
static long keep_item(const char *s, size_t len)
{
    long v = len <= 10 ? parse_uint(s, len) : -1;
    return v > 2 ? v : -1;
}

/* The smallest fd in the (valid) list that is >= from, or -1. */
static long next_kept(const char *list, long from)
{
    long best = -1;
    for (const char *item = *list ? list : NULL, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        long fd = keep_item(item, len);
        if (fd >= from && (best < 0 || fd < best))
            best = fd;
    }
    return best;
}

void keep_only_fds(const char *list)
{
    for (const char *item = *list ? list : NULL, *rest; item; item = rest) {
        size_t len;
        rest = next_item(item, &len);
        if (keep_item(item, len) < 0) {
            fail("gons_keep_fds", list, "", EINVAL,
                 "package gons: invalid gons_keep_fds \"%s\": must be a comma list of fd numbers above 2", list);
            close_fds(3, ~0U);
            return;
        }
    }
    long from = 3;
    for (long fd; (fd = next_kept(list, from)) >= 0; from = fd + 1)
        close_fds((unsigned)from, (unsigned)fd - 1);
    close_fds((unsigned)from, ~0U);
}
