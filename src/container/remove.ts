// rm: an image container and everything it has (runtime state, cgroups,
// writable layer, log, name). -f kills it first.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { disconnectNetworks } from '../network/attach';
import { deleteContainer } from './delete';
import { exitsWithin, signalProcess } from './kill';
import { thawIfFrozen } from './stop';
import type { Registry } from './registry';
import { monitorRecorded, withExitClaim } from './detached';
import { isAlive } from './store';
import { removeContainerDir, removeContainerFiles } from './run-image';
import { removeAnonymousVolumes } from '../volume/mounts';

export async function removeContainer(registry: Registry, id: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
  if (!registry.isManaged(id) && fs.existsSync(registry.containerDir(id))) {
    // A run killed between making the directory and writing its record.
    if (registry.runtime.exists(id)) await deleteContainer(id, { root: registry.runtime.root, force: true });
    await disconnectNetworks(registry, id);
    removeContainerDir(registry.containerDir(id));
    return;
  }
  if (!registry.isManaged(id)) {
    // A runtime container made with `create`: rm -f is delete --force.
    await deleteContainer(id, { root: registry.runtime.root, force: opts.force });
    return;
  }
  await registry.lock(id, async () => {
    const info = registry.read(id);
    const live = registry.live(info);
    if (live.running || live.status === 'restarting') {
      if (!opts.force) throw new TsrunError(`cannot remove container ${info.name} (${id.slice(0, 12)}): it is ${live.status}; stop it first or use rm -f`);
      info.state.manuallyStopped = true;
      registry.write(info);
      const rt = registry.runtimeRecord(id);
      // The clean-up is done here: the monitor need not start a process for it.
      await withExitClaim(registry, id, async () => {
        if (!rt?.pid || !signalProcess(rt.pid, rt.pidStartTime, 9)) return;
        await thawIfFrozen(registry, id);
        if (!(await exitsWithin(rt.pid, rt.pidStartTime, 15_000))) throw new TsrunError(`rm -f ${info.name}: pid ${rt.pid} still runs 15 s after SIGKILL (uninterruptible sleep?)`);
        // Its monitor writes exit.json next: let it finish before the directory goes.
        await monitorRecorded(registry, id, rt);
      });
    }
    // A process that has just died (killed by an rm that was itself killed, say) is
    // a zombie until its monitor reaps it and records the exit: wait for that.
    const rt = registry.runtimeRecord(id);
    if (rt?.pid && !isAlive(rt.pid, rt.pidStartTime)) await monitorRecorded(registry, id, rt);
    // The runtime's state and cgroups (whatever a dead create or monitor left too).
    if (registry.runtime.exists(id)) await deleteContainer(id, { root: registry.runtime.root, force: true });
    await disconnectNetworks(registry, id);
    removeContainerFiles(registry, info);
    if (opts.volumes) await removeAnonymousVolumes(registry, info);
  });
}
