// The small nan addon: the few calls the TypeScript side cannot make itself.
// It reads the pre-init hook's state through dlsym, so it works whether or not
// the hook was preloaded, and never links against it.
#include <nan.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "args.h"
#include "preinit.h"

// native/netns.cc: sockets made in another network namespace.
void GonsNetnsInit(v8::Local<v8::Object> target);

namespace {

const gons_preinit_state *HookState() {
  auto st = static_cast<const gons_preinit_state *>(dlsym(RTLD_DEFAULT, GONS_PREINIT_STATE_SYMBOL));
  return (st && st->version == GONS_PREINIT_VERSION) ? st : nullptr;
}

v8::Local<v8::String> Str(const char *s) { return Nan::New(s ? s : "").ToLocalChecked(); }

void Set(v8::Local<v8::Object> o, const char *key, v8::Local<v8::Value> v) {
  Nan::Set(o, Str(key), v).Check();
}

// { errno, syscall }: how the addon reports a failed call to the TypeScript side.
v8::Local<v8::Object> Failure(int err, const char *syscall) {
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "errno", Nan::New(err));
  Set(o, "syscall", Str(syscall));
  return o;
}

// { key: value } when a call returned value >= 0, else the failure { errno: err, syscall }.
v8::Local<v8::Object> Outcome(const char *key, int value, int err, const char *syscall) {
  if (value < 0) return Failure(err, syscall);
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, key, Nan::New(value));
  return o;
}

// namespaceKinds: the hook's table of namespace kinds (preinit.h), in its
// order, so that the TypeScript side has one source for types, flags and
// /proc names: [{ type, envVar, procname, flag }, ...].
v8::Local<v8::Array> NamespaceKinds() {
  v8::Local<v8::Array> a = Nan::New<v8::Array>(static_cast<uint32_t>(GONS_NKINDS));
  for (size_t i = 0; i < GONS_NKINDS; i++) {
    v8::Local<v8::Object> o = Nan::New<v8::Object>();
    Set(o, "type", Str(gons_nskinds[i].type));
    Set(o, "envVar", Str(gons_nskinds[i].envvar));
    Set(o, "procname", Str(gons_nskinds[i].procname));
    Set(o, "flag", Nan::New(gons_nskinds[i].flag));
    Nan::Set(a, static_cast<uint32_t>(i), o).Check();
  }
  return a;
}

// hookState(): null when the hook is not loaded (or did not run), else what it did.
NAN_METHOD(HookStateJs) {
  const gons_preinit_state *st = HookState();
  if (!st || !st->ran) {
    info.GetReturnValue().SetNull();
    return;
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "errno", Nan::New(st->err));
  Set(o, "envVar", Str(st->envvar));
  Set(o, "path", Str(st->path));
  Set(o, "syscall", Str(st->syscall));
  Set(o, "message", Str(st->message));
  Set(o, "joined", Nan::New(static_cast<double>(st->joined)));
  Set(o, "pidPending", Nan::New(st->pid_pending != 0));
  info.GetReturnValue().Set(o);
}

// Calls one of the hook's root handoff functions; returns 0 or a positive errno.
int CallRootFn(const char *symbol) {
  auto fn = reinterpret_cast<gons_preinit_root_fn>(dlsym(RTLD_DEFAULT, symbol));
  if (!HookState() || !fn) return ENOSYS;
  return -fn();
}

NAN_METHOD(EnterTargetRoot) { info.GetReturnValue().Set(CallRootFn(GONS_PREINIT_ENTER_SYMBOL)); }
NAN_METHOD(LeaveTargetRoot) { info.GetReturnValue().Set(CallRootFn(GONS_PREINIT_LEAVE_SYMBOL)); }
NAN_METHOD(SealTargetRoot) { info.GetReturnValue().Set(CallRootFn(GONS_PREINIT_SEAL_SYMBOL)); }
// joinPid(): the hook's late pid namespace join, on the calling (main) thread; 0 or a positive errno.
NAN_METHOD(JoinPid) { info.GetReturnValue().Set(CallRootFn(GONS_PREINIT_JOIN_PID_SYMBOL)); }

// confine(): the hook's serve-time confinement step; 1 confined, 0 not asked, or -errno (-ENOSYS without the hook).
NAN_METHOD(Confine) {
  auto fn = reinterpret_cast<gons_preinit_root_fn>(dlsym(RTLD_DEFAULT, GONS_PREINIT_CONFINE_SYMBOL));
  info.GetReturnValue().Set(HookState() && fn ? fn() : -ENOSYS);
}

// exitNow(code): ends the process with _exit(2), running none of Node's exit
// handlers: they would write files (the compile cache), and a child that could
// not leave a target's root would write them inside the container.
NAN_METHOD(ExitNow) {
  int code = Nan::To<int32_t>(info[0]).FromMaybe(1);
  _exit(code & 0xff);
}

