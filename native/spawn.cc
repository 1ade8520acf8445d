// The one fork point. Everything after clone() in the child runs here, on a
// copy of a multithreaded process: only raw syscalls and pure functions
// (memcpy, strlen), no malloc, no exceptions, no stdio, no glibc set*id
// wrappers (they signal threads that do not exist in the child). The child
// leaves only by execve or exit.
#include "fdpass.h"
#include "plan.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

namespace tsrun {
namespace {

const Plan *plan_ = nullptr;
int sync_fd_ = -1;
int root_fd_ = AT_FDCWD;
char exec_path_[4096];
char scratch_[4096];

void send_msg(int32_t kind, int32_t step, int32_t err, int32_t value) {
  Message m{kind, step, err, value};
  // MSG_NOSIGNAL: the parent may be gone (create has returned); never die of SIGPIPE.
  syscall(SYS_sendto, sync_fd_, &m, sizeof m, MSG_NOSIGNAL, nullptr, 0);
}

[[noreturn]] void exit_now(int code) {
  syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

[[noreturn]] void die(int step, int err) {
  send_msg(MSG_ERROR, step, err, 0);
  int op = plan_->steps[step].op;
  int code = 1;
  if (op == OP_EXEC || op == OP_LOOKUP_EXEC) code = err == ENOENT ? 127 : 126;
  exit_now(code);
}

// Blocks for the parent's next reply; -1 when the parent has gone.
int wait_reply() {
  Message m;
  size_t got = 0;
  while (got < sizeof m) {
    ssize_t r = read(sync_fd_, reinterpret_cast<char *>(&m) + got, sizeof m - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += static_cast<size_t>(r);
  }
  return m.kind;
}

char *fmt_int(char *buf, long n);

char *fmt_fd_path(char *buf, int fd) {
  // "/proc/self/fd/<fd>" without stdio.
  static const char prefix[] = "/proc/self/fd/";
  memcpy(buf, prefix, sizeof prefix - 1);
  fmt_int(buf + sizeof prefix - 1, fd);
  return buf;
}

// Opens path below the root as O_PATH. Symlinks, "..", and absolute links are
// resolved as if the root were "/", so an image cannot point a mount outside.
int open_in_root(const char *path, uint64_t extra_flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_CLOEXEC | extra_flags;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root_fd_, path, &how, sizeof how));
}

// Splits scratch_ at its last '/': returns the base name, leaves the parent in scratch_.
const char *split_parent(const char *path) {
  size_t len = strlen(path);
  if (len >= sizeof scratch_) {
    errno = ENAMETOOLONG;
    return nullptr;
  }
  memcpy(scratch_, path, len + 1);
  while (len > 1 && scratch_[len - 1] == '/') scratch_[--len] = '\0';
  char *slash = strrchr(scratch_, '/');
  if (!slash) {
    // No parent component: the parent is the root itself.
    memmove(scratch_ + 2, scratch_, len + 1);
    scratch_[0] = '.';
    scratch_[1] = '\0';
    return scratch_ + 2;
  }
  *slash = '\0';
  if (slash == scratch_) {
    // "/name": parent is the root.
    memmove(scratch_ + 2, slash + 1, strlen(slash + 1) + 1);
    scratch_[0] = '/';
    scratch_[1] = '\0';
    return scratch_ + 2;
  }
  return slash + 1;
}

// Where a path whose last component is a dangling symlink leads, inside the
// root: an image's /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf
// becomes that file, made in the rootfs, as runc does. A path that resolves,
// or whose last component is no symlink, is its own answer.
int follow_dangling(const char *path, char *out, size_t outlen) {
  char cur[4096];
  size_t len = strlen(path);
  if (len >= sizeof cur || len >= outlen) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(cur, path, len + 1);
  for (int hops = 0; hops < 40; hops++) {
    int fd = open_in_root(cur, 0);
    if (fd >= 0 || errno != ENOENT) {
      if (fd >= 0) close(fd);
      break;
    }
    char parent[4096];
    const char *b = split_parent(cur);
    if (!b) return -1;
    char base[256];
    size_t blen = strlen(b), plen = strlen(scratch_);
    if (blen >= sizeof base) {
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(base, b, blen + 1);
    memcpy(parent, scratch_, plen + 1);
    int pfd = open_in_root(parent, O_DIRECTORY);
    if (pfd < 0) break;  // a missing parent: mkdir -p makes it
    char target[4096];
    ssize_t n = readlinkat(pfd, base, target, sizeof target - 1);
    close(pfd);
    if (n <= 0) break;  // not a symlink
    target[n] = '\0';
    size_t tlen = static_cast<size_t>(n);
    if (target[0] == '/') {
      memcpy(cur, target, tlen + 1);
    } else {
      if (plen + 1 + tlen >= sizeof cur) {
        errno = ENAMETOOLONG;
        return -1;
      }
      memcpy(cur, parent, plen);
      cur[plen] = '/';
      memcpy(cur + plen + 1, target, tlen + 1);
    }
  }
  len = strlen(cur);
  if (len >= outlen) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(out, cur, len + 1);
  return 0;
}

// mkdir -p below the root, each component resolved inside the root; a
// component that is a dangling symlink has its target made instead.
int mkdirs_in_root_depth(const char *path, mode_t mode, int depth) {
  if (depth > 8) {
    errno = ELOOP;
    return -1;
  }
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i - 1] == '/') continue;
    char saved = buf[i];
    buf[i] = '\0';
    int fd = open_in_root(buf, O_DIRECTORY);
    if (fd >= 0) {
      close(fd);
    } else if (errno == ENOENT) {
      const char *base = split_parent(buf);
      if (!base) return -1;
      int parent = open_in_root(scratch_, O_DIRECTORY);
      if (parent < 0) return -1;
      int r = mkdirat(parent, base, mode);
      int e = errno;
      close(parent);
      if (r < 0 && e != EEXIST) {
        errno = e;
        return -1;
      }
      if (r < 0) {
        // It exists yet does not resolve: a dangling symlink. Make where it leads.
        char target[4096];
        if (follow_dangling(buf, target, sizeof target) < 0) return -1;
        if (strcmp(target, buf) == 0) {
          errno = EEXIST;
          return -1;
        }
        if (mkdirs_in_root_depth(target, mode, depth + 1) < 0) return -1;
      }
    } else {
      return -1;
    }
    buf[i] = saved;
  }
  return 0;
}

