// N-API surface: spawn(plan) and the host primitives Node lacks.
// The plan arrives as plain JS objects (built and validated in src/plan/);
// it is decoded here into fixed memory before clone, so the child never
// touches V8 or allocates.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <vector>

#include "host.h"
#include "plan.h"

namespace tsrun {
namespace {

struct DecodedPlan {
  std::deque<std::string> strings;  // deque: element addresses stay put as it grows
  std::deque<std::vector<char *>> vectors;
  std::deque<std::vector<unsigned char>> blobs;
  std::deque<std::vector<uint32_t>> ints;
  std::vector<Step> steps;
  Plan plan{};
};

const char *keep_string(DecodedPlan &d, const Napi::Value &v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  d.strings.push_back(v.As<Napi::String>().Utf8Value());
  return d.strings.back().c_str();
}

char *const *keep_vector(DecodedPlan &d, const Napi::Value &v) {
  if (!v.IsArray()) return nullptr;
  Napi::Array a = v.As<Napi::Array>();
  std::vector<char *> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(const_cast<char *>(keep_string(d, a.Get(i))));
  out.push_back(nullptr);
  d.vectors.push_back(std::move(out));
  return d.vectors.back().data();
}

bool decode(const Napi::Env &env, const Napi::Object &js, DecodedPlan &d) {
  d.plan.clone_flags = static_cast<uint64_t>(js.Get("cloneFlags").As<Napi::Number>().Int64Value());
  d.plan.trace = js.Get("trace").ToBoolean().Value() ? 1 : 0;
  Napi::Value stepsv = js.Get("steps");
  if (!stepsv.IsArray()) {
    Napi::TypeError::New(env, "spawn: plan.steps must be an array").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array steps = stepsv.As<Napi::Array>();
  d.steps.resize(steps.Length());
  for (uint32_t i = 0; i < steps.Length(); i++) {
    Napi::Object s = steps.Get(i).As<Napi::Object>();
    Step &st = d.steps[i];
    st = Step{};
    st.op = s.Get("op").As<Napi::Number>().Int32Value();
    Napi::Value sv = s.Get("s");
    if (sv.IsArray()) {
      Napi::Array a = sv.As<Napi::Array>();
      for (uint32_t k = 0; k < a.Length() && k < 4; k++) st.s[k] = keep_string(d, a.Get(k));
    }
    Napi::Value nv = s.Get("n");
    if (nv.IsArray()) {
      Napi::Array a = nv.As<Napi::Array>();
      for (uint32_t k = 0; k < a.Length() && k < 5; k++) st.n[k] = a.Get(k).As<Napi::Number>().Int64Value();
    }
    Napi::Value iv = s.Get("ints");
    if (iv.IsArray()) {
      Napi::Array a = iv.As<Napi::Array>();
      std::vector<uint32_t> out;
      for (uint32_t k = 0; k < a.Length(); k++) out.push_back(a.Get(k).As<Napi::Number>().Uint32Value());
      d.ints.push_back(std::move(out));
      st.ints = d.ints.back().data();
      st.nints = static_cast<int32_t>(d.ints.back().size());
    }
    st.argv = keep_vector(d, s.Get("argv"));
    st.envp = keep_vector(d, s.Get("envp"));
    if (st.op == OP_EXEC && (!st.argv || !st.argv[0] || !st.envp)) {
      Napi::TypeError::New(env, "spawn: exec step needs argv[0] and envp").ThrowAsJavaScriptException();
      return false;
    }
    if (st.op == OP_EXEC) {
      std::vector<char *> h{const_cast<char *>(keep_string(d, Napi::String::New(env, "tsrun-exec"))), nullptr, nullptr, nullptr, nullptr, nullptr};
      for (char *const *a = st.argv; *a; a++) h.push_back(*a);
      h.push_back(nullptr);
      d.vectors.push_back(std::move(h));
      st.helper_argv = d.vectors.back().data();
    }
    Napi::Value bv = s.Get("bytes");
    if (bv.IsBuffer()) {
      Napi::Buffer<unsigned char> b = bv.As<Napi::Buffer<unsigned char>>();
      d.blobs.emplace_back(b.Data(), b.Data() + b.Length());
      st.bytes = d.blobs.back().data();
      st.nbytes = static_cast<int32_t>(b.Length());
    }
  }
  d.plan.steps = d.steps.data();
  d.plan.nsteps = static_cast<int>(d.steps.size());
  Napi::Value mv = js.Get("monitor");
  if (mv.IsObject()) {
    Napi::Object m = mv.As<Napi::Object>();
    d.plan.monitor.path = keep_string(d, m.Get("path"));
    d.plan.monitor.argv = keep_vector(d, m.Get("argv"));
    d.plan.monitor.envp = keep_vector(d, m.Get("envp"));
    Napi::Value fv = m.Get("fds");
    if (!d.plan.monitor.path || !d.plan.monitor.argv || !d.plan.monitor.envp || !fv.IsArray() || fv.As<Napi::Array>().Length() > 8) {
      Napi::TypeError::New(env, "spawn: monitor needs path, argv, envp and at most 8 fds").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Array a = fv.As<Napi::Array>();
    std::vector<uint32_t> fds;
    for (uint32_t k = 0; k < a.Length(); k++) fds.push_back(a.Get(k).As<Napi::Number>().Uint32Value());
    d.ints.push_back(std::move(fds));
    d.plan.monitor.fds = reinterpret_cast<const int *>(d.ints.back().data());
    d.plan.monitor.nfds = static_cast<int>(d.ints.back().size());
  }
  return true;
}

// The exec helper (native/exec-helper.cc) in a sealed memfd, made once per
// process: what the container can reach through /proc/self/exe at its own
// execve is this read-only copy, never a host binary. -errno on failure.
int exec_helper_fd(const std::string &path) {
  static std::string loaded;
  static int fd = -1;
  if (fd >= 0 && loaded == path) return fd;
  int src = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) return -errno;
  struct stat st;
  if (fstat(src, &st) < 0) {
    int e = errno;
    close(src);
    return -e;
  }
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
  // MFD_EXEC (Linux 6.3) keeps it executable where vm.memfd_noexec is set.
  int mfd = memfd_create("tsrun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (mfd < 0 && errno == EINVAL) mfd = memfd_create("tsrun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) {
    int e = errno;
    close(src);
    return -e;
  }
  off_t left = st.st_size;
  int e = 0;
  while (left > 0) {
    ssize_t n = sendfile(mfd, src, nullptr, static_cast<size_t>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      e = n < 0 ? errno : EIO;
      break;
    }
    left -= n;
  }
  close(src);
  if (!e && fchmod(mfd, 0555) < 0) e = errno;
  if (!e && fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) e = errno;
  if (e) {
    close(mfd);
    return -e;
  }
  if (fd >= 0) close(fd);
  fd = mfd;
  loaded = path;
  return fd;
}

// spawn(plan) -> { pid, sock }: the child waits on the sync socket per the plan.
Napi::Value Spawn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "spawn: expected a plan object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  DecodedPlan d;
  // A wrongly typed field throws inside decode without stopping it: check
  // before cloning, never after.
  if (!decode(env, info[0].As<Napi::Object>(), d) || env.IsExceptionPending()) return env.Undefined();
  d.plan.exec_helper_fd = -1;
  Napi::Value hv = info[0].As<Napi::Object>().Get("execHelper");
  if (hv.IsString()) {
    std::string helper = hv.As<Napi::String>().Utf8Value();
    int hfd = exec_helper_fd(helper);
    if (hfd < 0) return ThrowErrno(env, "load the exec helper", -hfd, helper.c_str());
    d.plan.exec_helper_fd = hfd;
  }
  int sock = -1;
  int pid = spawn_plan(&d.plan, &sock);
  if (pid < 0) return ThrowErrno(env, "clone", -pid, nullptr);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", pid);
  out.Set("sock", sock);
  return out;
}

}  // namespace
}  // namespace tsrun

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, tsrun::Spawn));
  tsrun::RegisterHost(env, exports);
  tsrun::RegisterSeccomp(env, exports);
  return exports;
}

NODE_API_MODULE(tsrun, InitAddon)
