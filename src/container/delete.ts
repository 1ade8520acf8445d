// delete: remove a stopped container's state; --force kills it first
// (runtime-spec "delete").
import { killCgroups, removeCgroups } from '../cgroup/placement';
import { TsrunError } from '../errors';
import { signalProcess, waitForExit } from './kill';
import { Store, statusOf } from './store';

export async function deleteContainer(id: string, opts: { force?: boolean; root?: string } = {}) {
  const store = new Store(opts.root);
  await store.lock(id, async () => {
    let rec;
    try {
      rec = store.read(id);
    } catch (e) {
      // A create killed before its first record leaves an empty directory: --force clears it.
      if (opts.force && store.exists(id)) return store.remove(id);
      throw e;
    }
    const status = statusOf(store, rec);
    if (status !== 'stopped') {
      if (!opts.force) throw new TsrunError(`cannot delete container "${id}": it is ${status}; kill it first or use --force`);
      // A create still in progress (no container pid yet) is killed, so it cannot finish behind our back.
      const [pid, start] = rec.pid > 0 ? [rec.pid, rec.pidStartTime] : [rec.creatorPid, rec.creatorStartTime];
      if (pid > 0 && pid !== process.pid && signalProcess(pid, start, 9)) await waitForExit(pid, start);
    }
    if (rec.cgroup) {
      // Whatever the container left running (it may not have had a PID namespace) goes with it.
      await killCgroups(rec.cgroup);
      removeCgroups(rec.cgroup);
    }
    store.remove(id);
  });
}
