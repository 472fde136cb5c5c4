// The small nan addon: the few calls the TypeScript side cannot make itself.
// It reads the pre-init hook's state through dlsym, so it works whether or not
// the hook was preloaded, and never links against it.
#include <nan.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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
  if (type < 0) {
    info.GetReturnValue().Set(Failure(err, "ioctl"));
    return;
  }
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Set(o, "nstype", Nan::New(type));
  info.GetReturnValue().Set(o);
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
  Nan::SetMethod(target, "exitNow", ExitNow);
}

}  // namespace

NODE_MODULE(gons, Init)
