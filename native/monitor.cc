// tsrun-monitor: holds one container that outlives the tsrun command
// (DESIGN section 3), as conmon does for podman. spawn() clones the
// container from this process and then execs this program, so the
// container is our child: we reap it, record its exit status and end time,
// write its output to a log, and hold the master side of its terminal.
// Then we exec the exit command (tsrun's clean-up, restart policy, --rm),
// unless the claim file names a live tsrun process that stops the
// container and cleans up after it itself (stop, rm -f, compose down).
// With --health, we also start one health probe (`tsrun healthcheck run
// ID`) after each interval while the container runs, never two at once:
// no daemon is needed to keep the schedule.
//
// Small on purpose (target: at most 2 MiB resident): linked statically,
// no allocation after start, one poll loop.
//
//   tsrun-monitor --exit FILE [--log FILE --log-max BYTES]
//                 [--stdout FD] [--stderr FD] [--console FD] [--hold FD]
//                 [--health-interval MS --health-timeout MS --health-start-period MS
//                  --health-start-interval MS --health N PROBE-COMMAND(N words)]
//                 [--claim FILE] [-- EXIT-COMMAND...]
//
// fd 3 is the control pipe: the runtime writes the container's pid there
// once the container is created. EOF without a pid means the create failed
// or the runtime died: the children are killed and nothing is recorded.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"

namespace {

constexpr int CONTROL_FD = 3;
constexpr size_t LINE_MAX_BYTES = 16 * 1024;  // longer lines are split and marked partial (P)

struct Stream {
  const char *name;  // "stdout" / "stderr" (CRI log format)
  int fd;
  size_t len;
  char partial[LINE_MAX_BYTES];
};

const char *exit_file = nullptr;
const char *claim_file = nullptr;
const char *log_file = nullptr;
long long log_max = 0;
int log_fd = -1;
long long log_size = 0;
Stream out{"stdout", -1, 0, {}}, err{"stderr", -1, 0, {}};
int console_sock = -1;
char *const *exit_command = nullptr;

// Health probes: started after each interval; the start interval applies
// in the start period until a probe has passed (Docker's schedule).
char **health_argv = nullptr;
long long health_interval = 0, health_timeout = 0, health_start_period = 0, health_start_interval = 0;
pid_t health_pid = 0;
// The probe ends itself at its timeout; one that hangs past it and this grace is killed,
// so a stuck probe never stops the schedule.
constexpr long long PROBE_GRACE_MS = 10000;
long long probe_deadline = -1;
bool health_passed = false;
long long started_at = 0, next_probe = -1;

long long now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

long long probe_started = -1;

// The next probe after the interval, and never sooner than the last one
// took: however short an image sets the interval, probes (a tsrun process
// on the host each) keep at most half of one CPU busy.
void schedule_probe() {
  long long now = now_ms();
  bool early = !health_passed && now - started_at < health_start_period;
  long long gap = early ? health_start_interval : health_interval;
  if (probe_started >= 0 && now - probe_started > gap) gap = now - probe_started;
  next_probe = now + gap;
}

void start_probe() {
  next_probe = -1;
  pid_t pid = fork();
  if (pid == 0) {
    // A plain process in a group of its own (killed as one when the container ends).
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
      for (int fd = 3; fd < 1024; fd++) close(fd);
    execv(health_argv[0], health_argv);
    _exit(127);
  }
  if (pid > 0) {
    health_pid = pid;
    probe_started = now_ms();
    probe_deadline = now_ms() + health_timeout + PROBE_GRACE_MS;
  } else schedule_probe();  // fork failed: try again next time
}

pid_t container = 0;
bool exited = false;
int status = 0;
// Children reaped before the runtime told us which one is the container.
struct Reaped {
  pid_t pid;
  int status;
} early[32];
int nearly = 0;

void timestamp(char *buf, size_t size) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec);
}

