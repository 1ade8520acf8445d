// exec: a new process inside a running container: its namespaces, its
// cgroups, its capabilities, no_new_privs and environment.
import fs = require('node:fs');
import path = require('node:path');
import type { CgroupPlacement } from '../cgroup/placement';
import { TsrunError } from '../errors';
import { compileExecPlan, type JoinNamespace, type StdioFds } from '../plan/compile';
import { readHostFacts } from '../plan/host-facts';
import { launch } from '../plan/launch';
import { NAMESPACES } from '../ns/namespaces';
import { parseSpec, validateProcess } from '../spec/validate';
import type { Process, Spec } from '../spec/types';
import { compileSeccomp } from '../security/seccomp';
import { exitCodeOf, forwardSignals } from './run';
import { Store, statusOf } from './store';
import { native } from '../native';
import { attachTerminal, type Attached } from '../process/terminal';
import { mergeEnv } from '../image/runtime-config';
import { resolveUser } from '../image/user';
import { readFileInRoot } from '../rootfs/in-root';

export interface ExecOptions {
  id: string;
  root?: string;
  /** The command and arguments. */
  args?: string[];
  /** A whole runtime-spec process (runc exec --process); args etc. below override it. */
  process?: Process;
  env?: string[];
  cwd?: string;
  /** uid[:gid] or a name from the container's /etc/passwd. */
  user?: string;
  /** Return once the process runs, without waiting for it. */
  detach?: boolean;
  trace?: (line: string) => void;
  forwardSignals?: boolean;
  pidFile?: string;
  /** -t: a terminal made in the container, joined to this process's stdio (stdin: -i too). */
  terminal?: { stdin: boolean };
  /** runc's --console-socket: send the terminal's master to this connected socket instead. */
  consoleSocket?: number;
  /** The command's stdin, stdout and stderr (undefined: this process's own). */
  stdio?: StdioFds;
  /** Aborting kills the command (SIGKILL): a health check past its timeout. */
  signal?: AbortSignal;
}

/** The namespaces of pid that differ from ours: joining one's own user namespace is refused. */
export function namespacesOf(pid: number): JoinNamespace[] {
  const out: JoinNamespace[] = [];
  for (const kind of NAMESPACES) {
    if (kind.type === 'time') continue;
    const theirs = `/proc/${pid}/ns/${kind.procName}`;
    try {
      if (fs.statSync(theirs).ino !== fs.statSync(`/proc/self/ns/${kind.procName}`).ino) out.push({ type: kind.type, path: theirs });
    } catch {
      /* the kernel lacks this namespace type */
    }
  }
  return out;
}

/** -u NAME[:GROUP] resolved in the container's own /etc/passwd and /etc/group. */
function userInContainer(pid: number, spec: string, umask?: number): Process['user'] {
  // Inside the container's root: a symlink of the image's leads to its own files, never the host's.
  const read = (file: string) => readFileInRoot(`/proc/${pid}/root`, file, 16 << 20);
  const u = resolveUser(spec, read('/etc/passwd'), read('/etc/group'));
  return { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids, umask };
}

export async function execInContainer(opts: ExecOptions): Promise<number> {
  const store = new Store(opts.root);
  const rec = store.read(opts.id);
  const status = statusOf(store, rec);
  if (status !== 'running') throw new TsrunError(`cannot exec in container "${opts.id}": it is ${status}`);
  let base: Process;
  let containerSpec: Spec;
  try {
    // The config as it was created (older state has none: then the bundle's).
    const created = path.join(store.dir(rec.id), 'config.json');
    containerSpec = parseSpec(fs.readFileSync(fs.existsSync(created) ? created : path.join(rec.bundle, 'config.json'), 'utf8'));
    base = containerSpec.process!;
  } catch (e) {
    throw e instanceof TsrunError ? e : new TsrunError(`exec: read the container's config: ${(e as Error).message}`);
  }
  const proc: Process = structuredClone(opts.process ?? base);
  if (!opts.process) {
    // The container's own capabilities, no_new_privs, rlimits and environment.
    proc.args = opts.args ?? [];
    proc.terminal = !!opts.terminal;
  } else if (opts.args?.length) proc.args = opts.args;
  if (!proc.args?.length) throw new TsrunError('exec: no command given');
  proc.env = mergeEnv(proc.env ?? [], opts.env ?? []);
  if (opts.cwd) proc.cwd = opts.cwd;
  if (opts.user) proc.user = userInContainer(rec.pid, opts.user, proc.user.umask);
  // The same bounds as config.json's process: a uid past 2^31-1 would wrap to root.
  validateProcess(proc, opts.process ? 'exec --process' : 'process');
  const join = namespacesOf(rec.pid);
  const consolePair = opts.terminal && opts.consoleSocket === undefined ? native().socketPair() : undefined;
  const consoleFd = consolePair?.[1] ?? opts.consoleSocket;
  // The container's seccomp filter confines what is exec'd in it too, as runc applies it.
  const seccomp = containerSpec.linux?.seccomp ? compileSeccomp(containerSpec.linux.seccomp, store.seccompCache) : undefined;
  const plan = compileExecPlan(proc, join, readHostFacts(), { keyring: rec.id, seccomp, stdio: opts.stdio, trace: !!opts.trace, parentDeathSignal: opts.detach ? undefined : 9, console: consoleFd !== undefined ? { socket: consoleFd, rows: process.stdout.rows, cols: process.stdout.columns } : undefined });
  const cgroup: CgroupPlacement | undefined = rec.cgroup;
  const launching = launch(plan, {
    trace: opts.trace,
    place: (pid) => {
      if (!cgroup) return;
      opts.trace?.(`        handshake: runtime places pid ${pid} in the container's cgroups`);
      // Into the existing leaf directories: nothing is created.
      for (const dir of cgroup.dirs) fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    },
  });
  if (consolePair) fs.closeSync(consolePair[1]);
  let launched;
  try {
    launched = await launching;
  } catch (e) {
    if (consolePair) fs.closeSync(consolePair[0]);
    throw e;
  }
  let attached: Attached | undefined;
  if (consolePair) {
    const master = native().recvFd(consolePair[0]);
    fs.closeSync(consolePair[0]);
    if (master !== null) attached = attachTerminal(master, { stdin: opts.terminal!.stdin });
  }
  if (opts.pidFile) fs.writeFileSync(opts.pidFile, String(launched.pid));
  const exited = opts.detach ? undefined : launched.exited();
  const stopForwarding = opts.forwardSignals && !opts.detach ? forwardSignals(launched) : () => {};
  const kill = () => {
    try {
      launched.signal(9);
    } catch {
      /* already exited */
    }
  };
  opts.signal?.addEventListener('abort', kill);
  // Aborted while it was being launched: the listener came too late for that.
  if (opts.signal?.aborted) kill();
  try {
    await launched.start();
    if (!exited) {
      launched.closePidfd();
      return 0;
    }
    const status = await exited;
    await attached?.drained();
    const code = exitCodeOf(status);
    launched.closePidfd();
    return code;
  } catch (e) {
    if (exited) {
      await exited;
      launched.closePidfd();
    }
    throw e;
  } finally {
    attached?.restore();
    stopForwarding();
    opts.signal?.removeEventListener('abort', kill);
  }
}