// nsType(path): { nstype } from the kernel (NS_GET_NSTYPE), or { errno, syscall }.
NAN_METHOD(NsType) {
  if (info.Length() < 1 || !info[0]->IsString()) {
    Nan::ThrowTypeError("nsType: path must be a string");
    return;
  }
  Nan::Utf8String path(info[0]);
  if (*path == nullptr) {
    Nan::ThrowTypeError("nsType: invalid path");
    return;
  }
  // Namespace files are regular files: never open a device, whose open may have side effects.
  struct stat st;
  if (stat(*path, &st) == 0 && !S_ISREG(st.st_mode)) {
    info.GetReturnValue().Set(Failure(ENOTTY, "stat"));
    return;
  }
  int fd = open(*path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    info.GetReturnValue().Set(Failure(errno, "open"));
    return;
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  int err = errno;
  close(fd);
  info.GetReturnValue().Set(Outcome("nstype", type, err, "ioctl"));
}

// nsOwner(path): { ino, dev, ownerIno, ownerDev }: the namespace file's own
// identity (from the opened fd, so the two belong together) and that of the
// user namespace owning it (NS_GET_USERNS); or { errno, syscall }. The
// kernel refuses (EPERM) when the owner is outside the caller's user
// namespace, e.g. for the initial user namespace itself.
NAN_METHOD(NsOwner) {
  if (info.Length() < 1 || !info[0]->IsString()) {
    Nan::ThrowTypeError("nsOwner: path must be a string");
    return;
  }
  Nan::Utf8String path(info[0]);
  // O_NONBLOCK: a path swapped for a FIFO must not hang us; it fails the ioctl instead.
  int fd = *path ? open(*path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) : (errno = EINVAL, -1);
  if (fd < 0) {
    info.GetReturnValue().Set(Failure(errno, "open"));
    return;
  }
  struct stat self, owner;
  const char *failed = fstat(fd, &self) != 0 ? "fstat" : nullptr;
  int ufd = failed ? -1 : ioctl(fd, NS_GET_USERNS);
  if (!failed && ufd < 0) failed = "ioctl";
  if (!failed && fstat(ufd, &owner) != 0) failed = "fstat";
  int err = errno;
  if (ufd >= 0) close(ufd);
  close(fd);
  if (failed) {
    info.GetReturnValue().Set(Failure(err, failed));
    return;
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "dev", Nan::New(static_cast<double>(self.st_dev)));
  Set(o, "ino", Nan::New(static_cast<double>(self.st_ino)));
  Set(o, "ownerDev", Nan::New(static_cast<double>(owner.st_dev)));
  Set(o, "ownerIno", Nan::New(static_cast<double>(owner.st_ino)));
  info.GetReturnValue().Set(o);
}

// nsScan(types): one pass over /proc for discovery, in C because it is
// thousands of stat calls (Node's statSync costs ~2.5x as much CPU). For each
// process, fstatat each named entry of its /proc/<pid>/ns; a process that
// vanishes or may not be inspected is skipped from its first failure on.
// Returns a Buffer of records of four float64: pid, index into types, st_dev,
// st_ino (float64 holds them exactly: nsfs inodes are 32-bit proc inums).
NAN_METHOD(NsScan) {
  if (info.Length() < 1 || !info[0]->IsArray()) {
    Nan::ThrowTypeError("nsScan: types must be an array of strings");
    return;
  }
  v8::Local<v8::Array> list = info[0].As<v8::Array>();
  std::vector<std::string> types;
  for (uint32_t i = 0; i < list->Length(); i++) {
    Nan::Utf8String name(Nan::Get(list, i).ToLocalChecked());
    if (*name == nullptr || strchr(*name, '/') != nullptr) {
      Nan::ThrowTypeError("nsScan: invalid type name");
      return;
    }
    types.emplace_back(*name);
  }
  DIR *proc = opendir("/proc");
  if (proc == nullptr) {
    info.GetReturnValue().Set(Failure(errno, "opendir"));
    return;
  }
  std::vector<double> out;
  char path[64];
  for (struct dirent *e; (e = readdir(proc)) != nullptr;) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;  // self, sys, ...
    snprintf(path, sizeof path, "/proc/%ld/ns", pid);
    int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) continue;  // gone
    for (size_t i = 0; i < types.size(); i++) {
      struct stat st;
      if (fstatat(dir, types[i].c_str(), &st, 0) != 0) break;  // gone, a zombie, or not ours
      out.insert(out.end(), {static_cast<double>(pid), static_cast<double>(i), static_cast<double>(st.st_dev),
                             static_cast<double>(st.st_ino)});
    }
    close(dir);
  }
  closedir(proc);
  info.GetReturnValue().Set(
      Nan::CopyBuffer(reinterpret_cast<const char *>(out.data()), out.size() * sizeof(double)).ToLocalChecked());
}

// strerror(errno): the C library's text, so messages match the hook's.
NAN_METHOD(StrError) {
  int err = Nan::To<int32_t>(info[0]).FromMaybe(0);
  info.GetReturnValue().Set(Str(strerror(err)));
}

// claimChannel(fd): checks that fd is the socket the parent passed as the
// reexec channel and keeps it from leaking into the processes an action
// spawns. Returns 0 or a positive errno (ENOTSOCK when fd is something else).
NAN_METHOD(ClaimChannel) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  struct stat st;
  int r = 0;
  if (fstat(fd, &st) != 0) {
    r = errno;
  } else if (!S_ISSOCK(st.st_mode)) {
    r = ENOTSOCK;
  } else {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) r = errno;
  }
  info.GetReturnValue().Set(r);
}

