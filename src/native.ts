// The native addon (native/): the one fork point and the host primitives
// Node lacks. Typed here once; nothing else loads the .node file.
import path = require('node:path');

export interface NativeStep {
  op: number;
  s?: (string | null)[];
  n?: number[];
  ints?: number[];
  argv?: string[];
  envp?: string[];
  /** OP_SECCOMP: the filter program. */
  bytes?: Buffer;
}

export interface NativePlan {
  cloneFlags: number;
  trace: boolean;
  steps: NativeStep[];
  /** Clone the container from a monitor program that outlives the runtime. */
  monitor?: { path: string; argv: string[]; envp: string[]; fds: number[] };
  /** tsrun-exec, copied into a sealed memfd, makes the final execve (CVE-2019-5736). */
  execHelper?: string;
}

export interface ExitStatus {
  pid: number;
  /** Set when the process exited normally. */
  exitCode: number | null;
  /** Set when a signal ended it. */
  signal: number | null;
}

export interface Native {
  spawn(plan: NativePlan): { pid: number; sock: number };
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  /** 0 when dir's filesystem takes an idmapped mount for the user namespace file, else the errno. */
  idmappable(dir: string, usernsFile: string): number;
  mknod(path: string, mode: number, major: number, minor: number): void;
  mkfifo(path: string, mode: number): void;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  lgetxattr(path: string, name: string): Buffer | null;
  /** The names of the entry's own extended attributes (a symlink's, not its target's). */
  llistxattr(path: string): string[];
  fsetxattr(fd: number, name: string, value: Buffer, flags: number): void;
  /** chmod of the entry itself, never of a symlink's target. */
  lchmod(path: string, mode: number): void;
  /** openat2(2): flags as open(2) (O_CLOEXEC is added), resolve as RESOLVE_*. */
  openat2(dirfd: number, path: string, flags: number, resolve: number): number;
  /** Loads a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to a cgroup v2 directory. */
  attachDeviceProgram(cgroupDir: string, insns: Buffer): void;
  /** The BPF program of a runtime-spec linux.seccomp, built with libseccomp. */
  compileSeccomp(seccomp: object): Buffer;
  /** libseccomp's version, "2.5.4". */
  seccompVersion(): string;
  /** rm -rf without recursion or long paths; never follows symlinks or enters another filesystem. */
  removeTree(path: string): void;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  /** Calls back once the process has exited: its status if it was our child, else null. */
  watchPidfd(pidfd: number, callback: (status: ExitStatus | null) => void): void;
  /** Reaps a child; with noHang, returns null if it has not exited yet. */
  reap(pid: number, noHang?: boolean): ExitStatus | null;
  flock(fd: number, operation: number): boolean;
  /** [read, write], close-on-exec. */
  pipe(): [number, number];
  /** A connected AF_UNIX stream pair, close-on-exec. */
  socketPair(): [number, number];
  /** A descriptor passed over sock with SCM_RIGHTS, or null if none is waiting. */
  recvFd(sock: number): number | null;
  setWinsize(fd: number, rows: number, cols: number): void;
  /** A connected AF_UNIX stream socket to path, close-on-exec. */
  connectUnix(path: string): number;
}

/** openat2(2) resolve flags. */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
/** Every path resolved inside a root: no escape by .., absolute links or /proc magic links. */
export const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

let loaded: Native | undefined;

/** The package root: dist/ (the bundle) and src/ both sit one level below it. */
export const PACKAGE_ROOT = path.join(__dirname, '..');

/** The monitor program built beside the addon (binding.gyp's second target). */
export const MONITOR_PATH = path.join(PACKAGE_ROOT, 'build', 'Release', 'tsrun-monitor');

/** --init's pid 1 (binding.gyp's third target). */
export const INIT_PATH = path.join(PACKAGE_ROOT, 'build', 'Release', 'tsrun-init');

/** The program that makes a container's final execve from a sealed memfd (binding.gyp's fourth target). */
export const EXEC_HELPER_PATH = path.join(PACKAGE_ROOT, 'build', 'Release', 'tsrun-exec');

/** The CLI, for commands that run tsrun again (the monitor's exit command). */
export const CLI_PATH = path.join(PACKAGE_ROOT, 'dist', 'tsrun.js');

export function native(): Native {
  if (!loaded) {
    const file = path.join(PACKAGE_ROOT, 'build', 'Release', 'tsrun.node');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(file) as Native;
  }
  return loaded;
}

/** An error thrown by the addon carries the syscall and errno. */
export interface SyscallError extends Error {
  syscall: string;
  errno: number;
  code: string;
  path?: string;
}

export function isSyscallError(e: unknown, code?: string): e is SyscallError {
  return e instanceof Error && typeof (e as SyscallError).errno === 'number' && (code === undefined || (e as SyscallError).code === code);
}
