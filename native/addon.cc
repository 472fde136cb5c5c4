// The small nan addon: the few calls the TypeScript side cannot make itself.
// It reads the pre-init hook's state through dlsym, so it works whether or not
// the hook was preloaded, and never links against it.
#include <nan.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

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

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "socketPair", SocketPair);
  Nan::SetMethod(target, "sendFds", SendFds);
  Nan::SetMethod(target, "recvFds", RecvFds);
  Nan::SetMethod(target, "fdFlags", FdFlags);
  Nan::SetMethod(target, "dupFd", DupFd);
  Nan::SetMethod(target, "closeFd", CloseFd);
  Nan::SetMethod(target, "claimChannel", ClaimChannel);
  Nan::SetMethod(target, "pidfdOpen", PidfdOpen);
  Nan::SetMethod(target, "strerror", StrError);
  Nan::SetMethod(target, "hookState", HookStateJs);
  Nan::SetMethod(target, "enterTargetRoot", EnterTargetRoot);
  Nan::SetMethod(target, "leaveTargetRoot", LeaveTargetRoot);
  Nan::SetMethod(target, "sealTargetRoot", SealTargetRoot);
  Nan::SetMethod(target, "nsType", NsType);
  Nan::SetMethod(target, "confine", Confine);
  Nan::SetMethod(target, "nsOwner", NsOwner);
  Nan::SetMethod(target, "nsScan", NsScan);
  Nan::SetMethod(target, "exitNow", ExitNow);
  Nan::Set(target, Str("namespaceKinds"), NamespaceKinds()).Check();
  GonsNetnsInit(target);
}

}  // namespace

NODE_MODULE(gons, Init)