// pidfdOpen(pid): { fd } of a close-on-exec pidfd, or { errno, syscall }.
NAN_METHOD(PidfdOpen) {
  int pid = Nan::To<int32_t>(info[0]).FromMaybe(0);
  int fd = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : (errno = EINVAL, -1);
  int err = errno;
  info.GetReturnValue().Set(Outcome("fd", fd, err, "pidfd_open"));
}

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

// The pid the kernel shows for `pidfd` in our fdinfo ("Pid:" line): -1 once
// its process is gone (Linux >= 5.12), 0 when it cannot be read.
pid_t PidfdPid(int pidfd) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t at = text.find("\nPid:");
  if (at == std::string::npos) return 0;
  return static_cast<pid_t>(strtol(text.c_str() + at + 5, nullptr, 10));
}

// pidfdAlive(pidfd, pid): true while the process behind the pidfd has not
// been reaped, i.e. while `pid` still names it. Signal 0 through the pidfd
// (~1 us) says so, or ESRCH once it is reaped; EPERM (no right to signal it,
// or a seccomp policy that refuses the call) falls back to the pid our
// fdinfo shows for the pidfd (-1 once reaped on Linux >= 5.12). Any other
// failure: false.
NAN_METHOD(PidfdAliveJs) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  int pid = Nan::To<int32_t>(info[1]).FromMaybe(0);
  bool alive = false;
  if (fd >= 0 && pid > 0) {
    int r;
    do r = static_cast<int>(syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0));
    while (r != 0 && errno == EINTR);
    alive = r == 0 || (errno == EPERM && PidfdPid(fd) == pid);
  }
  info.GetReturnValue().Set(alive);
}

// capEff(): this thread's effective capability set as hex digits (as
// /proc/self/status prints CapEff; the main thread's is the process's), or
// { errno, syscall }: one capget(2) instead of reading and parsing status.
NAN_METHOD(CapEff) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &hdr, d) != 0) {
    info.GetReturnValue().Set(Failure(errno, "capget"));
    return;
  }
  char hex[32];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(d[0].effective | static_cast<uint64_t>(d[1].effective) << 32));
  info.GetReturnValue().Set(Str(hex));
}

// Reads a whole (small, /proc) file; false with errno and *failed set on failure.
bool ReadSmallFile(const char *path, std::string *text, const char **failed) {
  *failed = "open";
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  *failed = "read";
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text->append(buf, static_cast<size_t>(n));
  int err = errno;
  close(fd);
  errno = err;
  return n == 0;
}

// procFacts(statPaths, readPaths): what inspecting a target reads of /proc,
// in one call instead of ~25 of Node's (each costs a JS error object on
// failure and tens of microseconds on success): { inos: [st_ino of each
// stat path], texts: [contents of each read path] }, or at the first
// failure { errno, syscall: 'stat' | 'open' | 'read', index } where index
// counts the stat paths first, then the read paths. Goes by path, like the
// reads it replaces: the caller checks its pidfd afterwards.
NAN_METHOD(ProcFacts) {
  if (info.Length() < 2 || !info[0]->IsArray() || !info[1]->IsArray()) {
    Nan::ThrowTypeError("procFacts: (statPaths, readPaths)");
    return;
  }
  v8::Local<v8::Array> stats = info[0].As<v8::Array>();
  v8::Local<v8::Array> reads = info[1].As<v8::Array>();
  v8::Local<v8::Array> inos = Nan::New<v8::Array>(stats->Length());
  v8::Local<v8::Array> texts = Nan::New<v8::Array>(reads->Length());
  auto failed = [&](int err, const char *syscall, uint32_t index) {
    v8::Local<v8::Object> o = Failure(err, syscall);
    Set(o, "index", Nan::New(index));
    info.GetReturnValue().Set(o);
  };
  // Consecutive paths in one directory (/proc/<pid>/ns/...) are looked up
  // from one fd of it: each walk of /proc/<pid> costs a few microseconds.
  std::string dirname;
  int dir = -1;
  for (uint32_t i = 0; i < stats->Length(); i++) {
    Nan::Utf8String path(Nan::Get(stats, i).ToLocalChecked());
    const char *slash = *path ? strrchr(*path, '/') : nullptr;
    if (slash == nullptr || slash == *path || slash[1] == '\0') {
      if (dir >= 0) close(dir);
      return failed(EINVAL, "stat", i);
    }
    std::string d(*path, static_cast<size_t>(slash - *path));
    if (dir < 0 || d != dirname) {
      if (dir >= 0) close(dir);
      dirname = d;
      dir = open(d.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) return failed(errno, "stat", i);
    }
    struct stat st;
    if (fstatat(dir, slash + 1, &st, 0) != 0) {
      int err = errno;
      close(dir);
      return failed(err, "stat", i);
    }
    // nsfs and procfs inode numbers are 32-bit: exact in a double.
    Nan::Set(inos, i, Nan::New(static_cast<double>(st.st_ino))).Check();
  }
  if (dir >= 0) close(dir);
  for (uint32_t i = 0; i < reads->Length(); i++) {
    Nan::Utf8String path(Nan::Get(reads, i).ToLocalChecked());
    std::string text;
    const char *syscall = "open";
    if (*path == nullptr) return failed(EINVAL, syscall, stats->Length() + i);
    if (!ReadSmallFile(*path, &text, &syscall)) return failed(errno, syscall, stats->Length() + i);
    Nan::Set(texts, i, Nan::New(text).ToLocalChecked()).Check();
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "inos", inos);
  Set(o, "texts", texts);
  info.GetReturnValue().Set(o);
}

