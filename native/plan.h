// The plan that the child walks between clone and execve.
//
// TypeScript compiles and validates the plan (src/plan/); addon.cc decodes it
// into the fixed structures below *before* clone, so the child touches only
// memory that already exists and calls only raw syscalls. The numbers here are
// mirrored by src/plan/ops.ts; keep the two in step.
#pragma once

#include <stdint.h>

namespace tsrun {

enum Op : int32_t {
  OP_SETNS = 1,          // s0 path, n0 nstype: join an existing namespace
  OP_UNSHARE = 2,        // n0 flags: new namespaces for this process (stage 1)
  OP_SYNC_USERNS = 3,    // ask the parent to write uid/gid maps, wait for it
  OP_FORK = 4,           // n0 flags: clone(CLONE_PARENT) the container process; stage 1 reports it and exits
  OP_SYNC_WAIT = 5,      // wait until the parent has placed us (maps, cgroups)
  OP_MOUNT = 6,          // s0 source, s1 target, s2 fstype, s3 data, n0 flags, n1 in_root, n2 create, n3 remount flags, n4 propagation
  OP_MKDIR = 7,          // s0 path (in root), n0 mode
  OP_SYMLINK = 8,        // s0 link target, s1 path (in root)
  OP_MKNOD = 9,          // s0 path (in root), n0 mode, n1 dev, n2 uid, n3 gid
  OP_PIVOT_ROOT = 10,    // s0 new root
  OP_MASK_PATH = 11,     // s0 path: hide it (tmpfs for directories, /dev/null for files)
  OP_READONLY_PATH = 12, // s0 path: bind it onto itself read-only
  OP_WRITE_FILE = 13,    // s0 path, s1 content (sysctl, oom_score_adj)
  OP_SETHOSTNAME = 14,   // s0
  OP_SETDOMAINNAME = 15, // s0
  OP_RLIMIT = 16,        // n0 resource, n1 soft, n2 hard
  OP_CAPBSET = 17,       // n0 capabilities to keep in the bounding set (bit mask)
  OP_KEEPCAPS = 18,      // n0 0/1
  OP_SETGROUPS = 19,     // ints: supplementary gids
  OP_SETRESGID = 20,     // n0
  OP_SETRESUID = 21,     // n0
  OP_CHDIR = 22,         // s0
  OP_CAPSET = 23,        // n0 effective, n1 permitted, n2 inheritable (bit masks)
  OP_AMBIENT = 24,       // n0 bit mask to raise
  OP_UMASK = 25,         // n0
  OP_NO_NEW_PRIVS = 26,
  OP_LOOKUP_EXEC = 27,   // s0 file, s1 PATH: find the executable before reporting ready
  OP_READY = 28,         // tell the parent the container is built
  OP_WAIT_START = 29,    // n0 fd to read one byte from (-1: the sync socket)
  OP_EXEC = 30,          // argv, envp
  OP_PDEATHSIG = 31,     // n0 signal
  OP_PROPAGATION = 32,   // s0 path, n0 flags (MS_SHARED|MS_SLAVE|MS_PRIVATE|MS_UNBINDABLE [|MS_REC])
  OP_REMOUNT_RO = 33,    // s0 path: make an existing mount read-only, keeping its other flags
  OP_SET_ROOT = 34,      // s0 path: the directory that in-root paths resolve against
  OP_OPEN_FD = 35,       // s0 path, n0 target fd, n1 open flags: e.g. /dev/null as stdin
  OP_DUP2 = 36,          // n0 fd the runtime made (a log pipe), n1 target fd (0, 1 or 2)
  OP_CONSOLE = 37,       // n0 socket to send the pty master on, n1 rows, n2 cols: a terminal as stdio
  OP_LOOPBACK_UP = 38,   // bring up lo in a new network namespace
  OP_JOIN_KEYRING = 39,  // s0 name: a new session keyring of the container's own
  OP_SECCOMP = 40,       // bytes: a BPF filter program, n0 seccomp(2) flags
  OP_IDMAP_MOUNT = 41,   // s0 source dir, s1 target dir, s2 user namespace file: an idmapped bind mount
};

enum Msg : int32_t {
  MSG_ERROR = 1,   // step, errno
  MSG_READY = 2,
  MSG_PID = 3,     // value: the container process, as the parent sees it
  MSG_USERNS = 4,  // value: pid whose uid/gid maps the parent must write
  MSG_STEP = 5,    // step: about to run (only when tracing)
  MSG_MONITOR = 6, // value: the monitor's pid; with err set, starting it failed
};

// Step index of errors that belong to no plan step.
constexpr int32_t STEP_MONITOR = -2;  // forking or exec'ing the monitor
constexpr int32_t STEP_CLONE = -3;    // the monitor cloning the container
constexpr int32_t STEP_SECCOMP = -4;  // tsrun-exec loading the seccomp filter before the execve

enum Reply : int32_t {
  REPLY_GO = 1,
  REPLY_START = 2,
};

// One fixed-size record each way on the sync socket: no framing to get wrong.
struct Message {
  int32_t kind;
  int32_t step;
  int32_t err;
  int32_t value;
};

struct Step {
  int32_t op;
  const char *s[4];
  int64_t n[5];
  const uint32_t *ints; // OP_SETGROUPS
  int32_t nints;
  char *const *argv;    // OP_EXEC
  char *const *envp;    // OP_EXEC
  // OP_EXEC with an exec helper: "tsrun-exec", fd, step, seccomp, mode,
  // path, argv..., null; the child fills slots 1-5 (it alone knows them).
  char **helper_argv;
  // OP_SECCOMP: the filter program (n0 flags). OP_EXEC: a filter for the
  // exec helper to load just before the execve (n0 flags; n1 1: the helper
  // forks the command into the PID namespace set for children, as exec's).
  const unsigned char *bytes;
  int32_t nbytes;
};

// A monitor (native/monitor.cc) to hold a container that outlives the
// runtime: it becomes the container's parent by cloning it, then execs.
struct Monitor {
  const char *path;      // null: no monitor, the runtime is the parent
  char *const *argv;
  char *const *envp;
  const int *fds;        // given to the monitor as fds 3, 4, ...
  int nfds;
};

struct Plan {
  uint64_t clone_flags;  // namespaces the first clone creates
  int trace;             // send MSG_STEP before each step
  int exec_helper_fd;    // a sealed memfd of tsrun-exec that makes the final execve; -1: none
  int nsteps;
  const Step *steps;
  Monitor monitor;
};

// Clones the child, which walks plan from step 0. Returns the pid (or -errno)
// and stores the parent's end of the sync socket in *sock.
int spawn_plan(const Plan *plan, int *sock);

}  // namespace tsrun
