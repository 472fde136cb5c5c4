// Sockets made in another network namespace without starting a process.
//
// The kernel puts a socket in the network namespace of the *task* that calls
// socket(2), and a network namespace is per thread: a thread may join one with
// setns(CLONE_NEWNET) in a multi-threaded process. So each call creates a
// thread of its own, which joins the target's network namespace, makes the
// socket (and binds and listens it, if asked), and ends. It runs nothing else:
// no JavaScript, no libuv work, never a thread-pool thread, and it never
// returns to anything that could run in the foreign namespace afterwards. The
// socket keeps its namespace for its whole life; connect, accept and I/O from
// any thread of this process then happen in the target's namespace.
//
// The call is synchronous: socket, bind and listen never wait, so the calling
// thread is blocked for the thread's creation and a few syscalls (~50 µs).
#include <nan.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "args.h"

namespace {

// One call's request and outcome, shared with its thread (which the caller joins).
struct SocketJob {
  int nsfd = -1;  // a network namespace file or a pidfd; -1: this thread's own namespace
  int domain = 0, type = 0, protocol = 0;
  bool bind = false;
  struct sockaddr_storage addr = {};
  socklen_t addrlen = 0;
  int reuseaddr = -1, v6only = -1;  // -1: leave the kernel's default
  int backlog = -1;                 // -1: do not listen
  int fd = -1;                      // the result
  int err = 0;
  const char *syscall = "";
};

int Fail(SocketJob *j, const char *syscall) {
  j->err = errno;
  j->syscall = syscall;
  if (j->fd >= 0) close(j->fd);
  j->fd = -1;
  return -1;
}

int SetInt(SocketJob *j, int level, int name, int value) {
  return setsockopt(j->fd, level, name, &value, sizeof value) == 0 ? 0 : Fail(j, "setsockopt");
}

// The thread: join, make, end. Every signal is blocked (inherited from the
// creator, which blocked them around pthread_create), so no handler of the
// process ever runs on it in the foreign namespace.
void *MakeSocket(void *arg) {
  auto *j = static_cast<SocketJob *>(arg);
  if (j->nsfd >= 0 && setns(j->nsfd, CLONE_NEWNET) != 0) {
    Fail(j, "setns");
    return nullptr;
  }
  j->fd = socket(j->domain, j->type | SOCK_CLOEXEC, j->protocol);
  if (j->fd < 0) {
    Fail(j, "socket");
    return nullptr;
  }
  if (j->reuseaddr >= 0 && SetInt(j, SOL_SOCKET, SO_REUSEADDR, j->reuseaddr) != 0) return nullptr;
  if (j->v6only >= 0 && SetInt(j, IPPROTO_IPV6, IPV6_V6ONLY, j->v6only) != 0) return nullptr;
  if (j->bind && bind(j->fd, reinterpret_cast<struct sockaddr *>(&j->addr), j->addrlen) != 0) {
    Fail(j, "bind");
    return nullptr;
  }
  if (j->backlog >= 0 && listen(j->fd, j->backlog) != 0) Fail(j, "listen");
  return nullptr;
}

// Runs the job on a thread created for it, with every signal blocked, and
// waits for it to end; a thread that cannot be created is the job's failure.
void RunOnThread(SocketJob *j) {
  pthread_attr_t attr;
  sigset_t all, old;
  int r = pthread_attr_init(&attr);
  if (r == 0) {
    r = pthread_attr_setstacksize(&attr, 64 * 1024);
    sigfillset(&all);
    if (r == 0) r = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (r == 0) {
      pthread_t thread;
      r = pthread_create(&thread, &attr, MakeSocket, j);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (r == 0) r = pthread_join(thread, nullptr);
    }
    pthread_attr_destroy(&attr);
  }
  if (r != 0) {
    // No thread (EAGAIN: the process's thread limit): nothing was made.
    j->err = r;
    j->syscall = "pthread_create";
  }
}

v8::Local<v8::String> Key(const char *s) { return Nan::New(s).ToLocalChecked(); }

// What a socket call returns: the fd, or { errno, syscall } of the step that failed.
v8::Local<v8::Value> JobResult(const SocketJob &job) {
  if (job.fd >= 0) return Nan::New(job.fd);
  v8::Local<v8::Object> f = Nan::New<v8::Object>();
  Nan::Set(f, Key("errno"), Nan::New(job.err)).Check();
  Nan::Set(f, Key("syscall"), Key(job.syscall)).Check();
  return f;
}

// Reads an optional integer field; false (with a thrown TypeError) for a non-integer.
bool IntField(v8::Local<v8::Object> o, const char *key, int *out) {
  v8::Local<v8::Value> v = Nan::Get(o, Key(key)).ToLocalChecked();
  if (v->IsUndefined()) return true;
  if (!v->IsInt32()) {
    Nan::ThrowTypeError((std::string("netnsSocket: ") + key + " must be a 32-bit integer").c_str());
    return false;
  }
  *out = Nan::To<int32_t>(v).FromJust();
  return true;
}

// Fills the job's address from { address, port } (an IP literal of the
// socket's family); false with a thrown TypeError for anything else.
bool Address(v8::Local<v8::Object> o, SocketJob *j) {
  v8::Local<v8::Value> a = Nan::Get(o, Key("address")).ToLocalChecked();
  if (a->IsUndefined()) return true;
  int port = 0;
  if (!a->IsString()) {
    Nan::ThrowTypeError("netnsSocket: address must be a string");
    return false;
  }
  if (!IntField(o, "port", &port)) return false;
  if (port < 0 || port > 65535) {
    Nan::ThrowRangeError("netnsSocket: port out of range");
    return false;
  }
  Nan::Utf8String text(a);
  j->bind = true;
  if (j->domain == AF_INET) {
    auto *in = reinterpret_cast<struct sockaddr_in *>(&j->addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    j->addrlen = sizeof *in;
    if (*text && inet_pton(AF_INET, *text, &in->sin_addr) == 1) return true;
  } else if (j->domain == AF_INET6) {
    auto *in6 = reinterpret_cast<struct sockaddr_in6 *>(&j->addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    j->addrlen = sizeof *in6;
    if (*text && inet_pton(AF_INET6, *text, &in6->sin6_addr) == 1) return true;
  }
  Nan::ThrowTypeError("netnsSocket: address must be an IP literal of the socket's domain (AF_INET or AF_INET6)");
  return false;
}

bool ReadSpec(v8::Local<v8::Object> o, SocketJob *j);

// netnsSocket(nsfd, { domain, type, protocol, address?, port?, reuseaddr?, v6only?, backlog? }):
// an fd (close-on-exec) of a socket made in the network namespace of nsfd (a
// namespace file or a pidfd; -1 for our own), bound and listening if asked;
// or { errno, syscall } naming the step that failed (nothing stays open then).
NAN_METHOD(NetnsSocket) {
  if (info.Length() < 2 || !info[0]->IsInt32() || !info[1]->IsObject()) {
    Nan::ThrowTypeError("netnsSocket: expects (nsfd, options)");
    return;
  }
  SocketJob job;
  job.nsfd = Nan::To<int32_t>(info[0]).FromJust();
  v8::Local<v8::Object> o = info[1].As<v8::Object>();
  if (!ReadSpec(o, &job)) return;
  RunOnThread(&job);
  info.GetReturnValue().Set(JobResult(job));
}

// Reads the job's fields from the call's options; false with a thrown error.
bool ReadSpec(v8::Local<v8::Object> o, SocketJob *j) {
  return IntField(o, "domain", &j->domain) && IntField(o, "type", &j->type) && IntField(o, "protocol", &j->protocol) &&
         IntField(o, "reuseaddr", &j->reuseaddr) && IntField(o, "v6only", &j->v6only) && IntField(o, "backlog", &j->backlog) &&
         Address(o, j);
}

// How long the helper may take before it is killed: it only makes syscalls.
constexpr int kHelperTimeoutMs = 10000;

// The helper's arguments for a socket job (see native/netns-helper.c); false when the address cannot be written.
bool SocketArgs(bool pidfd, const SocketJob *j, std::vector<std::string> *args) {
  *args = {pidfd ? "pidfd" : "ns", std::to_string(j->domain), std::to_string(j->type), std::to_string(j->protocol), "-",
           std::to_string(j->bind ? ntohs(reinterpret_cast<const struct sockaddr_in *>(&j->addr)->sin_port) : 0),
           std::to_string(j->reuseaddr), std::to_string(j->v6only), std::to_string(j->backlog)};
  if (j->bind) {
    char text[INET6_ADDRSTRLEN];
    const void *a = j->domain == AF_INET6 ? static_cast<const void *>(&reinterpret_cast<const struct sockaddr_in6 *>(&j->addr)->sin6_addr)
                                          : static_cast<const void *>(&reinterpret_cast<const struct sockaddr_in *>(&j->addr)->sin_addr);
    if (inet_ntop(j->domain, a, text, sizeof text) == nullptr) return false;
    (*args)[4] = text;
  }
  return true;
}

// Runs native/netns-helper.c with args: joins the user namespace (and the
// network or mount namespace) in a process of its own, as a multi-threaded
// process cannot. fd3 and fd4 become its fds 3 and 4 (fd4 -1: fd3 again).
// posix_spawn (clone(CLONE_VM|CLONE_VFORK) in glibc: safe in a threaded
// process) with an empty environment, /dev/null as stdio and only fds 3-5
// of ours; the helper closes any
// other, becomes non-dumpable, sends the socket and exits; it is reaped here
// before the call returns (killed first if it does not answer in time).
void RunHelper(const char *path, const std::vector<std::string> &args, int fd3, int fd4, SocketJob *j) {
  int sv[2] = {-1, -1}, fds[3] = {-1, -1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actions_ok = false, attr_ok = false;
  pid_t pid = -1;
  const char *failed = nullptr;
  int err = 0;
  std::vector<char *> argv = {const_cast<char *>(path)};
  for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  char *envp[] = {nullptr};
  // Sources above 5, so that each dup2 really makes a new, inheritable fd.
  if (!failed && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) failed = "socketpair";
  const int from[3] = {fd3, fd4 >= 0 ? fd4 : fd3, sv[1]};
  for (int i = 0; !failed && i < 3; i++)
    if ((fds[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 10)) < 0) failed = "fcntl";
  if (!failed && (err = posix_spawn_file_actions_init(&actions)) != 0) failed = "posix_spawn";
  actions_ok = !failed;
  for (int i = 0; !failed && i < 3; i++)
    if ((err = posix_spawn_file_actions_adddup2(&actions, fds[i], 3 + i)) != 0) failed = "posix_spawn";
  // Not even our stdio: 0-2 are /dev/null in the helper.
  for (int i = 0; !failed && i < 3; i++)
    if ((err = posix_spawn_file_actions_addopen(&actions, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0)) != 0) failed = "posix_spawn";
  if (!failed && (err = posix_spawnattr_init(&attr)) != 0) failed = "posix_spawn";
  attr_ok = !failed;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (!failed && ((err = posix_spawnattr_setsigmask(&attr, &none)) != 0 || (err = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
                  (err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0))
    failed = "posix_spawn";
  if (!failed && (err = posix_spawn(&pid, path, &actions, &attr, argv.data(), envp)) != 0) failed = "posix_spawn";
  if (failed && err == 0) err = errno;
  for (int fd : fds)
    if (fd >= 0) close(fd);
  if (sv[1] >= 0) close(sv[1]);
  if (actions_ok) posix_spawn_file_actions_destroy(&actions);
  if (attr_ok) posix_spawnattr_destroy(&attr);
  if (!failed) {
    struct pollfd p = {sv[0], POLLIN, 0};
    int r;
    do r = poll(&p, 1, kHelperTimeoutMs);
    while (r < 0 && errno == EINTR);
    char text[64] = {0};
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } control;
    struct iovec iov = {text, sizeof text - 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = r > 0 ? recvmsg(sv[0], &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) : -1;
    struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : nullptr;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int))) {
      memcpy(&j->fd, CMSG_DATA(cm), sizeof(int));
    } else if (r == 0) {
      err = ETIMEDOUT;
      failed = "poll";
    } else if (n > 0) {
      // "<errno> <syscall>": the syscall names come from the helper's own fixed set.
      char *space = strchr(text, ' ');
      err = atoi(text);
      failed = space && strcmp(space + 1, "setns") == 0 ? "setns" : space && strcmp(space + 1, "bind") == 0 ? "bind"
             : space && strcmp(space + 1, "listen") == 0 ? "listen" : space && strcmp(space + 1, "socket") == 0 ? "socket"
             : space && strcmp(space + 1, "open") == 0 ? "open" : "helper";
      if (err <= 0) err = EPROTO;
    } else {
      err = n < 0 ? errno : EPROTO;
      failed = "recvmsg";
    }
    if (j->fd >= 0 && strcmp(text, "ok") != 0) {
      close(j->fd);
      j->fd = -1;
      err = EPROTO;
      failed = "recvmsg";
    }
    if (r <= 0 || j->fd < 0) kill(pid, SIGKILL);  // gone when the call settles, answered or not
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (sv[0] >= 0) close(sv[0]);
  if (failed) {
    j->err = err;
    j->syscall = failed;
  }
}

// netnsHelperSocket(helper, pidfd, userfd, netfd, options): the socket made by
// the helper executable at path helper, which joins the user namespace userfd
// (then the network namespace netfd), or both through the pidfd userfd when
// pidfd is true; an fd, or { errno, syscall }.
NAN_METHOD(NetnsHelperSocket) {
  if (info.Length() < 5 || !info[0]->IsString() || !info[1]->IsBoolean() || !info[2]->IsInt32() || !info[3]->IsInt32() || !info[4]->IsObject()) {
    Nan::ThrowTypeError("netnsHelperSocket: expects (helper, pidfd, userfd, netfd, options)");
    return;
  }
  Nan::Utf8String helper(info[0]);
  SocketJob job;
  if (!ReadSpec(info[4].As<v8::Object>(), &job)) return;
  std::vector<std::string> args;
  bool pidfd = Nan::To<bool>(info[1]).FromJust();
  if (!SocketArgs(pidfd, &job, &args)) {
    job.err = errno;
    job.syscall = "inet_ntop";
  } else {
    RunHelper(*helper, args, Nan::To<int32_t>(info[2]).FromJust(), Nan::To<int32_t>(info[3]).FromJust(), &job);
  }
  info.GetReturnValue().Set(JobResult(job));
}

// netnsHelperRoot(helper, userfd, mntfd): an O_PATH fd (close-on-exec) of the
// root of the mount namespace mntfd, handed over by the helper, which joins
// the user namespace userfd first (-1: none) — a multi-threaded process may
// join neither; or { errno, syscall }.
NAN_METHOD(NetnsHelperRoot) {
  if (info.Length() < 3 || !info[0]->IsString() || !info[1]->IsInt32() || !info[2]->IsInt32()) {
    Nan::ThrowTypeError("netnsHelperRoot: expects (helper, userfd, mntfd)");
    return;
  }
  Nan::Utf8String helper(info[0]);
  int userfd = Nan::To<int32_t>(info[1]).FromJust(), mntfd = Nan::To<int32_t>(info[2]).FromJust();
  SocketJob job;
  RunHelper(*helper, {"root", userfd >= 0 ? "user" : "nouser"}, userfd >= 0 ? userfd : mntfd, mntfd, &job);
  info.GetReturnValue().Set(JobResult(job));
}

long Openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags;
  how.resolve = resolve;
  return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// pathInRoot off the main thread: a container's path may cross a file system
// that blocks (FUSE, NFS). Only a path walk: no namespace is joined here.
class PathInRootWorker : public Nan::AsyncWorker {
 public:
  PathInRootWorker(Nan::Callback *cb, int root, std::string path)
      : Nan::AsyncWorker(cb, "gons:pathInRoot"), root_(root), path_(std::move(path)) {}
  void Execute() override {
    fd_ = static_cast<int>(Openat2(root_, path_.c_str(), O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (fd_ < 0) {
      err_ = errno;
      syscall_ = "openat2";
      return;
    }
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      err_ = errno;
      syscall_ = "fstat";
      close(fd_);
      fd_ = -1;
      return;
    }
    mode_ = st.st_mode & S_IFMT;
  }
  void HandleOKCallback() override {
    Nan::HandleScope scope;
    v8::Local<v8::Object> o = Nan::New<v8::Object>();
    if (fd_ >= 0) {
      Nan::Set(o, Key("fd"), Nan::New(fd_)).Check();
      Nan::Set(o, Key("mode"), Nan::New(static_cast<uint32_t>(mode_))).Check();
    } else {
      Nan::Set(o, Key("errno"), Nan::New(err_)).Check();
      Nan::Set(o, Key("syscall"), Key(syscall_)).Check();
    }
    v8::Local<v8::Value> argv[] = {o};
    callback->Call(1, argv, async_resource);
  }

 private:
  int root_;
  std::string path_;
  int fd_ = -1, err_ = 0;
  mode_t mode_ = 0;
  const char *syscall_ = "";
};

// pathInRoot(rootFd, path, callback): callback({ fd, mode }) with an O_PATH fd
// (close-on-exec) of what path names below rootFd, resolved with
// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (.., absolute symlinks and the
// target's own links stay inside; /proc/<pid>/root and friends are refused,
// ELOOP) and its S_IFMT type; or callback({ errno, syscall }). The caller
// keeps rootFd open until the callback ran.
NAN_METHOD(PathInRoot) {
  if (info.Length() < 3 || !info[0]->IsInt32() || !info[1]->IsString() || !info[2]->IsFunction()) {
    Nan::ThrowTypeError("pathInRoot: expects (rootFd, path, callback)");
    return;
  }
  std::string path;
  if (!PathArg(info[1], "pathInRoot", &path)) return;
  auto *cb = new Nan::Callback(info[2].As<v8::Function>());
  Nan::AsyncQueueWorker(new PathInRootWorker(cb, Nan::To<int32_t>(info[0]).FromJust(), path));
}

}  // namespace

// Registers this unit's functions on the addon's exports (called from addon.cc's Init).
void GonsNetnsInit(v8::Local<v8::Object> target) {
  Nan::SetMethod(target, "netnsSocket", NetnsSocket);
  Nan::SetMethod(target, "netnsHelperSocket", NetnsHelperSocket);
  Nan::SetMethod(target, "netnsHelperRoot", NetnsHelperRoot);
  Nan::SetMethod(target, "pathInRoot", PathInRoot);
  v8::Local<v8::Object> c = Nan::New<v8::Object>();
  Nan::Set(c, Key("AF_UNIX"), Nan::New(AF_UNIX)).Check();
  Nan::Set(c, Key("AF_INET"), Nan::New(AF_INET)).Check();
  Nan::Set(c, Key("AF_INET6"), Nan::New(AF_INET6)).Check();
  Nan::Set(c, Key("AF_NETLINK"), Nan::New(AF_NETLINK)).Check();
  Nan::Set(c, Key("SOCK_STREAM"), Nan::New(SOCK_STREAM)).Check();
  Nan::Set(c, Key("SOCK_DGRAM"), Nan::New(SOCK_DGRAM)).Check();
  Nan::Set(c, Key("SOCK_RAW"), Nan::New(SOCK_RAW)).Check();
  Nan::Set(c, Key("SOCK_SEQPACKET"), Nan::New(SOCK_SEQPACKET)).Check();
  Nan::Set(c, Key("SOCK_NONBLOCK"), Nan::New(SOCK_NONBLOCK)).Check();
  Nan::Set(target, Key("socketConstants"), c).Check();
}