int mkdirs_in_root(const char *path, mode_t mode) { return mkdirs_in_root_depth(path, mode, 0); }

// Opens the parent directory of path below the root (creating it); returns its
// fd and points *base at the last component.
int open_parent_in_root(const char *path, const char **base) {
  const char *b = split_parent(path);
  if (!b) return -1;
  char parent[4096];
  size_t plen = strlen(scratch_);
  memcpy(parent, scratch_, plen + 1);
  static char base_buf[256];
  size_t blen = strlen(b);
  if (blen >= sizeof base_buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(base_buf, b, blen + 1);
  if (mkdirs_in_root(parent, 0755) < 0) return -1;
  *base = base_buf;
  return open_in_root(parent, O_DIRECTORY);
}

int create_file_in_root(const char *path) {
  // Whatever is there already (a file, a directory, even a fifo) is the
  // mount point as it is: never open it, which could block or write.
  int existing = open_in_root(path, 0);
  if (existing >= 0) {
    close(existing);
    return 0;
  }
  if (errno != ENOENT) return -1;
  char where[4096];
  if (follow_dangling(path, where, sizeof where) < 0) return -1;
  const char *base;
  int parent = open_parent_in_root(where, &base);
  if (parent < 0) return -1;
  close(parent);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC;
  how.mode = 0644;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root_fd_, where, &how, sizeof how));
  if (fd < 0) return errno == EEXIST ? 0 : -1;
  close(fd);
  return 0;
}

// Flags of a mount that an unprivileged remount must keep (they are locked
// when the mount came from a more privileged namespace).
// The mount flags a remount must repeat (a mount made in another user
// namespace has them locked), read from statfs's ST_ bits. Those are the MS_
// bits but for relatime, and a mount with neither noatime nor relatime is
// strictatime, which a remount without it would lose. -1 when statfs fails.
long locked_flags(const char *path) {
  struct statfs st;
  if (statfs(path, &st) < 0) return -1;
  unsigned long f = st.f_flags;
  unsigned long out = f & (ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME);
  if (f & ST_RELATIME) out |= MS_RELATIME;
  else if (!(f & ST_NOATIME)) out |= MS_STRICTATIME;
  return static_cast<long>(out);
}

int remount(const char *target, unsigned long flags) {
  flags |= MS_REMOUNT | MS_BIND;
  if (mount(nullptr, target, nullptr, flags, nullptr) == 0) return 0;
  if (errno != EPERM) return -1;
  long locked = locked_flags(target);
  if (locked < 0) return -1;
  // A mount locked read-only stays so (runc keeps MS_RDONLY on this retry too).
  struct statfs st;
  if (statfs(target, &st) == 0 && (st.f_flags & ST_RDONLY)) flags |= MS_RDONLY;
  return mount(nullptr, target, nullptr, flags | static_cast<unsigned long>(locked), nullptr);
}

