// Host-side primitives Node does not have. Each is one syscall in the calling
// (Node) process; none of them touches a namespace.
#include "host.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <linux/openat2.h>
#include <linux/bpf.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace tsrun {

Napi::Value ThrowErrno(const Napi::Env &env, const char *syscall, int err, const char *path) {
  const char *code = strerrorname_np(err);
  std::string msg = std::string(syscall);
  if (path) msg += std::string(" ") + path;
  msg += std::string(": ") + (code ? code : "E?") + " (" + strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code ? code : "UNKNOWN"));
  if (path) e.Set("path", Napi::String::New(env, path));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

namespace {

std::string Str(const Napi::Value &v) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(); }
int64_t Int(const Napi::Value &v) { return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : 0; }

// mount(source, target, fstype, flags, data)
Napi::Value Mount(const Napi::CallbackInfo &info) {
  std::string src = Str(info[0]), target = Str(info[1]), type = Str(info[2]), data = Str(info[4]);
  unsigned long flags = static_cast<unsigned long>(Int(info[3]));
  if (mount(src.empty() ? nullptr : src.c_str(), target.c_str(), type.empty() ? nullptr : type.c_str(), flags,
            data.empty() ? nullptr : data.c_str()) < 0)
    return ThrowErrno(info.Env(), "mount", errno, target.c_str());
  return info.Env().Undefined();
}

// umount2(target, flags)
Napi::Value Umount2(const Napi::CallbackInfo &info) {
  std::string target = Str(info[0]);
  if (umount2(target.c_str(), static_cast<int>(Int(info[1]))) < 0) return ThrowErrno(info.Env(), "umount2", errno, target.c_str());
  return info.Env().Undefined();
}

// idmappable(dir, usernsFile): 0 when the filesystem of dir takes an idmapped
// mount for that user namespace, else the errno (EINVAL where it does not).
// The clone is detached and never attached: closing it drops it, and no
// mount namespace changes.
Napi::Value Idmappable(const Napi::CallbackInfo &info) {
  std::string dir = Str(info[0]), userns = Str(info[1]);
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, dir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) return ThrowErrno(info.Env(), "open_tree", errno, dir.c_str());
  int ns = open(userns.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    int e = errno;
    close(tree);
    return ThrowErrno(info.Env(), "open", e, userns.c_str());
  }
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(ns);
  int r = static_cast<int>(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr));
  int e = r < 0 ? errno : 0;
  close(ns);
  close(tree);
  return Napi::Number::New(info.Env(), e);
}

// mknod(path, mode, major, minor)
Napi::Value Mknod(const Napi::CallbackInfo &info) {
  std::string path = Str(info[0]);
  dev_t dev = makedev(static_cast<unsigned>(Int(info[2])), static_cast<unsigned>(Int(info[3])));
  if (mknod(path.c_str(), static_cast<mode_t>(Int(info[1])), dev) < 0) return ThrowErrno(info.Env(), "mknod", errno, path.c_str());
  return info.Env().Undefined();
}

// mkfifo(path, mode)
Napi::Value Mkfifo(const Napi::CallbackInfo &info) {
  std::string path = Str(info[0]);
  if (mkfifo(path.c_str(), static_cast<mode_t>(Int(info[1]))) < 0) return ThrowErrno(info.Env(), "mkfifo", errno, path.c_str());
  return info.Env().Undefined();
}

// lsetxattr(path, name, value: Buffer, flags)
Napi::Value Lsetxattr(const Napi::CallbackInfo &info) {
  std::string path = Str(info[0]), name = Str(info[1]);
  Napi::Buffer<char> value = info[2].As<Napi::Buffer<char>>();
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), static_cast<int>(Int(info[3]))) < 0)
    return ThrowErrno(info.Env(), "lsetxattr", errno, path.c_str());
  return info.Env().Undefined();
}

