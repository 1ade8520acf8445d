// A container's filesystem seen from the host, for diff, commit and export:
// its writable layer (the overlay's upper directory) above the image's
// layers. Nothing is mounted: the upper directory has the layers' own
// format (whiteouts, opaque directories), so the merged view is read as
// the image's is.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { Spec } from '../spec/types';
import { pipeline } from 'node:stream/promises';
import { freeze, thaw } from '../cgroup/ops';
import { mergedRoot } from '../image/merged';
import { mergedEntries, packTar, upperChanges, type Change } from '../image/tree';
import type { ContainerInfo, Registry } from './registry';
import { toContainerId, type IdMap } from '../spec/id-map';

export interface ContainerLayers {
  info: ContainerInfo;
  upper: string;
  /** The image's layer directories, top first. */
  lowers: string[];
  /** Where the runtime mounts something (relative, no leading "/"): an empty mount point it made there is no change. */
  mountPoints: Set<string>;
  /** A user namespace's maps: files the container made are owned by host ids. */
  uidMap: IdMap;
  gidMap: IdMap;
}

export function containerLayers(registry: Registry, ref: string): ContainerLayers {
  const id = registry.resolve(ref);
  if (!registry.isManaged(id)) throw new TsrunError(`container ${ref} was made from a bundle (create/run --bundle): it has no image layers`);
  const info = registry.read(id);
  const o = info.overlay;
  // Short names are the store's own links (l/ID -> ../layers/HEX/diff): read through to the directories.
  const lowers = o.lowerdirs.map((l) => fs.realpathSync(path.isAbsolute(l) ? l : path.join(o.cwd ?? registry.images.root, l)));
  let spec: Spec | undefined;
  try {
    spec = JSON.parse(fs.readFileSync(registry.file(id, 'config.json'), 'utf8')) as Spec;
  } catch {
    spec = undefined;
  }
  const mountPoints = new Set((spec?.mounts ?? []).map((m) => path.posix.normalize(m.destination).replace(/^\/+/, '').replace(/\/+$/, '')).filter(Boolean));
  return { info, upper: o.upperdir, lowers, mountPoints, uidMap: spec?.linux?.uidMappings, gidMap: spec?.linux?.gidMappings };
}

/**
 * Runs fn while the container's files hold still: a stopped one under its
 * lock (start waits), a running one frozen (cgroup freezer, as Docker's
 * commit pauses it) under the runtime's lock too (unpause waits). A running
 * container's writable layer is never read unfrozen: it could swap a
 * directory for a symlink to a host path while it is walked.
 */
export async function whileStill<T>(registry: Registry, id: string, what: string, fn: () => Promise<T>): Promise<T> {
  return registry.lock(id, async () => {
    const live = registry.live(registry.read(id));
    if (!live.running) return fn();
    const rt = registry.runtimeRecord(id);
    if (!rt?.cgroup?.dirs.length) throw new TsrunError(`${what}: container ${id.slice(0, 12)} runs but has no cgroup to freeze it in; stop it first`);
    return registry.runtime.lock(id, async () => {
      if (live.paused) return fn();
      await freeze(rt.cgroup!);
      try {
        return await fn();
      } finally {
        await thaw(rt.cgroup!);
      }
    });
  });
}

/** A failure reading or writing a container's files, as one line. */
export function fsError(what: string, e: unknown): TsrunError {
  if (e instanceof TsrunError) return e;
  const err = e as NodeJS.ErrnoException;
  return new TsrunError(`${what}: ${err.code ? `${err.code}${err.path ? ` (${err.path.replace(/^\/proc\/self\/fd\/\d+\/?/, '')})` : ''}` : err.message}`);
}

/** export: the container's merged filesystem as a tar stream (volumes and binds not included, as Docker's). */
export async function exportContainer(registry: Registry, ref: string, out: NodeJS.WritableStream): Promise<void> {
  const layers = containerLayers(registry, ref);
  const all = [layers.upper, ...layers.lowers];
  const owner = upperOwner(layers);
  await whileStill(registry, layers.info.id, 'export', async () => {
    const root = mergedRoot(all);
    const top = root.find((d) => d !== null)!;
    try {
      await pipeline(packTar(mergedEntries(top, fs.lstatSync(top), root, { owner })), out);
    } catch (e) {
      throw fsError(`export ${layers.info.name}`, e);
    }
  });
}

/** diff: what the container changed, added or deleted, from its writable layer. */
export async function containerChanges(registry: Registry, ref: string): Promise<Change[]> {
  const layers = containerLayers(registry, ref);
  return whileStill(registry, layers.info.id, 'diff', async () => {
    try {
      return upperChanges(layers.upper, layers.lowers, layers.mountPoints);
    } catch (e) {
      throw fsError(`diff ${layers.info.name}`, e);
    }
  });
}

/**
 * Owners as the container sees them: what a user-namespace container made
 * in its writable layer belongs to host ids, mapped back here; the image's
 * layers hold the container's ids already.
 */
export function upperOwner(layers: ContainerLayers): ((abs: string, st: fs.Stats) => { uid: number; gid: number }) | undefined {
  const { uidMap, gidMap } = layers;
  if (!uidMap?.length) return undefined;
  const prefix = `${layers.upper}/`;
  return (abs, st) => (abs.startsWith(prefix) || abs === layers.upper ? { uid: toContainerId(uidMap, st.uid), gid: toContainerId(gidMap, st.gid) } : { uid: st.uid, gid: st.gid });
}
