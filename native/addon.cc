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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "preinit.h"

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
  if (type < 0) {
    info.GetReturnValue().Set(Failure(err, "ioctl"));
    return;
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "nstype", Nan::New(type));
  info.GetReturnValue().Set(o);
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
  if (fd < 0) {
    info.GetReturnValue().Set(Failure(errno, "pidfd_open"));
    return;
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "fd", Nan::New(fd));
  info.GetReturnValue().Set(o);
}

// closeFd(fd): closes an fd the addon opened.
NAN_METHOD(CloseFd) {
  int fd = Nan::To<int32_t>(info[0]).FromMaybe(-1);
  info.GetReturnValue().Set(close(fd) == 0 ? 0 : errno);
}

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "closeFd", CloseFd);
  Nan::SetMethod(target, "claimChannel", ClaimChannel);
  Nan::SetMethod(target, "pidfdOpen", PidfdOpen);
  Nan::SetMethod(target, "strerror", StrError);
  Nan::SetMethod(target, "hookState", HookStateJs);
  Nan::SetMethod(target, "enterTargetRoot", EnterTargetRoot);
  Nan::SetMethod(target, "leaveTargetRoot", LeaveTargetRoot);
  Nan::SetMethod(target, "nsType", NsType);
  Nan::SetMethod(target, "nsOwner", NsOwner);
  Nan::SetMethod(target, "nsScan", NsScan);
}

}  // namespace

NODE_MODULE(gons, Init)
