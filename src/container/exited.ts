// What follows a detached container's exit: the monitor has written
// exit.json and runs `tsrun container-exited ID`, which records the end in
// container.json, kills what the container left in its cgroup, removes the
// runtime state, and then carries out --rm or the restart policy.
import { oomKills } from '../cgroup/placement';
import { disconnectNetworks } from '../network/attach';
import { deleteContainer } from './delete';
import { startDetached } from './detached';
import type { ContainerInfo, Registry } from './registry';
import { removeContainerFiles } from './run-image';
import { removeAnonymousVolumes } from '../volume/mounts';

/** Docker's rule: whether the policy starts the container again after this exit. */
export function shouldRestart(info: ContainerInfo, exitCode: number): boolean {
  const p = info.hostConfig.restartPolicy;
  if (info.state.manuallyStopped) return false;
  switch (p.name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return exitCode !== 0 && (p.maximumRetryCount === 0 || info.state.restartCount < p.maximumRetryCount);
    default:
      return false;
  }
}

/** Back-off before restart N (1-based): 100 ms doubling, at most 10 s, as Docker does. */
export function restartDelay(n: number): number {
  return Math.min(100 * 2 ** Math.max(0, n - 1), 10_000);
}

export async function containerExited(registry: Registry, id: string): Promise<void> {
  let restart = false;
  await registry.lock(id, async () => {
    if (!registry.isManaged(id)) return; // removed meanwhile (rm -f)
    const info = registry.read(id);
    const exit = registry.readExit(id);
    // Only the end of the current run, and only once.
    if (!exit || exit.pid !== info.state.pid || info.state.finishedAt) return;
    const rt = registry.runtimeRecord(id);
    const exitCode = exit.exitCode ?? 128 + (exit.signal ?? 0);
    restart = shouldRestart(info, exitCode);
    info.state = { ...info.state, exitCode, finishedAt: exit.finishedAt, oomKilled: !!rt?.cgroup && oomKills(rt.cgroup) > 0, restarting: restart };
    // Written before the runtime state goes, so `wait` never sees an end without its status.
    registry.write(info);
    await deleteContainer(id, { root: registry.runtime.root, force: true });
    try {
      await disconnectNetworks(registry, id);
    } catch (e) {
      // Kept for the next start or rm -f to undo; said where inspect shows it.
      info.state = { ...info.state, error: `network clean-up: ${(e as Error).message}` };
      registry.write(info);
      if (info.hostConfig.autoRemove && !restart) return;
    }
    if (info.hostConfig.autoRemove && !restart) {
      removeContainerFiles(registry, info);
      await removeAnonymousVolumes(registry, info);
    }
  });
  if (!restart) return;
  const info0 = registry.read(id);
  await new Promise((r) => setTimeout(r, restartDelay(info0.state.restartCount + 1)));
  await registry.lock(id, async () => {
    if (!registry.isManaged(id)) return;
    const info = registry.read(id);
    // stop, kill or rm during the back-off cancel it.
    if (!info.state.restarting || info.state.manuallyStopped) {
      info.state.restarting = false;
      registry.write(info);
      return;
    }
    info.state.restartCount++;
    try {
      await startDetached(registry, info);
    } catch (e) {
      info.state = { ...info.state, restarting: false, error: `restart ${info.state.restartCount} failed: ${(e as Error).message}` };
      registry.write(info);
    }
  });
}
