// run: create, start, wait and delete in the foreground, as `runc run`:
// stdio passed through, signals forwarded, the exit status returned.
import fs = require('node:fs');
import os = require('node:os');
import { TsrunError } from '../errors';
import { native, type ExitStatus } from '../native';
import { attachTerminal, type Attached } from '../process/terminal';
import { createContainer, type CreateOptions } from './create';
import { deleteContainer } from './delete';
import { oomKills } from '../cgroup/placement';

/** Signals a foreground runtime passes on to its container. */
export const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

/** Docker's convention: the exit code, or 128+N for a death by signal N. */
export function exitCodeOf(status: ExitStatus | null): number {
  if (!status) return 0;
  return status.exitCode ?? 128 + (status.signal ?? 0);
}

/** Passes the runtime's own signals on to a process; returns the undo. */
export function forwardSignals(target: { signal(sig: number): void }): () => void {
  const handlers = FORWARDED_SIGNALS.map((sig) => {
    const h = () => {
      try {
        target.signal(os.constants.signals[sig]);
      } catch {
        /* already exited */
      }
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

export interface RunOptions extends Omit<CreateOptions, 'foreground' | 'consoleSocket' | 'monitor'> {
  /** Forward the runtime's own signals to the container (the CLI does). */
  forwardSignals?: boolean;
  /** A terminal for the container, joined to this process's stdio (-t; stdin: -i too). */
  terminal?: { stdin: boolean };
  /** Called once the container process has been released to run its command. */
  onStart?(pid: number): void;
  /** Called once the container has exited, before its cgroup is removed. */
  onExit?(result: RunResult): void;
}

export interface RunResult {
  exitCode: number;
  /** The kernel's OOM killer ended a process of the container. */
  oomKilled: boolean;
}

export async function runContainer(opts: RunOptions): Promise<number> {
  // The pty is made inside the container; its master comes back over this pair.
  const consolePair = opts.terminal ? native().socketPair() : undefined;
  let created;
  try {
    created = await createContainer({ ...opts, foreground: true, consoleSocket: consolePair?.[1] });
  } catch (e) {
    if (consolePair) consolePair.forEach((fd) => fs.closeSync(fd));
    throw e;
  }
  let attached: Attached | undefined;
  const proc = created.process;
  const exited = proc.exited();
  const stopForwarding = opts.forwardSignals ? forwardSignals(proc) : () => {};
  try {
    if (consolePair) {
      fs.closeSync(consolePair[1]);
      const master = native().recvFd(consolePair[0]);
      fs.closeSync(consolePair[0]);
      if (master === null) throw new TsrunError('the container made no terminal (no pty master arrived on the console socket)');
      attached = attachTerminal(master, { stdin: opts.terminal!.stdin });
    }
    await proc.start();
    opts.onStart?.(proc.pid);
    const status = await exited;
    await attached?.drained();
    attached?.restore();
    const exitCode = exitCodeOf(status);
    opts.onExit?.({ exitCode, oomKilled: created.record.cgroup ? oomKills(created.record.cgroup) > 0 : false });
    return exitCode;
  } catch (e) {
    // exec failed (the child exits by itself) or something else did: make sure it is gone.
    try {
      proc.signal(9);
    } catch {
      /* already exited */
    }
    await exited;
    throw e;
  } finally {
    attached?.restore();
    stopForwarding();
    proc.closePidfd();
    await deleteContainer(opts.id, { root: opts.root, force: true });
  }
}