// lgetxattr(path, name) -> Buffer | null when the attribute is absent (also
// on a filesystem without extended attributes, as ramfs)
Napi::Value Lgetxattr(const Napi::CallbackInfo &info) {
  std::string path = Str(info[0]), name = Str(info[1]);
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) return info.Env().Null();
    return ThrowErrno(info.Env(), "lgetxattr", errno, path.c_str());
  }
  std::vector<char> buf(static_cast<size_t>(n) + 1);
  n = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0) return ThrowErrno(info.Env(), "lgetxattr", errno, path.c_str());
  return Napi::Buffer<char>::Copy(info.Env(), buf.data(), static_cast<size_t>(n));
}

// llistxattr(path) -> the names of the entry's own extended attributes
Napi::Value Llistxattr(const Napi::CallbackInfo &info) {
  std::string path = Str(info[0]);
  for (;;) {
    ssize_t n = llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return Napi::Array::New(info.Env());
      return ThrowErrno(info.Env(), "llistxattr", errno, path.c_str());
    }
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    ssize_t got = llistxattr(path.c_str(), buf.data(), buf.size());
    // ERANGE: an attribute was added since the size was asked; ask again.
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return ThrowErrno(info.Env(), "llistxattr", errno, path.c_str());
    Napi::Array names = Napi::Array::New(info.Env());
    uint32_t i = 0;
    for (ssize_t at = 0; at < got;) {
      size_t len = strnlen(buf.data() + at, static_cast<size_t>(got - at));
      if (len) names.Set(i++, Napi::String::New(info.Env(), buf.data() + at, len));
      at += static_cast<ssize_t>(len) + 1;
    }
    return names;
  }
}

// pidfdOpen(pid) -> fd (close-on-exec)
Napi::Value PidfdOpen(const Napi::CallbackInfo &info) {
  long fd = syscall(SYS_pidfd_open, static_cast<pid_t>(Int(info[0])), 0);
  if (fd < 0) {
    std::string what = "pid " + std::to_string(Int(info[0]));
    return ThrowErrno(info.Env(), "pidfd_open", errno, what.c_str());
  }
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// pidfdSendSignal(pidfd, signal)
Napi::Value PidfdSendSignal(const Napi::CallbackInfo &info) {
  if (syscall(SYS_pidfd_send_signal, static_cast<int>(Int(info[0])), static_cast<int>(Int(info[1])), nullptr, 0) < 0)
    return ThrowErrno(info.Env(), "pidfd_send_signal", errno, nullptr);
  return info.Env().Undefined();
}

Napi::Value StatusObject(Napi::Env env, const siginfo_t &si) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", si.si_pid);
  if (si.si_code == CLD_EXITED) {
    o.Set("exitCode", si.si_status);
    o.Set("signal", env.Null());
  } else {
    o.Set("exitCode", env.Null());
    o.Set("signal", si.si_status);
  }
  return o;
}

// A pidfd turns readable when its process exits: watch it on libuv's own
// loop, so waiting costs no threadpool slot.
struct PidfdWatch {
  uv_poll_t poll;
  int pidfd;
  Napi::FunctionReference callback;
  napi_env env;
};

void OnPidfdClosed(uv_handle_t *h) { delete static_cast<PidfdWatch *>(h->data); }

void OnPidfdReadable(uv_poll_t *handle, int status, int events) {
  PidfdWatch *w = static_cast<PidfdWatch *>(handle->data);
  uv_poll_stop(handle);
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  Napi::Value result = env.Null();
  // Only our own children can be reaped; for others the readable pidfd alone says "exited".
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(w->pidfd), &si, WEXITED | __WALL) == 0) result = StatusObject(env, si);
  w->callback.MakeCallback(env.Global(), {result});
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), OnPidfdClosed);
}

// watchPidfd(pidfd, callback(status | null))
Napi::Value WatchPidfd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  PidfdWatch *w = new PidfdWatch();
  w->pidfd = static_cast<int>(Int(info[0]));
  w->callback = Napi::Persistent(info[1].As<Napi::Function>());
  w->env = env;
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, w->pidfd);
  if (r == 0) r = uv_poll_start(&w->poll, UV_READABLE, OnPidfdReadable);
  if (r != 0) {
    delete w;
    return ThrowErrno(env, "uv_poll_start", -r, nullptr);
  }
  return env.Undefined();
}