// seccompFilters(pid, pidfd): { filters: [Buffer] } — the process's seccomp
// filters as raw struct sock_filter arrays, most recently installed first —
// or { errno, syscall }. The kernel hands them out only to a CAP_SYS_ADMIN
// tracer of a stopped process: seize, interrupt, read, detach (re-injecting
// a signal the stop caught). Measured: the process stops for ~30 us.
// ptrace goes by pid: once the process is stopped under us, the pidfd (the
// process the caller checked) must still show that pid, else the pid was
// reused and the stopped process is another one: detach, ESRCH ("pidfd").
// A stopped tracee keeps its pid, and ptrace requests reach only our tracee.
NAN_METHOD(SeccompFilters) {
  pid_t pid = Nan::To<int32_t>(info[0]).FromMaybe(0);
  int pidfd = Nan::To<int32_t>(info[1]).FromMaybe(-1);
  if (pidfd < 0) {
    info.GetReturnValue().Set(Failure(EBADF, "pidfd"));
    return;
  }
  if (pid <= 0 || ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) {
    info.GetReturnValue().Set(Failure(pid <= 0 ? EINVAL : errno, "ptrace"));
    return;
  }
  int status = 0, err = 0;
  const char *call = "ptrace";
  pid_t w = -1;
  if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) {
    err = errno;
  } else {
    do w = waitpid(pid, &status, __WALL);
    while (w < 0 && errno == EINTR);
    if (w != pid || !WIFSTOPPED(status)) err = w < 0 ? errno : ESRCH, call = "waitpid";
    else if (PidfdPid(pidfd) != pid) err = ESRCH, call = "pidfd";
  }
  std::vector<std::vector<struct sock_filter>> filters;
  for (unsigned long i = 0; err == 0; i++) {
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, reinterpret_cast<void *>(i), nullptr);
    if (n < 0) {
      if (errno != ENOENT) err = errno;  // ENOENT: past the last filter (or none)
      break;
    }
    std::vector<struct sock_filter> prog(static_cast<size_t>(n));
    if (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, reinterpret_cast<void *>(i), prog.data()) != n) {
      err = errno ? errno : EIO;
      break;
    }
    filters.push_back(prog);
  }
  // A signal-delivery stop (not our PTRACE_EVENT_STOP) goes back with the detach.
  int sig = (w == pid && WIFSTOPPED(status) && (status >> 16) != PTRACE_EVENT_STOP) ? WSTOPSIG(status) : 0;
  if (w != pid || WIFSTOPPED(status)) ptrace(PTRACE_DETACH, pid, nullptr, reinterpret_cast<void *>(static_cast<long>(sig)));
  if (err != 0) {
    info.GetReturnValue().Set(Failure(err, call));
    return;
  }
  v8::Local<v8::Array> a = Nan::New<v8::Array>(static_cast<int>(filters.size()));
  for (size_t i = 0; i < filters.size(); i++) {
    const char *bytes = reinterpret_cast<const char *>(filters[i].data());
    Nan::Set(a, static_cast<uint32_t>(i), Nan::CopyBuffer(bytes, static_cast<uint32_t>(filters[i].size() * sizeof(struct sock_filter))).ToLocalChecked()).Check();
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Nan::Set(o, Str("filters"), a).Check();
  info.GetReturnValue().Set(o);
}

// closeFd(fd): closes an fd the addon opened.
NAN_METHOD(CloseFd) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  info.GetReturnValue().Set(close(fd) == 0 ? 0 : errno);
}

// socketPair(): [fd, fd] of a close-on-exec SOCK_SEQPACKET pair, or { errno,
// syscall }. The handle channel: one message of fds per reply that carries
// handles, kept apart from the byte stream Node reads with plain read(2),
// which would silently drop SCM_RIGHTS.
NAN_METHOD(SocketPair) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    info.GetReturnValue().Set(Failure(errno, "socketpair"));
    return;
  }
  v8::Local<v8::Array> a = Nan::New<v8::Array>(2);
  Nan::Set(a, 0, Nan::New(sv[0])).Check();
  Nan::Set(a, 1, Nan::New(sv[1])).Check();
  info.GetReturnValue().Set(a);
}

// The most fds one SCM_RIGHTS message may carry (the kernel's SCM_MAX_FD).
constexpr size_t kMaxFds = 253;

// One byte of data plus room for nfds fds of SCM_RIGHTS: the message shape of
// sendFds and recvFds. Not copyable: msg points into the object itself.
struct FdMessage {
  char byte = 'h';
  struct iovec iov = {&byte, 1};
  std::vector<char> control;
  struct msghdr msg = {};
  explicit FdMessage(size_t nfds) : control(CMSG_SPACE(sizeof(int) * nfds)) {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
  }
  FdMessage(const FdMessage &) = delete;
  FdMessage &operator=(const FdMessage &) = delete;
};