// Copies the tree under dir fd `from` into dir fd `to` (tmpcopyup): files,
// directories, symlinks and special files with their owners, modes and
// times, never following a link of the source (the image's). Depth is
// bounded: a hostile image's deep tree is an error, not a stack overflow.
int copy_tree(int from, int to, int depth) {
  if (depth > 128) {
    errno = ELOOP;
    return -1;
  }
  int dup = fcntl(from, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return -1;
  DIR *dir = fdopendir(dup);
  if (!dir) {
    close(dup);
    return -1;
  }
  int rc = 0;
  for (struct dirent *e; rc == 0 && (errno = 0, e = readdir(dir)) != nullptr;) {
    const char *name = e->d_name;
    if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
    struct stat sb;
    if (fstatat(from, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = -1;
      break;
    }
    struct timespec times[2] = {sb.st_atim, sb.st_mtim};
    mode_t type = sb.st_mode & S_IFMT;
    if (type == S_IFDIR) {
      int src = -1, dst = -1;
      rc = (mkdirat(to, name, 0700) < 0 || (src = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
            (dst = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 || copy_tree(src, dst, depth + 1) < 0 ||
            fchown(dst, sb.st_uid, sb.st_gid) < 0 || fchmod(dst, sb.st_mode & 07777) < 0 || futimens(dst, times) < 0)
               ? -1
               : 0;
      int saved = errno;
      if (src >= 0) close(src);
      if (dst >= 0) close(dst);
      errno = saved;
    } else if (type == S_IFREG) {
      int src = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      int dst = src < 0 ? -1 : openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      rc = dst < 0 ? -1 : 0;
      char buf[65536];
      for (ssize_t n; rc == 0 && (n = read(src, buf, sizeof buf)) != 0;) {
        if (n < 0) {
          if (errno == EINTR) continue;
          rc = -1;
          break;
        }
        for (ssize_t off = 0; off < n;) {
          ssize_t w = write(dst, buf + off, static_cast<size_t>(n - off));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            rc = -1;
            break;
          }
          off += w;
        }
      }
      if (rc == 0 && (fchown(dst, sb.st_uid, sb.st_gid) < 0 || fchmod(dst, sb.st_mode & 07777) < 0 || futimens(dst, times) < 0)) rc = -1;
      int saved = errno;
      if (src >= 0) close(src);
      if (dst >= 0) close(dst);
      errno = saved;
    } else if (type == S_IFLNK) {
      char link[4096];
      ssize_t n = readlinkat(from, name, link, sizeof link - 1);
      if (n < 0) {
        rc = -1;
        break;
      }
      link[n] = '\0';
      rc = (symlinkat(link, to, name) < 0 || fchownat(to, name, sb.st_uid, sb.st_gid, AT_SYMLINK_NOFOLLOW) < 0 || utimensat(to, name, times, AT_SYMLINK_NOFOLLOW) < 0) ? -1 : 0;
    } else {
      // fifos, sockets, device nodes: made again as they are (the device cgroup still decides who opens one).
      rc = (mknodat(to, name, sb.st_mode, sb.st_rdev) < 0 || fchownat(to, name, sb.st_uid, sb.st_gid, AT_SYMLINK_NOFOLLOW) < 0 || fchmodat(to, name, sb.st_mode & 07777, 0) < 0 ||
            utimensat(to, name, times, AT_SYMLINK_NOFOLLOW) < 0)
               ? -1
               : 0;
    }
  }
  if (rc == 0 && errno != 0) rc = -1;
  int saved = errno;
  closedir(dir);
  errno = saved;
  return rc;
}

int open_dir_in_root(const char *path) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root_fd_, path, &how, sizeof how));
}

int do_mount(const Step &st) {
  const char *source = st.s[0];
  const char *target = st.s[1];
  const char *fstype = st.s[2];
  const char *data = st.s[3];
  unsigned long flags = static_cast<unsigned long>(st.n[0]);
  bool in_root = st.n[1] != 0;
  // n2: 0 nothing, 1 a directory, 2 a file is made at the target; 4 added: tmpcopyup.
  bool copy_up = (st.n[2] & 4) != 0 && in_root;
  int create = static_cast<int>(st.n[2] & 3);
  unsigned long remount_flags = static_cast<unsigned long>(st.n[3]);
  unsigned long propagation = static_cast<unsigned long>(st.n[4]);
  char fdpath[64];

  if (create == 1 && in_root) {
    // A dangling symlink at the target: its target is made, inside the root.
    char where[4096];
    if (follow_dangling(target, where, sizeof where) < 0 || mkdirs_in_root(where, 0755) < 0) return -1;
  }
  if (create == 1 && !in_root && mkdir(target, 0755) < 0 && errno != EEXIST) return -1;
  if (create == 2 && in_root && create_file_in_root(target) < 0) return -1;

  const char *where = target;
  int tfd = -1;
  // tmpcopyup: the directory's content, still reachable through this fd once the tmpfs hides it.
  int below = copy_up ? open_dir_in_root(target) : -1;
  if (copy_up && below < 0) return -1;
  if (in_root) {
    tfd = open_in_root(target, 0);
    if (tfd < 0) {
      if (below >= 0) close(below);
      return -1;
    }
    where = fmt_fd_path(fdpath, tfd);
  }
  int r = mount(source, where, fstype, flags, data);
  int e = errno;
  if (tfd >= 0) close(tfd);
  if (r < 0) {
    if (below >= 0) close(below);
    errno = e;
    return -1;
  }
  if (copy_up) {
    int above = open_dir_in_root(target);
    r = above < 0 ? -1 : copy_tree(below, above, 0);
    e = errno;
    if (above >= 0) close(above);
    close(below);
    if (r < 0) {
      errno = e;
      return -1;
    }
  }
  if (!remount_flags && !propagation) return 0;
  // The fd above names the directory under the new mount; resolve again to reach the mount itself.
  if (in_root) {
    tfd = open_in_root(target, 0);
    if (tfd < 0) return -1;
    where = fmt_fd_path(fdpath, tfd);
  }
  r = 0;
  if (remount_flags) r = remount(where, remount_flags);
  if (r == 0 && (remount_flags & MS_RDONLY) && (flags & MS_REC) && tfd >= 0) {
    // A remount makes only the top mount read-only; submounts of an rbind
    // need mount_setattr(AT_RECURSIVE) (Linux 5.12), or they stay writable.
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0 && errno != ENOSYS) r = -1;
  }
  if (r == 0 && propagation) r = mount(nullptr, where, nullptr, propagation, nullptr);
  e = errno;
  if (tfd >= 0) close(tfd);
  errno = e;
  return r;
}