// reap(pid) -> status: for a child known to have exited (or about to).
Napi::Value Reap(const Napi::CallbackInfo &info) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  pid_t pid = static_cast<pid_t>(Int(info[0]));
  int flags = WEXITED | __WALL | (info[1].ToBoolean().Value() ? WNOHANG : 0);
  while (waitid(P_PID, static_cast<id_t>(pid), &si, flags) < 0) {
    if (errno == EINTR) continue;
    std::string what = "pid " + std::to_string(pid);
    return ThrowErrno(info.Env(), "waitid", errno, what.c_str());
  }
  if (si.si_pid == 0) return info.Env().Null();
  return StatusObject(info.Env(), si);
}

// flock(fd, operation) -> true, or false when LOCK_NB and held elsewhere
Napi::Value Flock(const Napi::CallbackInfo &info) {
  int op = static_cast<int>(Int(info[1]));
  while (flock(static_cast<int>(Int(info[0])), op) < 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && (op & LOCK_NB)) return Napi::Boolean::New(info.Env(), false);
    return ThrowErrno(info.Env(), "flock", errno, nullptr);
  }
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value FdPair(Napi::Env env, const int fds[2]) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

// pipe() -> [read, write], both close-on-exec: the runtime hands them out
// by number in a plan or to the monitor.
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return ThrowErrno(info.Env(), "pipe2", errno, nullptr);
  return FdPair(info.Env(), fds);
}

// socketpair() -> [a, b], AF_UNIX stream, close-on-exec: carries a pty master.
Napi::Value SocketPair(const Napi::CallbackInfo &info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return ThrowErrno(info.Env(), "socketpair", errno, nullptr);
  return FdPair(info.Env(), fds);
}

// recvFd(sock) -> fd, or null when none is waiting: one descriptor passed
// with SCM_RIGHTS. Never blocks.
Napi::Value RecvFd(const Napi::CallbackInfo &info) {
  int fd = recv_fd(static_cast<int>(Int(info[0])), MSG_DONTWAIT);
  if (fd == -1 && errno != EAGAIN && errno != EWOULDBLOCK) return ThrowErrno(info.Env(), "recvmsg", errno, nullptr);
  if (fd < 0) return info.Env().Null();
  return Napi::Number::New(info.Env(), fd);
}