// sendFds(sock, [fd, ...]): sends the fds in one message; 0 or a positive errno.
NAN_METHOD(SendFds) {
  int sock = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  if (info.Length() < 2 || !info[1]->IsArray()) {
    Nan::ThrowTypeError("sendFds: fds must be an array");
    return;
  }
  v8::Local<v8::Array> list = info[1].As<v8::Array>();
  if (list->Length() == 0 || list->Length() > kMaxFds) {
    info.GetReturnValue().Set(EINVAL);
    return;
  }
  std::vector<int> fds(list->Length());
  for (uint32_t i = 0; i < list->Length(); i++)
    fds[i] = Nan::To<int32_t>(Nan::Get(list, i).ToLocalChecked()).FromMaybe(-1);
  FdMessage m(fds.size());
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m.msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
  ssize_t n;
  do n = sendmsg(sock, &m.msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  info.GetReturnValue().Set(n == 1 ? 0 : (n < 0 ? errno : EIO));
}

// recvFds(sock, count): the fds of the next message, which must carry exactly
// count of them (close-on-exec, never blocking: the sender queued them before
// its reply), or { errno, syscall }. Whatever arrives beyond is closed.
NAN_METHOD(RecvFds) {
  int sock = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  int32_t count = Nan::To<int32_t>(info[1]).FromMaybe(0);
  if (count <= 0 || static_cast<size_t>(count) > kMaxFds) {
    info.GetReturnValue().Set(Failure(EINVAL, "recvmsg"));
    return;
  }
  FdMessage m(kMaxFds);
  ssize_t n;
  do n = recvmsg(sock, &m.msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    info.GetReturnValue().Set(Failure(errno, "recvmsg"));
    return;
  }
  std::vector<int> fds;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m.msg); cm; cm = CMSG_NXTHDR(&m.msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *data = CMSG_DATA(cm);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, data + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  if (n != 1 || (m.msg.msg_flags & MSG_CTRUNC) || fds.size() != static_cast<size_t>(count)) {
    for (int fd : fds) close(fd);
    info.GetReturnValue().Set(Failure(n == 0 ? EPIPE : EPROTO, "recvmsg"));
    return;
  }
  v8::Local<v8::Array> a = Nan::New<v8::Array>(static_cast<uint32_t>(fds.size()));
  for (size_t i = 0; i < fds.size(); i++) Nan::Set(a, static_cast<uint32_t>(i), Nan::New(fds[i])).Check();
  info.GetReturnValue().Set(a);
}

// dupFd(fd): a close-on-exec duplicate, or { errno, syscall }.
NAN_METHOD(DupFd) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    info.GetReturnValue().Set(Failure(errno, "fcntl"));
    return;
  }
  info.GetReturnValue().Set(dup);
}

// fdFlags(fd): the file status flags (fcntl F_GETFL), or { errno, syscall }.
NAN_METHOD(FdFlags) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    info.GetReturnValue().Set(Failure(errno, "fcntl"));
    return;
  }
  info.GetReturnValue().Set(flags);
}

// ---- openIn: nothing but a regular file, resolved inside a root (issues #22 and #25) ----
//
// A container owns every path inside its root: it can plant device nodes,
// FIFOs, sockets, symlinks to `/proc/<pid>/root/...` and `..` chains, and swap
// them between any check and any open. Opening a device has effects of its own
// (a tty becomes the controlling terminal, a watchdog arms, a disk opens
// outside the container's device cgroup), so the type is checked before the
// open that has effects: the path is resolved once, O_PATH (which opens
// nothing), with openat2 confined to the root and refusing magic links; the
// fd pins the inode; fstat says what it is; only a regular file is opened for
// real, by re-opening that very inode through our own /proc/thread-self/fd
// (an open of the pinned inode, not a second walk of the container's path).
// A child in a container's mount namespace but not its pid namespace has no
// thread-self in that procfs: it walks a second time and checks the inode
// (ReopenByWalk says why that is acceptable there, and only there).

// openat2 with EINTR and EAGAIN retried (RESOLVE_IN_ROOT returns EAGAIN when a
// rename raced a ".." walk); a bounded number of times.
int Openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  int fd = -1;
  for (int i = 0; i < 64; i++) {
    fd = static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) break;
  }
  return fd;
}

// What a file type is called in the refusal, or nullptr for a regular file.
const char *FileTypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return nullptr;
    case S_IFDIR: return "directory";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFIFO: return "FIFO";
    case S_IFSOCK: return "socket";
    case S_IFLNK: return "symbolic link";
    default: return "special file";
  }
}

// The outcome of an openInRoot: an fd, a failed call, or the type refused.
struct OpenInOutcome {
  int fd = -1;
  int err = 0;
  const char *syscall = "";
  const char *refused = nullptr;
};

OpenInOutcome OpenFailed(int err, const char *syscall) {
  OpenInOutcome o;
  o.err = err;
  o.syscall = syscall;
  return o;
}