int do_pivot_root(const char *new_root) {
  int fd = open(new_root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (fchdir(fd) < 0) return -1;
  close(fd);
  // pivot_root(".", "."): the old root is stacked under the new one, then detached.
  if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
  // Keep the detach below from propagating to the host.
  if (mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) return -1;
  if (umount2(".", MNT_DETACH) < 0) return -1;
  if (chdir("/") < 0) return -1;
  if (root_fd_ != AT_FDCWD) close(root_fd_);
  root_fd_ = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return root_fd_ < 0 ? -1 : 0;
}

int do_mask_path(const char *path) {
  // Only the real null device may cover a file: a /dev/null swapped for
  // something else would expose it instead of hiding.
  struct stat null_st;
  if (stat("/dev/null", &null_st) < 0) return -1;
  if (!S_ISCHR(null_st.st_mode) || null_st.st_rdev != makedev(1, 3)) {
    errno = ENOTTY;
    return -1;
  }
  if (mount("/dev/null", path, nullptr, MS_BIND, nullptr) == 0) return 0;
  if (errno == ENOENT) return 0;
  if (errno != ENOTDIR) return -1;
  return mount("tmpfs", path, "tmpfs", MS_RDONLY, nullptr);
}

int do_readonly_path(const char *path) {
  if (mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) < 0) return errno == ENOENT ? 0 : -1;
  return remount(path, MS_RDONLY | MS_REC);
}

int do_write_file(const char *path, const char *content) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  // A kernel knob (sysctl, an AppArmor profile on exec) must be procfs's:
  // an image or a mount over /proc must not turn the write into a no-op on a
  // file of its own (CVE-2019-16884's shape).
  struct statfs sfs;
  if (strncmp(path, "/proc/", 6) == 0 && (fstatfs(fd, &sfs) < 0 || sfs.f_type != 0x9fa0 /* PROC_SUPER_MAGIC */)) {
    close(fd);
    errno = EXDEV;
    return -1;
  }
  size_t len = strlen(content);
  ssize_t w = write(fd, content, len);
  int e = errno;
  close(fd);
  if (w < 0) {
    errno = e;
    return -1;
  }
  if (static_cast<size_t>(w) != len) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int do_capset(uint64_t eff, uint64_t perm, uint64_t inh) {
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  data[0].effective = static_cast<uint32_t>(eff);
  data[1].effective = static_cast<uint32_t>(eff >> 32);
  data[0].permitted = static_cast<uint32_t>(perm);
  data[1].permitted = static_cast<uint32_t>(perm >> 32);
  data[0].inheritable = static_cast<uint32_t>(inh);
  data[1].inheritable = static_cast<uint32_t>(inh >> 32);
  return static_cast<int>(syscall(SYS_capset, &hdr, data));
}

bool executable_file(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) return false;
  if (!S_ISREG(st.st_mode)) {
    errno = EACCES;
    return false;
  }
  return faccessat(AT_FDCWD, path, X_OK, 0) == 0;
}

// Finds the command as execvp would, so a missing command fails before the
// container is reported ready, with the errno of the search.
int do_lookup_exec(const char *file, const char *path_env) {
  size_t flen = strlen(file);
  if (flen == 0) {
    errno = ENOENT;
    return -1;
  }
  if (strchr(file, '/')) {
    if (flen >= sizeof exec_path_) {
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(exec_path_, file, flen + 1);
    return executable_file(exec_path_) ? 0 : -1;
  }
  int saw_eacces = 0;
  const char *p = path_env;
  while (true) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? static_cast<size_t>(end - p) : strlen(p);
    if (dlen + 1 + flen + 1 <= sizeof exec_path_) {
      size_t off = 0;
      if (dlen == 0) {
        exec_path_[off++] = '.';
      } else {
        memcpy(exec_path_, p, dlen);
        off = dlen;
      }
      exec_path_[off++] = '/';
      memcpy(exec_path_ + off, file, flen + 1);
      if (executable_file(exec_path_)) return 0;
      if (errno == EACCES) saw_eacces = 1;
    }
    if (!end) break;
    p = end + 1;
  }
  exec_path_[0] = '\0';
  errno = saw_eacces ? EACCES : ENOENT;
  return -1;
}

int do_wait_start(int fd) {
  if (fd < 0) return wait_reply() == REPLY_START ? 0 : (errno = ECANCELED, -1);
  char c;
  ssize_t r;
  do {
    r = read(fd, &c, 1);
  } while (r < 0 && errno == EINTR);
  close(fd);
  if (r != 1) {
    if (r == 0) errno = ECANCELED;
    return -1;
  }
  return 0;
}

int do_seccomp(const Step &st);

