// run: create, start, wait and delete in the foreground, as `runc run`:
// stdio passed through, signals forwarded, the exit status returned.
import os = require('node:os');
import type { ExitStatus } from '../native';
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

export interface RunOptions extends Omit<CreateOptions, 'foreground'> {
  /** Forward the runtime's own signals to the container (the CLI does). */
  forwardSignals?: boolean;
  /** Called once the container has exited, before its cgroup is removed. */
  onExit?(result: RunResult): void;
}

export interface RunResult {
  exitCode: number;
  /** The kernel's OOM killer ended a process of the container. */
  oomKilled: boolean;
}

export async function runContainer(opts: RunOptions): Promise<number> {
  const created = await createContainer({ ...opts, foreground: true });
  const proc = created.process;
  const exited = proc.exited();
  const stopForwarding = opts.forwardSignals ? forwardSignals(proc) : () => {};
  try {
    await proc.start();
    const exitCode = exitCodeOf(await exited);
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
    stopForwarding();
    proc.closePidfd();
    await deleteContainer(opts.id, { root: opts.root, force: true });
  }
}