// connectUnix(path) -> fd: a connected AF_UNIX stream socket, close-on-exec
// (runc's --console-socket: the pty master is sent over it).
Napi::Value ConnectUnix(const Napi::CallbackInfo &info) {
  std::string p = Str(info[0]);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (p.empty() || p.size() >= sizeof addr.sun_path) return ThrowErrno(info.Env(), "connect", ENAMETOOLONG, p.c_str());
  memcpy(addr.sun_path, p.c_str(), p.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(info.Env(), "socket", errno, p.c_str());
  if (connect(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof addr) < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(info.Env(), "connect", e, p.c_str());
  }
  return Napi::Number::New(info.Env(), fd);
}

// setWinsize(fd, rows, cols): TIOCSWINSZ on a terminal (a pty master).
Napi::Value SetWinsize(const Napi::CallbackInfo &info) {
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  ws.ws_row = static_cast<unsigned short>(Int(info[1]));
  ws.ws_col = static_cast<unsigned short>(Int(info[2]));
  if (ioctl(static_cast<int>(Int(info[0])), TIOCSWINSZ, &ws) < 0) return ThrowErrno(info.Env(), "ioctl(TIOCSWINSZ)", errno, nullptr);
  return info.Env().Undefined();
}

// openat2(dirfd, path, flags, resolve) -> fd: the unpacker's and the image
// readers' way to reach an entry with no symlink on the way (RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS) or with symlinks kept inside a root (RESOLVE_IN_ROOT).
Napi::Value Openat2(const Napi::CallbackInfo &info) {
  std::string p = Str(info[1]);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(Int(info[2])) | O_CLOEXEC;
  how.resolve = static_cast<uint64_t>(Int(info[3]));
  long fd;
  do {
    fd = syscall(SYS_openat2, static_cast<int>(Int(info[0])), p.c_str(), &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) return ThrowErrno(info.Env(), "openat2", errno, p.c_str());
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// fsetxattr(fd, name, value: Buffer, flags)
Napi::Value Fsetxattr(const Napi::CallbackInfo &info) {
  std::string name = Str(info[1]);
  Napi::Buffer<char> value = info[2].As<Napi::Buffer<char>>();
  if (fsetxattr(static_cast<int>(Int(info[0])), name.c_str(), value.Data(), value.Length(), static_cast<int>(Int(info[3]))) < 0)
    return ThrowErrno(info.Env(), "fsetxattr", errno, name.c_str());
  return info.Env().Undefined();
}

// lchmod(path, mode): chmod of the entry itself, never of a symlink's target
// (fchmodat with AT_SYMLINK_NOFOLLOW; a symlink gets EOPNOTSUPP).
Napi::Value Lchmod(const Napi::CallbackInfo &info) {
  std::string p = Str(info[0]);
  if (fchmodat(AT_FDCWD, p.c_str(), static_cast<mode_t>(Int(info[1])), AT_SYMLINK_NOFOLLOW) < 0) return ThrowErrno(info.Env(), "fchmodat", errno, p.c_str());
  return info.Env().Undefined();
}

// Removes a directory tree without recursion and without path names longer
// than one component: it walks down with openat and back up with "..", so a
// tree deeper than PATH_MAX (a container can make one) is removed too. It
// never follows a symlink and never enters another filesystem (a mount point
// left inside is reported, not emptied).
int remove_tree(const char *top, std::string *where) {
  struct stat top_st;
  if (lstat(top, &top_st) < 0) return errno == ENOENT ? 0 : (*where = top, -1);
  if (!S_ISDIR(top_st.st_mode)) return unlink(top) < 0 && errno != ENOENT ? (*where = top, -1) : 0;
  int fd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return *where = top, -1;
  std::vector<std::string> names;  // the path below top, one component each
  std::vector<ino_t> inodes;       // and each directory's inode, to check ".."
  inodes.push_back(top_st.st_ino);
  auto fail = [&](const std::string &name) {
    int e = errno;
    std::string p = top;
    for (auto &n : names) p += "/" + n;
    if (!name.empty()) p += "/" + name;
    *where = p;
    close(fd);
    errno = e;
    return -1;
  };
  for (;;) {
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return fail("");
    DIR *d = fdopendir(dup_fd);
    if (!d) {
      close(dup_fd);
      return fail("");
    }
    std::string descend;
    errno = 0;
    bool failed = false;
    std::string failed_name;
    while (struct dirent *de = readdir(d)) {
      const char *n = de->d_name;
      if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
      struct stat st;
      if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;
        failed = true, failed_name = n;
        break;
      }
      if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != top_st.st_dev) {
          errno = EXDEV;
          failed = true, failed_name = n;
          break;
        }
        if (unlinkat(fd, n, AT_REMOVEDIR) == 0 || errno == ENOENT) continue;
        if (errno != ENOTEMPTY && errno != EEXIST) {
          failed = true, failed_name = n;
          break;
        }
        descend = n;
        break;
      }
      if (unlinkat(fd, n, 0) < 0 && errno != ENOENT) {
        failed = true, failed_name = n;
        break;
      }
    }
    int e = errno;
    closedir(d);
    errno = e;
    if (failed) return fail(failed_name);
    if (!descend.empty()) {
      int child = openat(fd, descend.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) return fail(descend);
      struct stat cst;
      fstat(child, &cst);
      close(fd);
      fd = child;
      names.push_back(descend);
      inodes.push_back(cst.st_ino);
      continue;
    }
    // This directory is empty: climb to its parent and remove it there.
    if (names.empty()) break;
    int parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0) return fail("..");
    struct stat pst;
    if (fstat(parent, &pst) < 0 || pst.st_ino != inodes[inodes.size() - 2]) {
      close(parent);
      errno = ESTALE;  // the tree was moved while being removed
      return fail("..");
    }
    close(fd);
    fd = parent;
    std::string name = names.back();
    names.pop_back();
    inodes.pop_back();
    if (unlinkat(fd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) return fail(name);
  }
  close(fd);
  if (rmdir(top) < 0 && errno != ENOENT) return *where = top, -1;
  return 0;
}

