// pause, resume, update, stats and events: a live container's cgroups.
import { freeze, stats, thaw, update, type Stats } from '../cgroup/ops';
import { oomKills } from '../cgroup/placement';
import type { Resources } from '../cgroup/resources';
import { TsrunError } from '../errors';
import { Store, statusOf, type ContainerRecord } from './store';

function live(store: Store, id: string, allowed: string[], verb: string): ContainerRecord & { cgroup: NonNullable<ContainerRecord['cgroup']> } {
  const rec = store.read(id);
  const status = statusOf(store, rec);
  if (!allowed.includes(status)) throw new TsrunError(`cannot ${verb} container "${id}": it is ${status}`);
  if (!rec.cgroup?.dirs.length) throw new TsrunError(`cannot ${verb} container "${id}": it has no cgroup`);
  return rec as ContainerRecord & { cgroup: NonNullable<ContainerRecord['cgroup']> };
}

export async function pauseContainer(id: string, root?: string) {
  const store = new Store(root);
  await store.lock(id, async () => freeze(live(store, id, ['running'], 'pause').cgroup));
}

export async function resumeContainer(id: string, root?: string) {
  const store = new Store(root);
  await store.lock(id, async () => thaw(live(store, id, ['paused'], 'resume').cgroup));
}

export function updateContainer(id: string, resources: Resources, root?: string) {
  const store = new Store(root);
  store.lock(id, () => update(live(store, id, ['created', 'running', 'paused'], 'update').cgroup, resources));
}

export interface ContainerStats extends Stats {
  id: string;
}

export function containerStats(id: string, root?: string): ContainerStats {
  const store = new Store(root);
  return { id, ...stats(live(store, id, ['created', 'running', 'paused'], 'read stats of').cgroup) };
}

export interface ContainerEvent {
  type: 'oom' | 'exit' | 'health_status';
  id: string;
  time: string;
  /** OOM kills so far, for "oom". */
  count?: number;
  /** The new health, for "health_status" (Docker's event of that name). */
  status?: string;
}

/**
 * Reports OOM kills in the container (and its end) as they happen, by
 * watching the memory cgroup's counter; returns when the container stops.
 */
export async function watchEvents(id: string, onEvent: (e: ContainerEvent) => void, opts: { root?: string; intervalMs?: number; signal?: AbortSignal; health?: () => string | undefined } = {}) {
  const store = new Store(opts.root);
  const rec = live(store, id, ['created', 'running', 'paused'], 'watch');
  let seen = oomKills(rec.cgroup);
  let health = opts.health?.();
  while (!opts.signal?.aborted) {
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
    const kills = oomKills(rec.cgroup);
    if (kills > seen) onEvent({ type: 'oom', id, time: new Date().toISOString(), count: kills });
    seen = kills;
    const h = opts.health?.();
    if (h && h !== health) onEvent({ type: 'health_status', id, time: new Date().toISOString(), status: h });
    health = h ?? health;
    let status: string;
    try {
      status = statusOf(store, store.read(id));
    } catch {
      status = 'stopped';
    }
    if (status === 'stopped') {
      onEvent({ type: 'exit', id, time: new Date().toISOString() });
      return;
    }
  }
}
