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
//   argv: tsrun-exec SYNC_FD STEP SECCOMP MODE PATH ARGV0 [ARGS...]
//
// MODE "run" execs in place. MODE "fork" is exec's: the process was set to
// have its children in the container's PID namespace (setns) but is not in
// it itself, so no clone of the host's node ever appears there. tsrun-exec
// forks the command into it and stays outside as its relay: it passes
// signals on, and exits with the command's status (128+N for a signal).
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
#include <linux/signalfd.h>
#include <linux/wait.h>
#include <asm/ioctls.h>
#include <asm/signal.h>
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


// The kernel's sigset is 64 bits here (rt_sigprocmask's size argument).
constexpr long SIGSET_SIZE = 8;

[[noreturn]] void exec_command(long fd, int step, const char *seccomp, char **argv, char **envp) {
  if (!same(seccomp, "-")) {
    long r = load_filter(seccomp);
    if (r < 0) {
      report(fd, STEP_SECCOMP, static_cast<int>(-r));
      exit_now(125);
    }
  }
  long r = sys(__NR_execve, reinterpret_cast<long>(argv[0]), reinterpret_cast<long>(argv + 1), reinterpret_cast<long>(envp));
  int err = static_cast<int>(-r);
  report(fd, step, err);
  exit_now(err == 2 ? 127 : 126);
}

// exec's relay: fork the command into the PID namespace, then wait for it.
[[noreturn]] void fork_and_relay(long fd, int step, const char *seccomp, char **argv, char **envp) {
  unsigned long all = ~0UL, none = 0;
  sys(__NR_rt_sigprocmask, SIG_BLOCK, reinterpret_cast<long>(&all), 0, SIGSET_SIZE);
  int ready[2];
  if (sys(__NR_pipe2, reinterpret_cast<long>(ready), O_CLOEXEC) < 0) {
    report(fd, step, 24);
    exit_now(125);
  }
  long child = sys(__NR_clone, SIGCHLD, 0, 0, 0, 0);
  if (child < 0) {
    report(fd, step, static_cast<int>(-child));
    exit_now(125);
  }
  if (child == 0) {
    sys(__NR_close, ready[0]);
    // The relay is all that holds it: if the relay is killed, so is it.
    sys(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
    // On a terminal, the command's own process group in the foreground: ^C is its alone.
    long pgrp;
    if (sys(__NR_ioctl, 0, TIOCGPGRP, reinterpret_cast<long>(&pgrp)) == 0) {
      sys(__NR_setpgid, 0, 0);
      long me = sys(__NR_getpid);
      sys(__NR_ioctl, 0, TIOCSPGRP, reinterpret_cast<long>(&me));
    }
    sys(__NR_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&none), 0, SIGSET_SIZE);
    exec_command(fd, step, seccomp, argv, envp);
  }
  // Its end of the pipe closes at its execve (or its exit): then the runtime may see EOF.
  sys(__NR_close, ready[1]);
  char c;
  while (sys(__NR_read, ready[0], reinterpret_cast<long>(&c), 1) == -4) {
  }
  sys(__NR_close, ready[0]);
  sys(__NR_close, fd);
  unsigned long relayed = ~((1UL << (SIGKILL - 1)) | (1UL << (SIGSTOP - 1)));
  long sfd = sys(__NR_signalfd4, -1, reinterpret_cast<long>(&relayed), SIGSET_SIZE, O_CLOEXEC);
  for (;;) {
    struct signalfd_siginfo si;
    if (sfd < 0 || sys(__NR_read, sfd, reinterpret_cast<long>(&si), sizeof si) != sizeof si) {
      // No signalfd: at least wait for the command.
      int status = 0;
      if (sys(__NR_wait4, child, reinterpret_cast<long>(&status), 0, 0) == child) break;
      continue;
    }
    if (si.ssi_signo != SIGCHLD) {
      sys(__NR_kill, child, si.ssi_signo);
      continue;
    }
    int status = 0;
    long r = sys(__NR_wait4, child, reinterpret_cast<long>(&status), WNOHANG, 0);
    if (r != child) continue;
    // Exited: its code; killed by signal N: 128+N, as a shell reports it.
    exit_now((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f));
  }
  exit_now(125);
}

}  // namespace

extern "C" [[noreturn]] __attribute__((used)) void tsrun_exec_main(long *sp) {
  long argc = sp[0];
  char **argv = reinterpret_cast<char **>(sp + 1);
  char **envp = argv + argc + 1;
  // Until the execve below, nothing in the container may ptrace this process.
  sys(__NR_prctl, PR_SET_DUMPABLE, 0);
  long fd = argc >= 7 && same(argv[0], "tsrun-exec") ? number(argv[1]) : -1;
  long step = argc >= 7 ? number(argv[2]) : -1;
  bool fork_first = argc >= 7 && same(argv[4], "fork");
  if (fd < 3 || step < 0 || (!fork_first && !same(argv[4], "run"))) {
    say("tsrun-exec: this program only starts a container's command; it was run as \"");
    say(argc > 0 ? argv[0] : "");
    say("\"\n");
    exit_now(126);
  }
  sys(__NR_fcntl, fd, F_SETFD, FD_CLOEXEC);
  if (fork_first) fork_and_relay(fd, static_cast<int>(step), argv[3], argv + 5, envp);
  exec_command(fd, static_cast<int>(step), argv[3], argv + 5, envp);
}

#if defined(__x86_64__)
asm(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call tsrun_exec_main\n  hlt\n");
#elif defined(__aarch64__)
asm(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x0, sp\n  and sp, x0, #-16\n  bl tsrun_exec_main\n");
#endif
