// Argument checks shared by the addon's methods (addon.cc, netns.cc).
#ifndef GONS_ARGS_H
#define GONS_ARGS_H

#include <nan.h>
#include <string.h>

#include <string>

// `value` as a path the kernel can be given: a non-empty string without NUL
// (a NUL would cut it short in a syscall, naming another file). Otherwise
// throws "<method>: path must be a non-empty string without NUL" and returns
// false.
inline bool PathArg(v8::Local<v8::Value> value, const char *method, std::string *path) {
  Nan::Utf8String text(value);
  if (*text == nullptr || text.length() == 0 || strlen(*text) != static_cast<size_t>(text.length())) {
    Nan::ThrowTypeError((std::string(method) + ": path must be a non-empty string without NUL").c_str());
    return false;
  }
  path->assign(*text, static_cast<size_t>(text.length()));
  return true;
}

#endif
