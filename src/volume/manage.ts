// The volume verbs over a store: create, ls, inspect, rm, prune.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { Registry } from '../container/registry';
import { removeContainer } from '../container/remove';
import { volumeUsers } from './mounts';
import { isAnonymous, Volumes, type CreateVolumeOptions, type VolumeRecord } from './volumes';

export const volumesOf = (registry: Registry) => new Volumes(registry.images.root);

export function createVolume(registry: Registry, name: string | undefined, opts: CreateVolumeOptions = {}): Promise<VolumeRecord> {
  const volumes = volumesOf(registry);
  return volumes.locked(() => volumes.create(name, opts));
}

/** Docker's volume ls filters: dangling=true|false, name=SUBSTRING, label=KEY[=VALUE], driver=NAME. */
export function listVolumes(registry: Registry, filters: string[] = []): VolumeRecord[] {
  const tests = filters.map((f) => {
    const eq = f.indexOf('=');
    const [key, value] = eq < 0 ? [f, ''] : [f.slice(0, eq), f.slice(eq + 1)];
    switch (key) {
      case 'dangling':
        if (!['true', 'false', '1', '0'].includes(value)) throw new TsrunError(`--filter ${f}: dangling takes true or false`);
        return (v: VolumeRecord) => (volumeUsers(registry, v.name).length === 0) === (value === 'true' || value === '1');
      case 'name':
        return (v: VolumeRecord) => v.name.includes(value);
      case 'driver':
        return (v: VolumeRecord) => v.driver === value;
      case 'label': {
        const leq = value.indexOf('=');
        return leq < 0 ? (v: VolumeRecord) => value in v.labels : (v: VolumeRecord) => v.labels[value.slice(0, leq)] === value.slice(leq + 1);
      }
      default:
        throw new TsrunError(`--filter ${f}: unknown filter "${key}" (dangling, name, label, driver)`);
    }
  });
  return volumesOf(registry).list().filter((v) => tests.every((t) => t(v)));
}

/** Docker's volume inspect document. */
export function inspectVolume(registry: Registry, name: string) {
  const volumes = volumesOf(registry);
  const v = volumes.get(name);
  return {
    CreatedAt: v.created,
    Driver: v.driver,
    Labels: v.labels,
    Mountpoint: volumes.source(v),
    Name: v.name,
    Options: Object.keys(v.options).length ? v.options : null,
    Scope: 'local',
    UsedBy: volumeUsers(registry, v.name).map((c) => c.name),
  };
}

/**
 * Removes a volume no container uses. With force a missing volume is no
 * error, and the containers that use it are removed first (podman's -f).
 */
export async function removeVolume(registry: Registry, name: string, opts: { force?: boolean } = {}): Promise<boolean> {
  const volumes = volumesOf(registry);
  if (!volumes.find(name)) {
    if (opts.force) return false;
    volumes.get(name);
  }
  if (opts.force) for (const c of volumeUsers(registry, name)) await removeContainer(registry, c.id, { force: true });
  return volumes.locked(() => {
    if (!volumes.find(name)) {
      if (opts.force) return false;
      volumes.get(name);
    }
    const users = volumeUsers(registry, name);
    if (users.length) throw new TsrunError(`volume ${name} is in use by container${users.length > 1 ? 's' : ''} ${users.map((c) => c.name).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first (or volume rm -f, which removes ${users.length > 1 ? 'them' : 'it'} too)`);
    volumes.remove(name);
    return true;
  });
}

/** Bytes a tree holds, links not followed. */
function treeBytes(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(d, n);
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) stack.push(p);
        else total += st.size;
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return total;
}

/** Docker's volume prune: unused anonymous volumes, or with all every unused volume; label filters narrow it. */
export async function pruneVolumes(registry: Registry, opts: { all?: boolean; filters?: string[] } = {}): Promise<{ removed: string[]; bytes: number }> {
  for (const f of opts.filters ?? []) if (!/^label!?=/.test(f)) throw new TsrunError(`--filter ${f}: volume prune takes label=KEY[=VALUE] and label!=KEY[=VALUE]`);
  const volumes = volumesOf(registry);
  return volumes.locked(() => {
    volumes.sweep();
    const removed: string[] = [];
    let bytes = 0;
    for (const v of volumes.list()) {
      if (!opts.all && !isAnonymous(v)) continue;
      if (!(opts.filters ?? []).every((f) => labelMatches(v, f))) continue;
      if (volumeUsers(registry, v.name).length) continue;
      // A bind volume's directory is the host's: it stays, and frees nothing.
      if (v.options.type !== 'none') bytes += treeBytes(volumes.source(v));
      volumes.remove(v.name);
      removed.push(v.name);
    }
    return { removed, bytes };
  });
}

function labelMatches(v: VolumeRecord, filter: string): boolean {
  const negate = filter.startsWith('label!=');
  const value = filter.slice(negate ? 7 : 6);
  const eq = value.indexOf('=');
  const has = eq < 0 ? value in v.labels : v.labels[value.slice(0, eq)] === value.slice(eq + 1);
  return negate ? !has : has;
}
