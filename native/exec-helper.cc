// tsrun-exec: the program that makes a container's final execve.
//
// The process that builds a container is a clone of the host's node binary,
// so until its last execve /proc/self/exe is that host file. An image whose
// command is a script starting "#!/proc/self/exe" would have the kernel run
// the host's node inside the container, with its binary reachable for
// writing (CVE-2019-5736's shape). So the plan's last step execs this
// program instead, from a sealed memfd that the runtime filled before clone:
// at the container's own execve, /proc/self/exe is this small read-only
// copy, never a host file.
//
//   argv: tsrun-exec SYNC_FD STEP SECCOMP PATH ARGV0 [ARGS...]
//
// SECCOMP is "-" or "FD,FLAGS": a seccomp filter program to load just
// before the execve (no_new_privs is set, so no privilege is needed): the
// container's command is the first thing the filter confines, and the only
// call it must allow of tsrun's is execve itself.
//
// It execs PATH with ARGV0 ARGS and the environment it was given. If that
// fails it reports (STEP, errno) on the runtime's sync socket, as the plan's
// own steps do; the socket is close-on-exec, so EOF still means success.
// Run any other way (as a script's interpreter, say) it refuses and exits.
//
// No libc: it is copied into a memfd for every container, so it stays a few
// kilobytes, and it must not run anything between its start and the execve.
#include <linux/fcntl.h>
#include <linux/filter.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <asm/unistd.h>

namespace {

#if defined(__x86_64__)
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  register long x5 asm("x5") = f;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
#error "tsrun-exec: add this architecture's syscall convention"
#endif

[[noreturn]] void exit_now(int code) {
  for (;;) sys(__NR_exit_group, code);
}

unsigned long length(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

bool same(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

// A non-negative decimal, or -1.
long number(const char *s) {
  if (!*s) return -1;
  long n = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || n > 100000000) return -1;
    n = n * 10 + (*s - '0');
  }
  return n;
}

void say(const char *s) { sys(__NR_write, 2, reinterpret_cast<long>(s), static_cast<long>(length(s))); }

// Message layout of native/plan.h: kind, step, err, value (int32 each).
constexpr int MSG_ERROR = 1;
constexpr int STEP_SECCOMP = -4;  // native/plan.h: loading the filter failed

// A filter is at most BPF_MAXINSNS (4096) instructions of 8 bytes.
alignas(8) unsigned char filter[4096 * sizeof(struct sock_filter) + 1];

void report(long fd, int step, int err) {
  int msg[4] = {MSG_ERROR, step, err, 0};
  // MSG_NOSIGNAL: the runtime may be gone.
  sys(__NR_sendto, fd, reinterpret_cast<long>(msg), sizeof msg, 0x4000, 0, 0);
}

// "FD,FLAGS" -> the filter loaded, 0; -errno on failure.
long load_filter(const char *spec) {
  long fd = 0, flags = 0;
  const char *p = spec;
  for (; *p >= '0' && *p <= '9'; p++) fd = fd * 10 + (*p - '0');
  if (*p++ != ',') return -22;
  for (; *p >= '0' && *p <= '9'; p++) flags = flags * 10 + (*p - '0');
  unsigned long size = 0;
  for (;;) {
    long n = sys(__NR_read, fd, reinterpret_cast<long>(filter + size), static_cast<long>(sizeof filter - size));
    if (n == -4) continue;  // EINTR
    if (n < 0) return n;
    if (n == 0) break;
    size += static_cast<unsigned long>(n);
    if (size >= sizeof filter) return -7;  // E2BIG
  }
  sys(__NR_close, fd);
  if (size == 0 || size % sizeof(struct sock_filter)) return -22;
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(size / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter *>(filter);
  return sys(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, reinterpret_cast<long>(&prog));
}

}  // namespace

extern "C" [[noreturn]] __attribute__((used)) void tsrun_exec_main(long *sp) {
  long argc = sp[0];
  char **argv = reinterpret_cast<char **>(sp + 1);
  char **envp = argv + argc + 1;
  // Until the execve below, nothing in the container may ptrace this process.
  sys(__NR_prctl, PR_SET_DUMPABLE, 0);
  long fd = argc >= 6 && same(argv[0], "tsrun-exec") ? number(argv[1]) : -1;
  long step = argc >= 6 ? number(argv[2]) : -1;
  if (fd < 3 || step < 0) {
    say("tsrun-exec: this program only starts a container's command; it was run as \"");
    say(argc > 0 ? argv[0] : "");
    say("\"\n");
    exit_now(126);
  }
  sys(__NR_fcntl, fd, F_SETFD, FD_CLOEXEC);
  if (!same(argv[3], "-")) {
    long r = load_filter(argv[3]);
    if (r < 0) {
      report(fd, STEP_SECCOMP, static_cast<int>(-r));
      exit_now(125);
    }
  }
  long r = sys(__NR_execve, reinterpret_cast<long>(argv[4]), reinterpret_cast<long>(argv + 5), reinterpret_cast<long>(envp));
  int err = static_cast<int>(-r);
  report(fd, static_cast<int>(step), err);
  exit_now(err == 2 ? 127 : 126);
}

#if defined(__x86_64__)
asm(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call tsrun_exec_main\n  hlt\n");
#elif defined(__aarch64__)
asm(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x0, sp\n  and sp, x0, #-16\n  bl tsrun_exec_main\n");
#endif