// Our own fd directory, in a procfs we checked: the root of a real procfs
// (the kernel's magic number, inode 1) reached without a symlink, then
// thread-self/fd beneath it without crossing a mount. In a child that entered
// a container's root, /proc is the container's mount: an overmount of any
// part of the way is refused here rather than followed.
int OwnFdDir(const char **failed) {
  int proc = Openat2(AT_FDCWD, "/proc", O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS);
  if (proc < 0) return *failed = "openat2(/proc)", -1;
  struct statfs sfs;
  struct stat st;
  if (fstatfs(proc, &sfs) != 0 || fstat(proc, &st) != 0) {
    int err = errno;
    close(proc);
    return errno = err, *failed = "fstatfs(/proc)", -1;
  }
  if (sfs.f_type != PROC_SUPER_MAGIC || st.st_ino != 1) {
    close(proc);
    return errno = EXDEV, *failed = "fstatfs(/proc)", -1;
  }
  int dir = Openat2(proc, "thread-self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                    RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS);
  int err = errno;
  close(proc);
  errno = err;
  // ENOENT here: this process is not in the pid namespace of that procfs (a mount namespace joined without its pid namespace).
  if (dir < 0) *failed = "openat2(/proc/thread-self/fd)";
  return dir;
}

// What Reopen made of a checked O_PATH fd: an fd, a failure, or "raced"
// (the path no longer named the checked inode: walk and check it again).
struct ReopenOutcome {
  OpenInOutcome out;
  bool raced = false;
};

// The re-open through our own /proc/thread-self/fd: an open of the pinned
// inode itself. Where it works (the parent's native path, on the host's
// procfs) it is the only way used.
OpenInOutcome ReopenByProc(int dir, int pathfd, const struct stat &seen, int flags) {
  char name[16];
  snprintf(name, sizeof name, "%d", pathfd);
  // No O_CREAT, O_EXCL (the file exists) nor O_NOFOLLOW (the fd entry is the link to follow).
  int fd = openat(dir, name, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECTORY)) | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return OpenFailed(errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino || !S_ISREG(st.st_mode)) {
    int err = errno;
    close(fd);
    return OpenFailed(err ? err : EXDEV, "fstat");
  }
  OpenInOutcome o;
  o.fd = fd;
  return o;
}