// removeTree(path): rm -rf of a tree that may be deep or hostile.
Napi::Value RemoveTree(const Napi::CallbackInfo &info) {
  std::string p = Str(info[0]);
  std::string where;
  if (remove_tree(p.c_str(), &where) < 0) {
    if (where.size() > 200) where = "..." + where.substr(where.size() - 200);
    return ThrowErrno(info.Env(), "remove", errno, where.c_str());
  }
  return info.Env().Undefined();
}

// attachDeviceProgram(cgroupDir, insns): the cgroup v2 device filter. The
// program is loaded (BPF_PROG_TYPE_CGROUP_DEVICE) and attached with
// BPF_F_ALLOW_MULTI, so a parent's program still applies; it stays with
// the cgroup until the cgroup is removed.
Napi::Value AttachDeviceProgram(const Napi::CallbackInfo &info) {
  std::string dir = Str(info[0]);
  Napi::Buffer<char> insns = info[1].As<Napi::Buffer<char>>();
  static char log[16384];
  log[0] = '\0';
  union bpf_attr load;
  memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<uint64_t>(insns.Data());
  load.insn_cnt = static_cast<uint32_t>(insns.Length() / sizeof(struct bpf_insn));
  load.license = reinterpret_cast<uint64_t>("Apache");
  load.log_buf = reinterpret_cast<uint64_t>(log);
  load.log_size = sizeof log;
  load.log_level = 1;
  int prog = static_cast<int>(syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load));
  if (prog < 0 && errno == ENOSPC) {
    // The log did not fit; load again without one for the plain errno.
    load.log_buf = 0, load.log_size = 0, load.log_level = 0;
    prog = static_cast<int>(syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load));
  }
  if (prog < 0) {
    int e = errno;
    std::string what = "device program for " + dir;
    size_t n = strnlen(log, sizeof log);
    if (n) what += " (verifier: " + std::string(log, n > 300 ? 300 : n) + ")";
    return ThrowErrno(info.Env(), "bpf(BPF_PROG_LOAD)", e, what.c_str());
  }
  int cg = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) {
    int e = errno;
    close(prog);
    return ThrowErrno(info.Env(), "open", e, dir.c_str());
  }
  union bpf_attr attach;
  memset(&attach, 0, sizeof attach);
  attach.target_fd = static_cast<uint32_t>(cg);
  attach.attach_bpf_fd = static_cast<uint32_t>(prog);
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  int r = static_cast<int>(syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach));
  int e = errno;
  close(cg);
  close(prog);
  if (r < 0) return ThrowErrno(info.Env(), "bpf(BPF_PROG_ATTACH)", e, dir.c_str());
  return info.Env().Undefined();
}

}  // namespace

void RegisterHost(Napi::Env env, Napi::Object exports) {
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("recvFd", Napi::Function::New(env, RecvFd));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix));
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount2", Napi::Function::New(env, Umount2));
  exports.Set("idmappable", Napi::Function::New(env, Idmappable));
  exports.Set("mknod", Napi::Function::New(env, Mknod));
  exports.Set("mkfifo", Napi::Function::New(env, Mkfifo));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr));
  exports.Set("fsetxattr", Napi::Function::New(env, Fsetxattr));
  exports.Set("lchmod", Napi::Function::New(env, Lchmod));
  exports.Set("openat2", Napi::Function::New(env, Openat2));
  exports.Set("removeTree", Napi::Function::New(env, RemoveTree));
  exports.Set("attachDeviceProgram", Napi::Function::New(env, AttachDeviceProgram));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal));
  exports.Set("watchPidfd", Napi::Function::New(env, WatchPidfd));
  exports.Set("reap", Napi::Function::New(env, Reap));
  exports.Set("flock", Napi::Function::New(env, Flock));
}

}  // namespace tsrun
