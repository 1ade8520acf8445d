// Step codes shared with native/plan.h; keep the two in step.
export const Op = {
  SETNS: 1,
  UNSHARE: 2,
  SYNC_USERNS: 3,
  FORK: 4,
  SYNC_WAIT: 5,
  MOUNT: 6,
  MKDIR: 7,
  SYMLINK: 8,
  MKNOD: 9,
  PIVOT_ROOT: 10,
  MASK_PATH: 11,
  READONLY_PATH: 12,
  WRITE_FILE: 13,
  SETHOSTNAME: 14,
  SETDOMAINNAME: 15,
  RLIMIT: 16,
  CAPBSET: 17,
  KEEPCAPS: 18,
  SETGROUPS: 19,
  SETRESGID: 20,
  SETRESUID: 21,
  CHDIR: 22,
  CAPSET: 23,
  AMBIENT: 24,
  UMASK: 25,
  NO_NEW_PRIVS: 26,
  LOOKUP_EXEC: 27,
  READY: 28,
  WAIT_START: 29,
  EXEC: 30,
  PDEATHSIG: 31,
  PROPAGATION: 32,
  REMOUNT_RO: 33,
  SET_ROOT: 34,
  OPEN_FD: 35,
  DUP2: 36,
  CONSOLE: 37,
  LOOPBACK_UP: 38,
  JOIN_KEYRING: 39,
  SECCOMP: 40,
  IDMAP_MOUNT: 41,
} as const;

export type OpCode = (typeof Op)[keyof typeof Op];

/** Messages from the child (native/plan.h Msg). */
export const Msg = { ERROR: 1, READY: 2, PID: 3, USERNS: 4, STEP: 5, MONITOR: 6 } as const;
/** Step indexes of errors outside the plan's steps. */
export const STEP_MONITOR = -2;
export const STEP_CLONE = -3;
export const STEP_SECCOMP = -4;
/** Replies to the child (native/plan.h Reply). */
export const Reply = { GO: 1, START: 2 } as const;
export const MESSAGE_SIZE = 16;