// Decimal digits of n into buf (at least 12 bytes), without stdio.
char *fmt_int(char *buf, long n) {
  char digits[24];
  int k = 0;
  do {
    digits[k++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0);
  char *p = buf;
  while (k > 0) *p++ = digits[--k];
  *p = '\0';
  return buf;
}

int do_exec(const Step &st, int index) {
  // Node (libuv) may have made its stdio close-on-exec and non-blocking;
  // the container's command must inherit plain, blocking stdio.
  for (int fd = 0; fd < 3; fd++) {
    fcntl(fd, F_SETFD, 0);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  // No descriptor of the runtime may reach the container.
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  const char *path = exec_path_[0] ? exec_path_ : st.argv[0];
  int helper = plan_->exec_helper_fd;
  if (helper < 0 || !st.helper_argv) {
    if (st.n[1]) {
      errno = ENOEXEC;  // only tsrun-exec can fork the command into the PID namespace
      return -1;
    }
    if (st.nbytes > 0 && do_seccomp(st) < 0) return -1;
    execve(path, st.argv, st.envp);
    return -1;
  }
  // The final execve is tsrun-exec's, from its sealed memfd: at the
  // container's own execve /proc/self/exe is never the host's binary. It
  // keeps the sync socket (and makes it close-on-exec) to report a failure,
  // and loads the seccomp filter, if any, as the last thing before execve.
  static char fd_text[16], step_text[16], filter_text[40];
  st.helper_argv[1] = fmt_int(fd_text, sync_fd_);
  st.helper_argv[2] = fmt_int(step_text, index);
  st.helper_argv[3] = const_cast<char *>("-");
  st.helper_argv[4] = const_cast<char *>(st.n[1] ? "fork" : "run");
  st.helper_argv[5] = const_cast<char *>(path);
  if (st.nbytes > 0) {
    int mfd = static_cast<int>(syscall(SYS_memfd_create, "tsrun-seccomp", 0));
    if (mfd < 0) return -1;
    for (int32_t off = 0; off < st.nbytes;) {
      ssize_t w = write(mfd, st.bytes + off, static_cast<size_t>(st.nbytes - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return -1;
      off += static_cast<int32_t>(w);
    }
    if (lseek(mfd, 0, SEEK_SET) < 0) return -1;
    char *p = fmt_int(filter_text, mfd);
    p += strlen(p);
    *p++ = ',';
    fmt_int(p, static_cast<long>(st.n[0]));
    st.helper_argv[3] = filter_text;
  }
  if (fcntl(sync_fd_, F_SETFD, 0) < 0) return -1;
  // execve of /proc/self/fd/N, so a seccomp filter loaded already (without
  // no_new_privs) needs to allow only what runc needs, execve; execveat
  // where the container has no /proc.
  char fd_path[64];
  execve(fmt_fd_path(fd_path, helper), st.helper_argv, st.envp);
  if (errno == ENOENT) syscall(SYS_execveat, helper, "", st.helper_argv, st.envp, AT_EMPTY_PATH);
  int e = errno;
  fcntl(sync_fd_, F_SETFD, FD_CLOEXEC);
  errno = e;
  return -1;
}

// A session keyring of the container's own, named by its id, as runc makes:
// the runtime's (host root's) keys are not the container's to read or add to.
int do_join_keyring(const char *name) {
  long id = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
  if (id < 0) return errno == ENOSYS ? 0 : -1;  // a kernel without keys has nothing to share
  // "type;uid;gid;perm;description", perm in hex: add search for its owner.
  char desc[512];
  long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc - 1, 0);
  if (n < 0) return -1;
  desc[n < static_cast<long>(sizeof desc) ? n : static_cast<long>(sizeof desc) - 1] = '\0';
  const char *p = desc;
  for (int field = 0; field < 3 && p; field++) {
    p = strchr(p, ';');
    if (p) p++;
  }
  if (!p) {
    errno = EINVAL;
    return -1;
  }
  unsigned long perm = 0;
  for (; *p && *p != ';'; p++) {
    char c = *p;
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) {
      errno = EINVAL;
      return -1;
    }
    perm = perm * 16 + static_cast<unsigned long>(v);
  }
  perm |= 0x080000;  // KEY_USR_SEARCH
  return static_cast<int>(syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm, 0, 0));
}

// An idmapped bind of a layer directory (mount_setattr MOUNT_ATTR_IDMAP,
// Linux 5.12): its files, owned by host ids, appear owned by the ids that the
// user namespace maps them to. Made in the runtime's user namespace, where
// the capability for it is, before the container joins its own.
int do_idmap_mount(const Step &st) {
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, st.s[0], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) return -1;
  int userns = open(st.s[2], O_RDONLY | O_CLOEXEC);
  if (userns < 0) {
    int e = errno;
    close(tree);
    errno = e;
    return -1;
  }
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns);
  int r = static_cast<int>(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr));
  if (r == 0) r = static_cast<int>(syscall(SYS_move_mount, tree, "", AT_FDCWD, st.s[1], MOVE_MOUNT_F_EMPTY_PATH));
  int e = errno;
  close(userns);
  close(tree);
  errno = e;
  return r;
}