void open_log() {
  log_fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  struct stat st;
  log_size = log_fd >= 0 && fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

// One CRI log record: "<RFC 3339 time> <stream> <F|P> <text>\n". P: the
// text goes on without a newline (a long line, or the end of the output).
void log_record(const Stream &s, const char *text, size_t len, bool full) {
  if (log_fd < 0) return;
  char head[64];
  timestamp(head, sizeof head);
  size_t hl = strlen(head);
  hl += snprintf(head + hl, sizeof head - hl, " %s %c ", s.name, full ? 'F' : 'P');
  if (log_max > 0 && log_size > 0 && log_size + static_cast<long long>(hl + len + 1) > log_max) {
    // Rotate: the current file becomes FILE.1 (one generation kept).
    char old[4096];
    snprintf(old, sizeof old, "%s.1", log_file);
    close(log_fd);
    rename(log_file, old);
    open_log();
    if (log_fd < 0) return;
  }
  struct iovec iov[3] = {{head, hl}, {const_cast<char *>(text), len}, {const_cast<char *>("\n"), 1}};
  ssize_t w = writev(log_fd, iov, 3);
  if (w > 0) log_size += w;
}

void consume(Stream &s, const char *data, size_t n) {
  while (n > 0) {
    const char *nl = static_cast<const char *>(memchr(data, '\n', n));
    size_t take = nl ? static_cast<size_t>(nl - data) : n;
    if (s.len + take >= LINE_MAX_BYTES) {
      size_t room = LINE_MAX_BYTES - s.len;
      memcpy(s.partial + s.len, data, room);
      log_record(s, s.partial, LINE_MAX_BYTES, false);
      s.len = 0;
      data += room;
      n -= room;
      continue;
    }
    memcpy(s.partial + s.len, data, take);
    s.len += take;
    data += take;
    n -= take;
    if (nl) {
      log_record(s, s.partial, s.len, true);
      s.len = 0;
      data++;
      n--;
    }
  }
}

// Reads what is there; false at EOF (or EIO: a pty whose other side is gone).
bool pump(Stream &s) {
  static char buf[65536];
  for (;;) {
    ssize_t r = read(s.fd, buf, sizeof buf);
    if (r > 0) {
      consume(s, buf, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return true;
    if (s.len) log_record(s, s.partial, s.len, false);
    s.len = 0;
    close(s.fd);
    s.fd = -1;
    return false;
  }
}

void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void receive_console() {
  int fd = tsrun::recv_fd(console_sock, 0);
  if (fd >= 0) {
    out.fd = fd;
    set_nonblock(out.fd);
  }
  close(console_sock);
  console_sock = -1;
}

void note_exit(pid_t pid, int st) {
  if (health_pid && pid == health_pid) {
    // The probe command exits 0 when the container is healthy.
    health_pid = 0;
    health_passed = health_passed || (WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!exited) schedule_probe();
  } else if (container && pid == container) {
    exited = true;
    status = st;
  } else if (!container && nearly < 32) {
    early[nearly++] = {pid, st};
  }
}

void reap() {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    note_exit(pid, st);
  }
}

// The runtime is gone before the container was made: take every child with us.
[[noreturn]] void abandon() {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (n > 0) {
    buf[n] = 0;
    for (char *p = buf; *p;) {
      long pid = strtol(p, &p, 10);
      if (pid > 0) kill(static_cast<pid_t>(pid), SIGKILL);
      while (*p == ' ') p++;
      if (pid <= 0) break;
    }
  }
  while (waitpid(-1, nullptr, 0) > 0) {
  }
  _exit(1);
}

void read_control() {
  static char buf[32];
  static size_t len = 0;
  ssize_t r = read(CONTROL_FD, buf + len, sizeof buf - 1 - len);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r > 0) {
    len += static_cast<size_t>(r);
    buf[len] = 0;
    if (!strchr(buf, '\n') && len < sizeof buf - 1) return;
    container = static_cast<pid_t>(atol(buf));
  }
  close(CONTROL_FD);
  if (container <= 0) abandon();
  for (int i = 0; i < nearly; i++)
    if (early[i].pid == container) note_exit(container, early[i].status);
  if (health_argv && !exited) {
    started_at = now_ms();
    schedule_probe();
  }
}

void write_exit_file() {
  char when[64], text[256], tmp[4096];
  timestamp(when, sizeof when);
  char code[16] = "null", sig[16] = "null";
  if (WIFEXITED(status)) snprintf(code, sizeof code, "%d", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) snprintf(sig, sizeof sig, "%d", WTERMSIG(status));
  int n = snprintf(text, sizeof text, "{\"pid\":%d,\"exitCode\":%s,\"signal\":%s,\"finishedAt\":\"%s\"}\n", container, code, sig, when);
  snprintf(tmp, sizeof tmp, "%s.tmp", exit_file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  ssize_t w = write(fd, text, static_cast<size_t>(n));
  fsync(fd);
  close(fd);
  if (w == n) rename(tmp, exit_file);
}

// Whether the claim file holds "PID STARTTIME" of a process that still
// runs (the start time, field 22 of /proc/PID/stat, tells a reused pid).
bool claimed() {
  if (!claim_file) return false;
  char text[64] = {}, path[64], stat[1024] = {};
  int fd = open(claim_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  int pid = 0;
  unsigned long long start = 0;
  if (n <= 0 || sscanf(text, "%d %llu", &pid, &start) != 2 || pid <= 0) return false;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return false;
  const char *p = strrchr(stat, ')');
  if (!p) return false;
  // After ") " come field 3 (the state) and on; the start time is field 22.
  p += 2;
  if (*p == 'Z' || *p == 'X') return false;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  return p && strtoull(p, nullptr, 10) == start;
}

int usage() {
  static const char msg[] =
      "usage: tsrun-monitor --exit FILE [--log FILE --log-max BYTES] [--stdout FD] [--stderr FD] [--console FD] [--hold FD]\n"
      "                     [--health-interval MS --health-timeout MS --health-start-period MS --health-start-interval MS --health N COMMAND...]\n"
      "                     [--claim FILE] [-- COMMAND...]\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      if (i + 1 < argc) exit_command = argv + i + 1;
      break;
    }
    if (i + 1 >= argc) return usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--exit")) exit_file = v;
    else if (!strcmp(a, "--claim")) claim_file = v;
    else if (!strcmp(a, "--log")) log_file = v;
    else if (!strcmp(a, "--log-max")) log_max = atoll(v);
    else if (!strcmp(a, "--stdout")) out.fd = atoi(v);
    else if (!strcmp(a, "--stderr")) err.fd = atoi(v);
    else if (!strcmp(a, "--console")) console_sock = atoi(v);
    else if (!strcmp(a, "--hold")) (void)v;  // kept open, never used: a -d -i container's stdin
    else if (!strcmp(a, "--health-interval")) health_interval = atoll(v);
    else if (!strcmp(a, "--health-timeout")) health_timeout = atoll(v);
    else if (!strcmp(a, "--health-start-period")) health_start_period = atoll(v);
    else if (!strcmp(a, "--health-start-interval")) health_start_interval = atoll(v);
    else if (!strcmp(a, "--health")) {
      // N words of command; execv needs them NULL-terminated, so they are copied.
      int n = atoi(v);
      if (n <= 0 || i + n >= argc) return usage();
      static char *words[64];
      if (n >= 64) return usage();
      for (int k = 0; k < n; k++) words[k] = argv[i + 1 + k];
      words[n] = nullptr;
      health_argv = words;
      i += n;
    } else return usage();
  }
  if (!exit_file || (health_argv && health_interval <= 0)) return usage();

  // Orphans of a container without a PID namespace come to us, not init.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  // spawn blocked SIGCHLD before cloning the container, so an exit before
  // this point is still pending; reap once anyway, in case it was not.
  reap();
  if (log_file) open_log();
  if (out.fd >= 0) set_nonblock(out.fd);
  if (err.fd >= 0) set_nonblock(err.fd);
  bool control_open = true;

  // Until the container has exited and its output has ended. Output from
  // processes the container left behind (without a PID namespace) is read
  // until the container itself exits, not longer.
  while (!exited) {
    struct pollfd p[5];
    int n = 0;
    int ic = -1, is = -1, io = -1, ie = -1, ik = -1;
    if (control_open) p[ic = n++] = {CONTROL_FD, POLLIN, 0};
    p[is = n++] = {sfd, POLLIN, 0};
    if (out.fd >= 0) p[io = n++] = {out.fd, POLLIN, 0};
    if (err.fd >= 0) p[ie = n++] = {err.fd, POLLIN, 0};
    if (console_sock >= 0) p[ik = n++] = {console_sock, POLLIN, 0};
    int wait_ms = -1;
    long long due = health_pid ? probe_deadline : next_probe;
    if (due >= 0) {
      long long left = due - now_ms();
      wait_ms = left < 0 ? 0 : static_cast<int>(left > 86400000 ? 86400000 : left);
    }
    int ready = poll(p, static_cast<nfds_t>(n), wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (next_probe >= 0 && now_ms() >= next_probe && !health_pid) start_probe();
    if (health_pid && probe_deadline >= 0 && now_ms() >= probe_deadline) {
      kill(-health_pid, SIGKILL);  // reaped as any probe; the next one is scheduled then
      probe_deadline = -1;
    }
    if (ic >= 0 && p[ic].revents) {
      read_control();
      control_open = false;
    }
    if (p[is].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      reap();
    }
    if (io >= 0 && p[io].revents) pump(out);
    if (ie >= 0 && p[ie].revents) pump(err);
    if (ik >= 0 && p[ik].revents) receive_console();
  }
  // A probe still running has nothing left to probe.
  if (health_pid) {
    kill(-health_pid, SIGKILL);
    kill(health_pid, SIGKILL);
    while (waitpid(health_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    health_pid = 0;
  }
  // What is still in the pipes belongs to the container's output.
  if (out.fd >= 0) pump(out);
  if (err.fd >= 0) pump(err);
  if (out.len) log_record(out, out.partial, out.len, false);
  if (err.len) log_record(err, err.partial, err.len, false);
  if (log_fd >= 0) fsync(log_fd);
  write_exit_file();
  if (exit_command && !claimed()) {
    // The clean-up starts as a plain process: default signals, not a subreaper.
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &chld, nullptr);
    execv(exit_command[0], exit_command);
  }
  return 0;
}