// The child's way when its own fd directory is not in the procfs of the root
// it entered (a child that joined a container's mount namespace but, since the
// late pid join, never its pid namespace: that procfs has no thread-self for
// it). The path is walked a second time, as confined as the first, with the
// real flags, and what opened must be the inode the first walk checked (same
// st_dev and st_ino, a regular file), else it is closed unused and the caller
// walks again. The open with effects may thus land on something the container
// swapped in after the check. Acceptable in the child, and only there:
// - a device: the child joined the container's cgroups (the default with a
//   target), so its device cgroup refuses a node the container may not open;
//   what it may open, the container's own processes could open anyway. The
//   fd is closed before anything is read or written through it.
// - a FIFO: O_NONBLOCK, so the open never waits for a peer (an O_WRONLY open
//   of a reader-less FIFO fails ENXIO); a tty: O_NOCTTY, it never becomes our
//   controlling terminal.
// - O_TRUNC is left out of the open and done with ftruncate only after the
//   check: a file swapped in is never truncated.
// - symlinks and magic links: the same RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
//   walk (and O_NOFOLLOW when asked) as the first.
// Residue: a child left outside the container's cgroups (`cgroups: false`, or
// namespace paths without `cgroups`) could open, and at once close, a device
// node swapped in at that moment that the container itself may not open.
ReopenOutcome ReopenByWalk(int root, const std::string &path, const struct stat &seen, int flags) {
  ReopenOutcome r;
  int open_flags = (flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_DIRECTORY)) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  int fd = Openat2(root, path.c_str(), static_cast<unsigned>(open_flags), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (fd < 0) {
    // The file's own error (EACCES, ETXTBSY...) if the path still names the
    // checked inode; else it changed since the check (gone, or a FIFO without
    // a peer: ENXIO, a device the cgroup refuses: EPERM): walk again.
    r.out = OpenFailed(errno, "openat2");
    int again = Openat2(root, path.c_str(), O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    struct stat now;
    r.raced = again < 0 || fstat(again, &now) != 0 || now.st_dev != seen.st_dev || now.st_ino != seen.st_ino;
    if (again >= 0) close(again);
    return r;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    r.out = OpenFailed(errno, "fstat");
    close(fd);
    return r;
  }
  if (st.st_dev != seen.st_dev || st.st_ino != seen.st_ino || !S_ISREG(st.st_mode)) {
    close(fd);
    r.raced = true;
    r.out = OpenFailed(EXDEV, "fstat");
    return r;
  }
  int fl = fcntl(fd, F_GETFL);
  bool ok = fl >= 0 && ((flags & O_NONBLOCK) || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
  const char *failed = "fcntl";
  // O_TRUNC, now that the file is known to be the one checked (ignored with O_RDONLY, which cannot truncate through the fd).
  if (ok && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    int t;
    do t = ftruncate(fd, 0);
    while (t != 0 && errno == EINTR);
    ok = t == 0;
    failed = "ftruncate";
  }
  if (!ok) {
    r.out = OpenFailed(errno, failed);
    close(fd);
    return r;
  }
  r.out.fd = fd;
  return r;
}

// Re-opens the O_PATH fd `pathfd` (a regular file, as `seen`, reached as
// `path` below `root`) with the real flags, and checks that what opened is
// that same file. `walk`: the second walk may stand in when our fd directory
// is not reachable (the child path only, see ReopenByWalk).
ReopenOutcome Reopen(int root, const std::string &path, int pathfd, const struct stat &seen, int flags, bool walk) {
  const char *failed = "";
  int dir = OwnFdDir(&failed);
  if (dir < 0) {
    if (walk) return ReopenByWalk(root, path, seen, flags);
    ReopenOutcome r;
    r.out = OpenFailed(errno, failed);
    return r;
  }
  ReopenOutcome r;
  r.out = ReopenByProc(dir, pathfd, seen, flags);
  close(dir);
  return r;
}

// The whole openIn step, as described above. `root` is an O_PATH directory
// fd of the root to stay in (the parent's native path), or -1 for this
// process's own root (the child path, which may re-open by a second walk).
OpenInOutcome OpenInRoot(int root, const std::string &path, int flags, int mode) {
  const uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  // O_TMPFILE names a directory to make an unnamed file in: not a file to open.
  if ((flags & O_TMPFILE) == O_TMPFILE || (flags & O_PATH)) return OpenFailed(EINVAL, "openat2");
  const bool child = root < 0;
  int own = -1;
  if (child) {
    own = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (own < 0) return OpenFailed(errno, "open");
    root = own;
  }
  OpenInOutcome out = OpenFailed(EEXIST, "openat2");
  // A file that appears between "not there" and "create it", or that changes
  // between the check and the second walk, is looked at again; a few times.
  for (int tries = 0; tries < 8; tries++) {
    int pathfd = Openat2(root, path.c_str(), O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW), 0, resolve);
    if (pathfd >= 0) {
      struct stat st;
      bool again = false;
      if (fstat(pathfd, &st) != 0) {
        out = OpenFailed(errno, "fstat");
      } else if ((flags & O_CREAT) && (flags & O_EXCL)) {
        out = OpenFailed(EEXIST, "openat2");
      } else if ((out.refused = FileTypeName(st.st_mode)) == nullptr) {
        ReopenOutcome r = Reopen(root, path, pathfd, st, flags, child);
        out = r.out;
        again = r.raced;
      }
      close(pathfd);
      if (again) continue;
      break;
    }
    if (errno != ENOENT || !(flags & O_CREAT)) {
      out = OpenFailed(errno, "openat2");
      break;
    }
    // Not there: create it. O_EXCL makes a new regular file and never opens
    // one that exists (nor follows a symlink, whose name exists).
    int fd = Openat2(root, path.c_str(), static_cast<unsigned>(flags) | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                     static_cast<uint64_t>(mode) & 07777, resolve);
    if (fd >= 0) {
      out = OpenFailed(0, "");
      out.fd = fd;
      break;
    }
    out = OpenFailed(errno, "openat2");
    if (errno != EEXIST || (flags & O_EXCL)) break;
  }
  if (own >= 0) close(own);
  return out;
}

// openInRoot off the main thread: a container's path may sit on a file system
// that blocks (FUSE, NFS), and the call's timeout and signal must still work.
class OpenInWorker : public Nan::AsyncWorker {
 public:
  OpenInWorker(Nan::Callback *cb, int root, std::string path, int flags, int mode)
      : Nan::AsyncWorker(cb, "gons:openInRoot"), root_(root), path_(std::move(path)), flags_(flags), mode_(mode) {}
  void Execute() override { out_ = OpenInRoot(root_, path_, flags_, mode_); }
  void HandleOKCallback() override {
    Nan::HandleScope scope;
    v8::Local<v8::Object> o;
    if (out_.fd >= 0) {
      o = Nan::New<v8::Object>();
      Set(o, "fd", Nan::New(out_.fd));
    } else if (out_.refused) {
      o = Nan::New<v8::Object>();
      Set(o, "refused", Str(out_.refused));
    } else {
      o = Failure(out_.err, out_.syscall);
    }
    v8::Local<v8::Value> argv[] = {o};
    callback->Call(1, argv, async_resource);
  }

 private:
  int root_;
  std::string path_;
  int flags_, mode_;
  OpenInOutcome out_;
};

// openInRoot(rootFd, path, flags, mode, callback): callback({ fd }) with an fd
// of a regular file opened with flags | O_CLOEXEC | O_NOCTTY, callback({
// refused: 'block device' | 'FIFO' | ... }) for anything else, or callback({
// errno, syscall }). rootFd -1 is this process's own root; the caller keeps
// rootFd open until the callback ran.
NAN_METHOD(OpenInRootJs) {
  if (info.Length() < 5 || !info[1]->IsString() || !info[4]->IsFunction()) {
    Nan::ThrowTypeError("openInRoot: (rootFd, path, flags, mode, callback)");
    return;
  }
  std::string path;
  if (!PathArg(info[1], "openInRoot", &path)) return;
  int root = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  int flags = Nan::To<int32_t>(info[2]).FromMaybe(0);
  int mode = Nan::To<int32_t>(info[3]).FromMaybe(0666);
  auto *cb = new Nan::Callback(info[4].As<v8::Function>());
  Nan::AsyncQueueWorker(new OpenInWorker(cb, root, path, flags, mode));
}

// openDirPath(path): { fd } of an O_PATH directory fd (close-on-exec), or
// { errno, syscall }: a target's root, by /proc/<pid>/root.
NAN_METHOD(OpenDirPath) {
  Nan::Utf8String path(info[0]);
  int fd = *path ? open(*path, O_PATH | O_DIRECTORY | O_CLOEXEC) : (errno = EINVAL, -1);
  int err = errno;
  info.GetReturnValue().Set(Outcome("fd", fd, err, "open"));
}
// ---- end of openIn ----
// --- Watching a target's pidfd (issue #24) ---------------------------------
// A worker made from a target ends when the target exits. A pidfd polls
// readable once its process has exited; Node cannot poll an fd of this kind
// (it is no socket, pipe or tty), so a uv_poll_t on the event loop does, and
// never keeps the loop alive by itself. The watch owns its fd.
struct PidfdWatch {
  uv_poll_t poll;
  int fd;
  Nan::Callback cb;
  Nan::AsyncResource res{"gons:pidfdWatch"};
};
static std::map<int, PidfdWatch *> pidfd_watches;

static void PidfdWatchClosed(uv_handle_t *h) {
  Nan::HandleScope scope;
  PidfdWatch *w = static_cast<PidfdWatch *>(h->data);
  close(w->fd);
  delete w;
}

static void StopPidfdWatch(PidfdWatch *w) {
  pidfd_watches.erase(w->fd);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), PidfdWatchClosed);
}