int do_seccomp(const Step &st) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(st.nbytes / static_cast<int32_t>(sizeof(struct sock_filter)));
  prog.filter = reinterpret_cast<struct sock_filter *>(const_cast<unsigned char *>(st.bytes));
  return static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, static_cast<unsigned long>(st.n[0]), &prog));
}

// A terminal as the container's stdio, made inside the container (its own
// devpts, as runc does) so that tty(1) names it; the master side goes to
// whoever holds the other end of the socket in n0 (SCM_RIGHTS).
int do_console(const Step &st) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return -1;
  int unlock = 0, slave = -1, e = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY)) < 0) {
    e = errno;
    close(master);
    errno = e;
    return -1;
  }
  if (st.n[1] > 0 && st.n[2] > 0) {
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_row = static_cast<unsigned short>(st.n[1]);
    ws.ws_col = static_cast<unsigned short>(st.n[2]);
    ioctl(slave, TIOCSWINSZ, &ws);
  }
  int sock = static_cast<int>(st.n[0]);
  ssize_t sent = send_fd(sock, master);
  e = errno;
  close(master);
  if (sock != sync_fd_) close(sock);
  if (sent < 0) {
    close(slave);
    errno = e;
    return -1;
  }
  // A session of its own with the terminal as its controlling tty: job
  // control and ^C work inside.
  if (syscall(SYS_setsid) < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) {
    e = errno;
    close(slave);
    errno = e;
    return -1;
  }
  for (int fd = 0; fd < 3; fd++)
    if (dup2(slave, fd) < 0) return -1;
  if (slave > 2) close(slave);
  return 0;
}

