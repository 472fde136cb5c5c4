/*
 * The pre-init hook's interface to the addon. The hook is LD_PRELOADed into a
 * re-spawned Node process; the addon finds these symbols at run time with
 * dlsym(RTLD_DEFAULT, ...) so that neither links against the other.
 */
#ifndef GONS_PREINIT_H
#define GONS_PREINIT_H

#include <sched.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the layout of struct gons_preinit_state changes. */
#define GONS_PREINIT_VERSION 2

/*
 * What the constructor did. All strings are NUL-terminated and owned by the
 * hook; they stay valid for the lifetime of the process.
 */
struct gons_preinit_state {
    int version;           /* GONS_PREINIT_VERSION */
    int ran;               /* 1 when the constructor ran (0 under secure execution) */
    /* The first failure, or err == 0 when there was none. */
    int err;               /* errno of the failure */
    const char *envvar;    /* e.g. "gons_net" or "gons_order" */
    const char *path;      /* namespace path (or the gons_order value) */
    const char *syscall;   /* "open", "setns", "setresuid", ... or "" for parse errors */
    const char *message;   /* gons-style message, "package gons: ..." */
    unsigned long joined;  /* CLONE_NEW* flags of the namespaces actually joined */
    int root_moved;        /* 1 while the process sits on the target mount namespace's root */
    int pid_pending;       /* 1 while a pid namespace waits for its late join (gons_preinit_join_pid) */
};

/* Name of the exported state symbol, a const struct gons_preinit_state. */
#define GONS_PREINIT_STATE_SYMBOL "gons_preinit_state"
/* int gons_preinit_enter_target_root(void): 0 or -errno. */
#define GONS_PREINIT_ENTER_SYMBOL "gons_preinit_enter_target_root"
/* int gons_preinit_leave_target_root(void): 0 or -errno. */
#define GONS_PREINIT_LEAVE_SYMBOL "gons_preinit_leave_target_root"
/*
 * int gons_preinit_confine(void): the serve-time step of gons_confine (enter
 * the target root, close the host-root fds, drop what was kept to get
 * there). 1 when confined, 0 when confinement was not asked for, -errno when
 * it failed (for good: the process must run nothing).
 */
#define GONS_PREINIT_CONFINE_SYMBOL "gons_preinit_confine"
/* int gons_preinit_seal_target_root(void): enter the target root and close every fd back to the host; 0 or -errno. */
#define GONS_PREINIT_SEAL_SYMBOL "gons_preinit_seal_target_root"

/*
 * int gons_preinit_join_pid(void): makes the target pid namespace the calling
 * thread's namespace for children (the hook only kept it) and closes the fd
 * to it; 0 or -errno. The thread may create no threads afterwards: call it
 * from Node's main thread once libuv's thread pool exists, before the first
 * action.
 */
#define GONS_PREINIT_JOIN_PID_SYMBOL "gons_preinit_join_pid"

typedef int (*gons_preinit_root_fn)(void);

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/*
 * The one table of namespace kinds: the hook plans and joins from it, and the
 * addon hands it to TypeScript (lib/namespaces.ts). Its order is the default
 * gons_order, with every entry opened up front ("!user,!mnt,...,!uts"): user
 * first, so that the other joins are judged with the capabilities gained in
 * the target user namespace. procname names the /proc/self/ns entry a join
 * changes (for pid and time, the one for children), to skip namespaces the
 * process is already in.
 */
struct gons_nskind {
    const char *type;
    const char *envvar;
    const char *procname;
    int flag;
};
#define GONS_NSKIND(type, procname, flag) { type, "gons_" type, procname, flag }
static const struct gons_nskind gons_nskinds[] = {
    GONS_NSKIND("user", "user", CLONE_NEWUSER),
    GONS_NSKIND("mnt", "mnt", CLONE_NEWNS),
    GONS_NSKIND("cgroup", "cgroup", CLONE_NEWCGROUP),
    GONS_NSKIND("ipc", "ipc", CLONE_NEWIPC),
    GONS_NSKIND("net", "net", CLONE_NEWNET),
    GONS_NSKIND("pid", "pid_for_children", CLONE_NEWPID),
    GONS_NSKIND("time", "time_for_children", CLONE_NEWTIME),
    GONS_NSKIND("uts", "uts", CLONE_NEWUTS),
};
#define GONS_NKINDS (sizeof(gons_nskinds) / sizeof(gons_nskinds[0]))

#ifdef __cplusplus
}
#endif

#endif
