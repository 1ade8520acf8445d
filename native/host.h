// Thin host primitives: one syscall each, errors thrown with
// {syscall, errno, code, path}.
#pragma once

#include <napi.h>

namespace tsrun {

Napi::Value ThrowErrno(const Napi::Env &env, const char *syscall, int err, const char *path);
void RegisterHost(Napi::Env env, Napi::Object exports);
// compileSeccomp (native/seccomp.cc): libseccomp, linked into the addon.
void RegisterSeccomp(Napi::Env env, Napi::Object exports);

}  // namespace tsrun
