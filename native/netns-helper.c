// gons_netns_helper: makes one socket in a network namespace that can only be
// joined from inside its user namespace, for a parent that cannot join it
// itself (a multi-threaded process may not join a user namespace); or hands
// over the root of a mount namespace given by path (a multi-threaded process
// may not join a mount namespace either: its fs_struct is shared).
//
// Started by the addon (posix_spawn, empty environment) with:
//   fd 3: the user namespace (a namespace file) or the target's pidfd
//   fd 4: the network namespace (a namespace file), or -1 with a pidfd
//   fd 5: a SOCK_SEQPACKET socket to send the result on
//   argv: mode ("ns" or "pidfd") domain type protocol address port reuseaddr v6only backlog
//         (address "-" for none; -1 for an option not to set)
// It closes every other fd, becomes non-dumpable, joins, makes the socket,
// sends it (SCM_RIGHTS) with the message "ok", or sends "<errno> <syscall>",
// and exits. It runs nothing else; libc only.
//
// The root request: argv "root" "user"|"nouser"; fd 3 the user namespace (a
// dup of fd 4 with "nouser"), fd 4 the mount namespace, fd 5 the reply. It
// joins the user namespace if asked, then the mount namespace (which sets its
// root and cwd to that namespace's root), and sends an O_PATH fd of "/": the
// parent resolves paths below it with RESOLVE_IN_ROOT, as it does below a
// target's /proc/<pid>/root. Nothing of the namespace is read or opened here
// but its root directory, as a path-only fd.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// NET_FD is the mount namespace for the root request.
enum { NS_FD = 3, NET_FD = 4, REPLY_FD = 5 };

// Sends "<errno> <syscall>" and exits 1.
__attribute__((noreturn)) static void fail(const char *syscall) {
  char msg[64];
  int n = snprintf(msg, sizeof msg, "%d %s", errno, syscall);
  if (n > 0) send(REPLY_FD, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, MSG_NOSIGNAL);
  _exit(1);
}

// Sends fd (SCM_RIGHTS) with the message "ok" and exits 0.
__attribute__((noreturn)) static void send_fd(int fd) {
  char ok[2] = "ok";
  struct iovec iov = {ok, sizeof ok};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  if (sendmsg(REPLY_FD, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof ok) fail("sendmsg");
  _exit(0);
}

static int number(const char *s, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0' || v < -1 || v > 0x7fffffff) return -1;
  *out = (int)v;
  return 0;
}

// The root request (see the top): never returns.
__attribute__((noreturn)) static void send_root(int argc, char **argv) {
  int user = argc == 3 && strcmp(argv[2], "user") == 0;
  if (argc != 3 || (!user && strcmp(argv[2], "nouser") != 0)) {
    errno = EINVAL;
    fail("argv");
  }
  if (user && setns(NS_FD, CLONE_NEWUSER) != 0) fail("setns");
  if (setns(NET_FD, CLONE_NEWNS) != 0) fail("setns");
  // Joining a user namespace changes credentials, which resets "dumpable".
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("prctl");
  close(NS_FD);
  close(NET_FD);
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open");
  send_fd(fd);
}

static void set_int(int fd, int level, int name, int value) {
  if (value >= 0 && setsockopt(fd, level, name, &value, sizeof value) != 0) fail("setsockopt");
}

int main(int argc, char **argv) {
  // Whatever the parent held without close-on-exec stays out.
  if (syscall(SYS_close_range, REPLY_FD + 1, ~0U, 0) != 0) fail("close_range");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("prctl");
  if (argc >= 2 && strcmp(argv[1], "root") == 0) send_root(argc, argv);
  int domain, type, protocol, port, reuseaddr, v6only, backlog;
  if (argc != 10 || number(argv[2], &domain) || number(argv[3], &type) || number(argv[4], &protocol) ||
      number(argv[6], &port) || number(argv[7], &reuseaddr) || number(argv[8], &v6only) || number(argv[9], &backlog) ||
      port < 0 || port > 65535) {
    errno = EINVAL;
    fail("argv");
  }
  if (strcmp(argv[1], "pidfd") == 0) {
    if (setns(NS_FD, CLONE_NEWUSER | CLONE_NEWNET) != 0) fail("setns");
  } else if (strcmp(argv[1], "ns") == 0) {
    if (setns(NS_FD, CLONE_NEWUSER) != 0) fail("setns");
    if (setns(NET_FD, CLONE_NEWNET) != 0) fail("setns");
  } else {
    errno = EINVAL;
    fail("argv");
  }
  // Joining a user namespace changes credentials, which resets "dumpable".
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("prctl");
  close(NS_FD);
  close(NET_FD);
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) fail("socket");
  set_int(fd, SOL_SOCKET, SO_REUSEADDR, reuseaddr);
  set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
  if (strcmp(argv[5], "-") != 0) {
    struct sockaddr_storage addr;
    socklen_t len;
    memset(&addr, 0, sizeof addr);
    if (domain == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&addr;
      in->sin_family = AF_INET;
      in->sin_port = htons((unsigned short)port);
      len = sizeof *in;
      if (inet_pton(AF_INET, argv[5], &in->sin_addr) != 1) { errno = EINVAL; fail("inet_pton"); }
    } else if (domain == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((unsigned short)port);
      len = sizeof *in6;
      if (inet_pton(AF_INET6, argv[5], &in6->sin6_addr) != 1) { errno = EINVAL; fail("inet_pton"); }
    } else {
      errno = EAFNOSUPPORT;
      fail("bind");
    }
    if (bind(fd, (struct sockaddr *)&addr, len) != 0) fail("bind");
  }
  if (backlog >= 0 && listen(fd, backlog) != 0) fail("listen");
  send_fd(fd);
}
