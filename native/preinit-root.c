/* The root handoff (preinit-root.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "preinit-root.h"
#include "preinit-state.h"

int orig_root_fd = -1;
int orig_cwd_fd = -1;
int target_root_fd = -1;

static int chroot_to(int dirfd)
{
    if (fchdir(dirfd) != 0 || chroot(".") != 0)
        return -errno;
    return 0;
}

int keep_original_root(const char *envvar, const char *path)
{
    orig_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    orig_cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (orig_root_fd < 0 || orig_cwd_fd < 0) {
        int err = errno;
        fail(envvar, path, "open", err, "package gons: cannot keep original root and working directory: %s",
             strerror(err));
        return -1;
    }
    return 0;
}

void hand_back_root(const char *envvar, const char *path)
{
    target_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (target_root_fd < 0) {
        int err = errno;
        fail(envvar, path, "open", err, "package gons: cannot keep root of %s \"%s\": %s", envvar, path,
             strerror(err));
    }
    int r = chroot_to(orig_root_fd);
    if (r == 0 && fchdir(orig_cwd_fd) != 0)
        r = -errno;
    if (r != 0)
        fail(envvar, path, "chroot", -r,
             "package gons: cannot return to the original root after joining %s \"%s\": %s", envvar, path,
             strerror(-r));
}

int seal_target_root(void)
{
    if (target_root_fd >= 0 && !__atomic_load_n(&gons_preinit_state.root_moved, __ATOMIC_ACQUIRE)) {
        int r = chroot_to(target_root_fd);
        if (r != 0)
            return r;
        __atomic_store_n(&gons_preinit_state.root_moved, 1, __ATOMIC_RELEASE);
    }
    int *fds[] = {&orig_root_fd, &orig_cwd_fd, &target_root_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0 && close(*fds[i]) != 0)
            return -errno;
        *fds[i] = -1;
    }
    return 0;
}

EXPORT int gons_preinit_seal_target_root(void)
{
    if (target_root_fd < 0 && !__atomic_load_n(&gons_preinit_state.root_moved, __ATOMIC_ACQUIRE))
        return -ENOENT;
    return seal_target_root();
}

EXPORT int gons_preinit_enter_target_root(void)
{
    if (target_root_fd < 0)
        return -ENOENT;
    if (gons_preinit_state.root_moved)
        return 0;
    int r = chroot_to(target_root_fd);
    if (r == 0)
        __atomic_store_n(&gons_preinit_state.root_moved, 1, __ATOMIC_RELEASE);
    return r;
}

EXPORT int gons_preinit_leave_target_root(void)
{
    if (!gons_preinit_state.root_moved)
        return 0;
    int r = chroot_to(orig_root_fd);
    if (r == 0 && fchdir(orig_cwd_fd) != 0)
        r = -errno;
    if (r == 0)
        __atomic_store_n(&gons_preinit_state.root_moved, 0, __ATOMIC_RELEASE);
    return r;
}
