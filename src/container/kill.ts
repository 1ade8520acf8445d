// kill: send a signal to the container process (runtime-spec "kill").
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { native } from '../native';
import { Store, processStartTime, statusOf } from './store';
import { canFreeze, freeze, isFrozen, thaw } from '../cgroup/ops';
import { cgroupPids, killCgroups } from '../cgroup/placement';

/**
 * runc's `kill --all`: the signal to every process of the container's
 * cgroups and the cgroups below them, stopped or not (processes outside its
 * PID namespace can outlive pid 1). SIGKILL is the cgroup's own kill
 * (cgroup.kill on v2; frozen, killed and thawed on v1, so nothing forks
 * away). Any other signal goes with the cgroup frozen where it can be, each
 * process pinned by a pidfd and signalled only if the cgroup still lists it,
 * so a pid reused after its process left is never hit.
 */
export async function killAll(id: string, signal: number, root?: string) {
  const store = new Store(root);
  await store.lock(id, async () => {
    const rec = store.read(id);
    const placement = rec.cgroup;
    if (!placement) return;
    if (signal === 9) return killCgroups(placement);
    const procs = () => new Set(placement.dirs.flatMap((d) => cgroupPids(d)));
    const step = async (what: string, f: () => Promise<void>) => {
      try {
        await f();
      } catch (e) {
        throw new TsrunError(`kill --all ${id}: ${what} ${placement.dirs[0]}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    };
    const freezing = canFreeze(placement) && !isFrozen(placement);
    const pinned = new Map<number, number>();
    try {
      if (freezing) await step('freeze', () => freeze(placement));
      for (const pid of procs()) {
        try {
          pinned.set(pid, native().pidfdOpen(pid));
        } catch {
          /* gone already */
        }
      }
      const still = procs();
      for (const [pid, fd] of pinned) {
        if (!still.has(pid)) continue;
        try {
          native().pidfdSendSignal(fd, signal);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw new TsrunError(`kill --all ${id}: signal ${signal} to pid ${pid}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
    } finally {
      for (const fd of pinned.values()) fs.closeSync(fd);
      if (freezing) await step('thaw', () => thaw(placement));
    }
  });
}

export function killContainer(id: string, signal: number, root?: string) {
  const store = new Store(root);
  store.lock(id, () => {
    const rec = store.read(id);
    const status = statusOf(store, rec);
    if (status !== 'created' && status !== 'running' && status !== 'paused') throw new TsrunError(`cannot kill container "${id}": it is ${status}`);
    signalProcess(rec.pid, rec.pidStartTime, signal);
  });
}

/** Signals pid through a pidfd, after checking the pidfd names the same process. */
export function signalProcess(pid: number, startTime: string, signal: number): boolean {
  let pidfd: number;
  try {
    pidfd = native().pidfdOpen(pid);
  } catch {
    return false;
  }
  try {
    // The pidfd pins this process; if its start time still matches, it is ours.
    if (processStartTime(pid) !== startTime) return false;
    native().pidfdSendSignal(pidfd, signal);
    return true;
  } catch (e) {
    // It exited between the check and the signal.
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  } finally {
    fs.closeSync(pidfd);
  }
}

/** Resolves when pid has exited (it need not be our child). */
export function waitForExit(pid: number, startTime: string): Promise<void> {
  let pidfd: number;
  try {
    pidfd = native().pidfdOpen(pid);
  } catch {
    return Promise.resolve();
  }
  if (processStartTime(pid) !== startTime) {
    fs.closeSync(pidfd);
    return Promise.resolve();
  }
  return new Promise((resolve) =>
    native().watchPidfd(pidfd, () => {
      fs.closeSync(pidfd);
      resolve();
    }),
  );
}

/** Resolves true once pid (with this start time) is gone, false after ms; holds no fd or watcher meanwhile. */
export async function exitsWithin(pid: number, startTime: string, ms: number, pollMs = 25): Promise<boolean> {
  for (const end = Date.now() + ms; ; ) {
    if (processStartTime(pid) !== startTime) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
