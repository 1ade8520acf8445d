// delete: remove a stopped container's state; --force kills it first
// (runtime-spec "delete").
import fs = require('node:fs');
import path = require('node:path');
import { hostHierarchies, killCgroups, removeCgroups, type CgroupPlacement } from '../cgroup/placement';
import { TsrunError } from '../errors';
import { signalProcess, waitForExit } from './kill';
import { Store, statusOf, type ContainerRecord } from './store';

/**
 * The container's cgroups: those recorded, plus whatever exists at its
 * recorded path (a create killed during placement recorded no directories).
 */
function cgroupOf(rec: ContainerRecord): CgroupPlacement | undefined {
  const dirs = new Set(rec.cgroup?.dirs ?? []);
  const created = new Set(rec.cgroup?.created ?? []);
  if (rec.cgroupPath) {
    for (const h of hostHierarchies()) {
      const dir = path.join(h.mountPoint, rec.cgroupPath);
      if (!fs.existsSync(dir)) continue;
      dirs.add(dir);
      created.add(dir);
      if (rec.cgroupPath.startsWith('/tsrun/')) created.add(path.join(h.mountPoint, 'tsrun'));
    }
  }
  return dirs.size || created.size ? { dirs: [...dirs], created: [...created] } : undefined;
}

export async function deleteContainer(id: string, opts: { force?: boolean; root?: string } = {}) {
  const store = new Store(opts.root);
  // --force of a container that is gone (or that a racing delete removes first) succeeds, as runc's:
  // clients delete after failures, and a foreground run's clean-up meets an rm -f's.
  if (opts.force && !store.exists(id)) return;
  try {
    await store.lock(id, () => removeRecorded(store, id, opts.force));
  } catch (e) {
    if (opts.force && !store.exists(id)) return;
    throw e;
  }
}

async function removeRecorded(store: Store, id: string, force?: boolean) {
  let rec;
  try {
    rec = store.read(id);
  } catch (e) {
    // A create killed before its first record leaves an empty directory: --force clears it (or finds it gone).
    if (force) return store.remove(id);
    throw e;
  }
  const status = statusOf(store, rec);
  if (status !== 'stopped') {
    if (!force) throw new TsrunError(`cannot delete container "${id}": it is ${status}; kill it first or use --force`);
    // A create still in progress (no container pid yet) is killed, so it cannot finish behind our back.
    const [pid, start] = rec.pid > 0 ? [rec.pid, rec.pidStartTime] : [rec.creatorPid, rec.creatorStartTime];
    if (pid > 0 && pid !== process.pid && signalProcess(pid, start, 9)) await waitForExit(pid, start);
  }
  const cgroup = cgroupOf(rec);
  if (cgroup) {
    // Whatever the container left running (it may not have had a PID namespace,
    // or its create was killed before recording its pid) goes with it.
    await killCgroups(cgroup);
    await removeCgroups(cgroup);
  }
  store.remove(id);
}