// Readable (the process exited) or an error on the fd: either way the watch
// is over; the callback gets the status (0, or a negative libuv error).
static void PidfdReadable(uv_poll_t *p, int status, int /* events */) {
  Nan::HandleScope scope;
  PidfdWatch *w = static_cast<PidfdWatch *>(p->data);
  v8::Local<v8::Value> argv[] = {Nan::New(status)};
  StopPidfdWatch(w);  // freed on the close callback, after this call
  w->cb.Call(1, argv, &w->res);
}

// watchPidfd(fd, callback): calls callback(status) once when the pidfd
// becomes readable; takes ownership of fd. 0, or an errno (fd closed then).
NAN_METHOD(WatchPidfd) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  if (fd < 0 || !info[1]->IsFunction() || pidfd_watches.count(fd)) {
    info.GetReturnValue().Set(EINVAL);
    return;
  }
  PidfdWatch *w = new PidfdWatch();
  w->fd = fd;
  w->cb.Reset(info[1].As<v8::Function>());
  int r = uv_poll_init(Nan::GetCurrentEventLoop(), &w->poll, fd);
  if (r == 0) {
    w->poll.data = w;
    r = uv_poll_start(&w->poll, UV_READABLE, PidfdReadable);
    if (r != 0) {
      pidfd_watches[fd] = w;
      StopPidfdWatch(w);
      info.GetReturnValue().Set(-r);
      return;
    }
  }
  if (r != 0) {
    close(fd);
    delete w;
    info.GetReturnValue().Set(-r);
    return;
  }
  uv_unref(reinterpret_cast<uv_handle_t *>(&w->poll));
  pidfd_watches[fd] = w;
  info.GetReturnValue().Set(0);
}

// unwatchPidfd(fd): stops a watch without calling it back, and closes its fd.
NAN_METHOD(UnwatchPidfd) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  auto it = pidfd_watches.find(fd);
  if (it != pidfd_watches.end()) StopPidfdWatch(it->second);
}

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "socketPair", SocketPair);
  Nan::SetMethod(target, "sendFds", SendFds);
  Nan::SetMethod(target, "recvFds", RecvFds);
  Nan::SetMethod(target, "fdFlags", FdFlags);
  Nan::SetMethod(target, "dupFd", DupFd);
  Nan::SetMethod(target, "closeFd", CloseFd);
  Nan::SetMethod(target, "claimChannel", ClaimChannel);
  Nan::SetMethod(target, "pidfdOpen", PidfdOpen);
  Nan::SetMethod(target, "pidfdAlive", PidfdAliveJs);
  Nan::SetMethod(target, "procFacts", ProcFacts);
  Nan::SetMethod(target, "capEff", CapEff);
  Nan::SetMethod(target, "seccompFilters", SeccompFilters);
  Nan::SetMethod(target, "strerror", StrError);
  Nan::SetMethod(target, "hookState", HookStateJs);
  Nan::SetMethod(target, "enterTargetRoot", EnterTargetRoot);
  Nan::SetMethod(target, "leaveTargetRoot", LeaveTargetRoot);
  Nan::SetMethod(target, "sealTargetRoot", SealTargetRoot);
  Nan::SetMethod(target, "joinPid", JoinPid);
  Nan::SetMethod(target, "nsType", NsType);
  Nan::SetMethod(target, "confine", Confine);
  Nan::SetMethod(target, "nsOwner", NsOwner);
  Nan::SetMethod(target, "nsScan", NsScan);
  Nan::SetMethod(target, "exitNow", ExitNow);
  Nan::SetMethod(target, "openInRoot", OpenInRootJs);
  Nan::SetMethod(target, "openDirPath", OpenDirPath);
  Nan::SetMethod(target, "watchPidfd", WatchPidfd);
  Nan::SetMethod(target, "unwatchPidfd", UnwatchPidfd);
  Nan::Set(target, Str("namespaceKinds"), NamespaceKinds()).Check();
  GonsNetnsInit(target);
}

}  // namespace

NODE_MODULE(gons, Init)