int run_step(int i) {
  const Step &st = plan_->steps[i];
  switch (st.op) {
    case OP_SETNS: {
      int fd = open(st.s[0], O_RDONLY | O_CLOEXEC);
      if (fd < 0) return -1;
      int r = static_cast<int>(syscall(SYS_setns, fd, static_cast<int>(st.n[0])));
      int e = errno;
      close(fd);
      errno = e;
      return r;
    }
    case OP_UNSHARE:
      return static_cast<int>(syscall(SYS_unshare, static_cast<unsigned long>(st.n[0])));
    case OP_SYNC_USERNS:
      send_msg(MSG_USERNS, i, 0, static_cast<int32_t>(syscall(SYS_getpid)));
      return wait_reply() == REPLY_GO ? 0 : (errno = ECANCELED, -1);
    case OP_FORK: {
      long pid = syscall(SYS_clone, static_cast<unsigned long>(st.n[0]) | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
      if (pid < 0) return -1;
      if (pid > 0) {
        // Stage 1 is done: the container process is a child of the runtime now.
        send_msg(MSG_PID, i, 0, static_cast<int32_t>(pid));
        exit_now(0);
      }
      return 0;
    }
    case OP_SYNC_WAIT:
      return wait_reply() == REPLY_GO ? 0 : (errno = ECANCELED, -1);
    case OP_MOUNT:
      return do_mount(st);
    case OP_MKDIR:
      return mkdirs_in_root(st.s[0], static_cast<mode_t>(st.n[0]));
    case OP_SYMLINK: {
      const char *base;
      int parent = open_parent_in_root(st.s[1], &base);
      if (parent < 0) return -1;
      int r = symlinkat(st.s[0], parent, base);
      int e = errno;
      close(parent);
      errno = e;
      return r < 0 && e != EEXIST ? -1 : 0;
    }
    case OP_MKNOD: {
      const char *base;
      int parent = open_parent_in_root(st.s[0], &base);
      if (parent < 0) return -1;
      mode_t mode = static_cast<mode_t>(st.n[0]);
      dev_t dev = static_cast<dev_t>(st.n[1]);
      int r = mknodat(parent, base, mode, dev);
      if (r < 0 && errno == EEXIST) {
        // Something of the image's is in the way. Unless it is this very node,
        // replace it: a symlink there must not lead the chown/chmod below to the host.
        struct stat cur;
        if (fstatat(parent, base, &cur, AT_SYMLINK_NOFOLLOW) == 0 && (cur.st_mode & S_IFMT) == (mode & S_IFMT) && cur.st_rdev == dev) {
          r = 0;
        } else if (unlinkat(parent, base, 0) == 0 || (errno == EISDIR && unlinkat(parent, base, AT_REMOVEDIR) == 0)) {
          r = mknodat(parent, base, mode, dev);
        }
      }
      if (r == 0) r = fchownat(parent, base, static_cast<uid_t>(st.n[2]), static_cast<gid_t>(st.n[3]), AT_SYMLINK_NOFOLLOW);
      // The mode exactly as configured (mknod applied the runtime's umask);
      // the node is ours now, not a symlink, so following is safe.
      if (r == 0) r = fchmodat(parent, base, mode & 07777, 0);
      int e = errno;
      close(parent);
      errno = e;
      return r;
    }
    case OP_PIVOT_ROOT:
      return do_pivot_root(st.s[0]);
    case OP_MASK_PATH:
      return do_mask_path(st.s[0]);
    case OP_READONLY_PATH:
      return do_readonly_path(st.s[0]);
    case OP_WRITE_FILE:
      return do_write_file(st.s[0], st.s[1]);
    case OP_SETHOSTNAME:
      return static_cast<int>(syscall(SYS_sethostname, st.s[0], strlen(st.s[0])));
    case OP_SETDOMAINNAME:
      return static_cast<int>(syscall(SYS_setdomainname, st.s[0], strlen(st.s[0])));
    case OP_RLIMIT: {
      struct rlimit64 rl;
      rl.rlim_cur = static_cast<rlim64_t>(st.n[1]);
      rl.rlim_max = static_cast<rlim64_t>(st.n[2]);
      return static_cast<int>(syscall(SYS_prlimit64, 0, static_cast<int>(st.n[0]), &rl, nullptr));
    }
    case OP_CAPBSET: {
      uint64_t keep = static_cast<uint64_t>(st.n[0]);
      for (int cap = 0; cap <= static_cast<int>(st.n[1]); cap++) {
        if (keep & (1ULL << cap)) continue;
        if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
      }
      return 0;
    }
    case OP_KEEPCAPS:
      return static_cast<int>(syscall(SYS_prctl, PR_SET_KEEPCAPS, st.n[0], 0, 0, 0));
    case OP_SETGROUPS:
      return static_cast<int>(syscall(SYS_setgroups, st.nints, st.ints));
    case OP_SETRESGID:
      return static_cast<int>(syscall(SYS_setresgid, st.n[0], st.n[0], st.n[0]));
    case OP_SETRESUID:
      return static_cast<int>(syscall(SYS_setresuid, st.n[0], st.n[0], st.n[0]));
    case OP_CHDIR:
      return chdir(st.s[0]);
    case OP_CAPSET:
      return do_capset(static_cast<uint64_t>(st.n[0]), static_cast<uint64_t>(st.n[1]), static_cast<uint64_t>(st.n[2]));
    case OP_AMBIENT: {
      uint64_t raise = static_cast<uint64_t>(st.n[0]);
      for (int cap = 0; cap < 64; cap++) {
        if (!(raise & (1ULL << cap))) continue;
        if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
      }
      return 0;
    }
    case OP_UMASK:
      syscall(SYS_umask, static_cast<mode_t>(st.n[0]));
      return 0;
    case OP_NO_NEW_PRIVS:
      return static_cast<int>(syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    case OP_LOOKUP_EXEC:
      return do_lookup_exec(st.s[0], st.s[1]);
    case OP_READY:
      send_msg(MSG_READY, i, 0, 0);
      return 0;
    case OP_WAIT_START:
      return do_wait_start(static_cast<int>(st.n[0]));
    case OP_EXEC:
      return do_exec(st, i);
    case OP_JOIN_KEYRING:
      return do_join_keyring(st.s[0]);
    case OP_SECCOMP:
      return do_seccomp(st);
    case OP_IDMAP_MOUNT:
      return do_idmap_mount(st);
    case OP_PDEATHSIG:
      return static_cast<int>(syscall(SYS_prctl, PR_SET_PDEATHSIG, st.n[0], 0, 0, 0));
    case OP_PROPAGATION:
      return mount(nullptr, st.s[0], nullptr, static_cast<unsigned long>(st.n[0]), nullptr);
    case OP_REMOUNT_RO: {
      // Read-only on top of what the mount has: a remount that named only MS_RDONLY would drop its nosuid, nodev and noexec.
      long locked = locked_flags(st.s[0]);
      if (locked < 0) return -1;
      return remount(st.s[0], MS_RDONLY | static_cast<unsigned long>(locked));
    }
    case OP_SET_ROOT: {
      int fd = open(st.s[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return -1;
      if (root_fd_ != AT_FDCWD) close(root_fd_);
      root_fd_ = fd;
      return 0;
    }
    case OP_OPEN_FD: {
      int fd = open(st.s[0], static_cast<int>(st.n[1]) | O_CLOEXEC);
      if (fd < 0) return -1;
      int target = static_cast<int>(st.n[0]);
      if (fd == target) return fcntl(fd, F_SETFD, 0);
      int r = dup2(fd, target);
      int e = errno;
      close(fd);
      errno = e;
      return r < 0 ? -1 : 0;
    }
    case OP_DUP2: {
      int from = static_cast<int>(st.n[0]), to = static_cast<int>(st.n[1]);
      if (from == to) return fcntl(from, F_SETFD, 0);
      return dup2(from, to) < 0 ? -1 : 0;
    }
    case OP_CONSOLE:
      return do_console(st);
    case OP_LOOPBACK_UP: {
      int sock = static_cast<int>(syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (sock < 0) return -1;
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, "lo", 3);
      int r = ioctl(sock, SIOCGIFFLAGS, &ifr);
      if (r == 0) {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        r = ioctl(sock, SIOCSIFFLAGS, &ifr);
      }
      int e = errno;
      close(sock);
      errno = e;
      return r;
    }
    default:
      errno = EINVAL;
      return -1;
  }
}

// Every descriptor of Node's (other containers' sync sockets among them) is
// closed at once, keeping stdio, the sync socket and the exec fifo.
void close_inherited_fds(const Plan *plan, int sync_fd) {
  int keep[16];
  int n = 0;
  keep[n++] = sync_fd;
  if (plan->exec_helper_fd >= 0) keep[n++] = plan->exec_helper_fd;
  for (int i = 0; i < plan->nsteps && n < 16; i++) {
    const Step &st = plan->steps[i];
    if ((st.op == OP_WAIT_START || st.op == OP_DUP2 || st.op == OP_CONSOLE) && st.n[0] >= 0) keep[n++] = static_cast<int>(st.n[0]);
  }
  // Sort the few kept fds, then close the gaps between them.
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  unsigned int from = 3;
  for (int i = 0; i < n; i++) {
    if (keep[i] < 3) continue;
    if (static_cast<unsigned int>(keep[i]) > from) syscall(SYS_close_range, from, static_cast<unsigned int>(keep[i]) - 1, 0U);
    from = static_cast<unsigned int>(keep[i]) + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0U);
}

// Default every handler so no Node handler can run here, and so signals
// Node ignores (SIGPIPE) are not ignored in the container.
void reset_signals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < _NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void child_main(const Plan *plan, int fd) {
  plan_ = plan;
  sync_fd_ = fd;
  reset_signals();
  // Not dumpable while it holds the runtime's memory and descriptors: no
  // ptrace or /proc/PID/fd from the container's side until exec resets it.
  syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  close_inherited_fds(plan, fd);

  for (int i = 0; i < plan->nsteps; i++) {
    if (plan->trace) send_msg(MSG_STEP, i, 0, 0);
    if (run_step(i) < 0) die(i, errno);
  }
  exit_now(0);
}

bool stage1_reports_pid(const Plan *plan) {
  for (int i = 0; i < plan->nsteps; i++)
    if (plan->steps[i].op == OP_FORK) return true;
  return false;
}

// The monitor's side of spawn: a first process that only forks again and
// exits (so the monitor is not the runtime's child and outlives it without
// becoming a zombie of a long-lived library caller), then the monitor,
// which clones the container (so it is the container's parent and can
// reap it) and execs the monitor program.
[[noreturn]] void monitor_main(const Plan *plan, int fd) {
  plan_ = plan;
  sync_fd_ = fd;
  reset_signals();
  // Its own session: no terminal's ^C or hangup reaches it.
  syscall(SYS_setsid);
  long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid != 0) {
    if (pid < 0) send_msg(MSG_ERROR, STEP_MONITOR, errno, 0);
    exit_now(pid < 0 ? 1 : 0);
  }
  send_msg(MSG_MONITOR, STEP_MONITOR, 0, static_cast<int32_t>(syscall(SYS_getpid)));
  // SIGCHLD stays blocked (and so pending) across the exec of the monitor:
  // a container that exits at once is not missed. The container unblocks
  // every signal in child_main.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  long cpid = syscall(SYS_clone, plan->clone_flags | SIGCHLD, 0, 0, 0, 0);
  if (cpid == 0) child_main(plan, fd);
  if (cpid < 0) {
    send_msg(MSG_ERROR, STEP_CLONE, errno, 0);
    exit_now(1);
  }
  // With namespaces joined by path, stage 1 reports the container's pid.
  if (!stage1_reports_pid(plan)) send_msg(MSG_PID, STEP_MONITOR, 0, static_cast<int32_t>(cpid));

  // The monitor's descriptors: 0-2 /dev/null (never the runtime's terminal
  // or pipes: `id=$(tsrun run -d ...)` must not wait for it), then the
  // runtime's fds as 3, 4, ... Everything else closes at exec.
  const Monitor &m = plan->monitor;
  int high[8];
  int n = m.nfds < 8 ? m.nfds : 8;
  sync_fd_ = static_cast<int>(syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 64));
  for (int i = 0; i < n; i++) high[i] = static_cast<int>(syscall(SYS_fcntl, m.fds[i], F_DUPFD_CLOEXEC, 64));
  int err = 0;
  for (int i = 0; i < n && !err; i++)
    if (high[i] < 0 || dup2(high[i], 3 + i) < 0) err = errno ? errno : EBADF;
  int null_fd = open("/dev/null", O_RDWR);
  if (null_fd < 0 && !err) err = errno;
  for (int i = 0; i < 3 && !err; i++)
    if (dup2(null_fd, i) < 0) err = errno;
  if (!err) {
    syscall(SYS_close_range, 3U + static_cast<unsigned int>(n), ~0U, CLOSE_RANGE_CLOEXEC);
    execve(m.path, m.argv, m.envp);
    err = errno;
  }
  send_msg(MSG_ERROR, STEP_MONITOR, err, 0);
  syscall(SYS_kill, cpid, SIGKILL);
  exit_now(127);
}

}  // namespace

int spawn_plan(const Plan *plan, int *sock) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  // Block every signal on this thread across clone, so nothing of Node's
  // runs in the child before it has reset its handlers.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  bool monitor = plan->monitor.path != nullptr;
  long pid = syscall(SYS_clone, (monitor ? 0 : plan->clone_flags) | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    close(sv[0]);
    if (monitor) monitor_main(plan, sv[1]);
    child_main(plan, sv[1]);
  }
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return -e;
  }
  *sock = sv[0];
  return static_cast<int>(pid);
}

}  // namespace tsrun
