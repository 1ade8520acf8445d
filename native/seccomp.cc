// compileSeccomp(linux.seccomp) -> Buffer: the BPF program of a runtime-spec
// seccomp config, built with libseccomp in the runtime (DESIGN section 13);
// the child only loads the bytes. The rules follow runc's reading of the
// spec: unknown syscall names are skipped (the kernel has no such call to
// allow or deny), a rule whose action is the default is left out, and
// conditions on the same argument become separate rules (libseccomp ANDs the
// conditions of one rule, and cannot AND two on one argument).
#include <napi.h>

#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "host.h"

namespace tsrun {
namespace {

bool parse_action(const std::string &name, uint32_t errno_ret, uint32_t *out) {
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") *out = SCMP_ACT_KILL_THREAD;
  else if (name == "SCMP_ACT_KILL_PROCESS") *out = SCMP_ACT_KILL_PROCESS;
  else if (name == "SCMP_ACT_TRAP") *out = SCMP_ACT_TRAP;
  else if (name == "SCMP_ACT_ERRNO") *out = SCMP_ACT_ERRNO(errno_ret);
  else if (name == "SCMP_ACT_TRACE") *out = SCMP_ACT_TRACE(errno_ret);
  else if (name == "SCMP_ACT_LOG") *out = SCMP_ACT_LOG;
  else if (name == "SCMP_ACT_ALLOW") *out = SCMP_ACT_ALLOW;
  else return false;
  return true;
}

bool parse_op(const std::string &name, scmp_compare *out) {
  static const struct {
    const char *name;
    scmp_compare op;
  } ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
             {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT}, {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
  for (auto &o : ops)
    if (name == o.name) {
      *out = o.op;
      return true;
    }
  return false;
}

// "SCMP_ARCH_X86_64" -> libseccomp's "x86_64".
uint32_t parse_arch(const std::string &name) {
  std::string s = name.rfind("SCMP_ARCH_", 0) == 0 ? name.substr(10) : name;
  for (auto &c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(s.c_str());
}

std::string Str(const Napi::Value &v) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(); }
uint32_t Uint(const Napi::Value &v, uint32_t dflt) { return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : dflt; }
uint64_t U64(const Napi::Value &v) { return v.IsNumber() ? static_cast<uint64_t>(v.As<Napi::Number>().Int64Value()) : 0; }

Napi::Value Fail(const Napi::Env &env, const std::string &what) {
  Napi::Error::New(env, what).ThrowAsJavaScriptException();
  return env.Undefined();
}

struct Filter {
  scmp_filter_ctx ctx = nullptr;
  ~Filter() {
    if (ctx) seccomp_release(ctx);
  }
};

Napi::Value CompileSeccomp(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return Fail(env, "compileSeccomp: expected linux.seccomp");
  Napi::Object cfg = info[0].As<Napi::Object>();
  const uint32_t eperm = EPERM;
  uint32_t def_action;
  std::string def_name = Str(cfg.Get("defaultAction"));
  if (!parse_action(def_name, Uint(cfg.Get("defaultErrnoRet"), eperm), &def_action)) return Fail(env, "linux.seccomp.defaultAction: unknown action \"" + def_name + "\"");
  Filter f;
  f.ctx = seccomp_init(def_action);
  if (!f.ctx) return Fail(env, "seccomp_init: cannot make a filter");
  // tsrun sets no_new_privs itself, as the config says; the filter must not.
  seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_NNP, 0);
  Napi::Value archv = cfg.Get("architectures");
  if (archv.IsArray()) {
    Napi::Array archs = archv.As<Napi::Array>();
    for (uint32_t i = 0; i < archs.Length(); i++) {
      std::string name = Str(archs.Get(i));
      uint32_t arch = parse_arch(name);
      if (!arch) return Fail(env, "linux.seccomp.architectures[" + std::to_string(i) + "]: libseccomp does not know \"" + name + "\"");
      int rc = seccomp_arch_add(f.ctx, arch);
      if (rc < 0 && rc != -EEXIST) return Fail(env, "seccomp_arch_add " + name + ": " + strerror(-rc));
    }
  }
  Napi::Value sysv = cfg.Get("syscalls");
  Napi::Array syscalls = sysv.IsArray() ? sysv.As<Napi::Array>() : Napi::Array::New(env);
  for (uint32_t i = 0; i < syscalls.Length(); i++) {
    Napi::Object sc = syscalls.Get(i).As<Napi::Object>();
    std::string field = "linux.seccomp.syscalls[" + std::to_string(i) + "]";
    uint32_t action;
    std::string aname = Str(sc.Get("action"));
    if (!parse_action(aname, Uint(sc.Get("errnoRet"), eperm), &action)) return Fail(env, field + ".action: unknown action \"" + aname + "\"");
    if (action == def_action) continue;
    std::vector<scmp_arg_cmp> conds;
    int per_index[6] = {0};
    Napi::Value argsv = sc.Get("args");
    if (argsv.IsArray()) {
      Napi::Array args = argsv.As<Napi::Array>();
      for (uint32_t k = 0; k < args.Length(); k++) {
        Napi::Object a = args.Get(k).As<Napi::Object>();
        uint32_t index = Uint(a.Get("index"), 99);
        scmp_compare op;
        std::string oname = Str(a.Get("op"));
        if (index > 5) return Fail(env, field + ".args[" + std::to_string(k) + "].index: must be 0-5");
        if (!parse_op(oname, &op)) return Fail(env, field + ".args[" + std::to_string(k) + "].op: unknown operator \"" + oname + "\"");
        per_index[index]++;
        conds.push_back(SCMP_CMP64(index, op, U64(a.Get("value")), U64(a.Get("valueTwo"))));
      }
    }
    bool separate = false;
    for (int c : per_index) separate = separate || c > 1;
    Napi::Array names = sc.Get("names").As<Napi::Array>();
    for (uint32_t n = 0; n < names.Length(); n++) {
      std::string name = Str(names.Get(n));
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: nothing to allow or deny
      int rc = 0;
      if (!separate) {
        rc = seccomp_rule_add_array(f.ctx, action, nr, static_cast<unsigned>(conds.size()), conds.data());
      } else {
        for (auto &c : conds)
          if ((rc = seccomp_rule_add_array(f.ctx, action, nr, 1, &c)) < 0) break;
      }
      if (rc < 0) return Fail(env, field + ": add a rule for " + name + ": " + strerror(-rc));
    }
  }
  int fd = memfd_create("tsrun-seccomp", MFD_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "memfd_create", errno, nullptr);
  int rc = seccomp_export_bpf(f.ctx, fd);
  if (rc < 0) {
    close(fd);
    return Fail(env, std::string("seccomp_export_bpf: ") + strerror(-rc));
  }
  off_t size = lseek(fd, 0, SEEK_END);
  std::vector<unsigned char> bytes(static_cast<size_t>(size > 0 ? size : 0));
  ssize_t got = size > 0 ? pread(fd, bytes.data(), bytes.size(), 0) : 0;
  int e = errno;
  close(fd);
  if (got != static_cast<ssize_t>(bytes.size())) return ThrowErrno(env, "read the seccomp program", got < 0 ? e : EIO, nullptr);
  return Napi::Buffer<unsigned char>::Copy(env, bytes.data(), bytes.size());
}

}  // namespace

// The libseccomp in use, "2.5.4": part of a compiled filter's cache key.
Napi::Value SeccompVersion(const Napi::CallbackInfo &info) {
  const scmp_version *v = seccomp_version();
  return Napi::String::New(info.Env(), std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->micro));
}

void RegisterSeccomp(Napi::Env env, Napi::Object exports) {
  exports.Set("compileSeccomp", Napi::Function::New(env, CompileSeccomp));
  exports.Set("seccompVersion", Napi::Function::New(env, SeccompVersion));
}

}  // namespace tsrun
