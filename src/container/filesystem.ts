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

export interface ContainerLayers {
  info: ContainerInfo;
  upper: string;
  /** The image's layer directories, top first. */
  lowers: string[];
  /** Where the runtime mounts something (relative, no leading "/"): an empty mount point it made there is no change. */
  mountPoints: Set<string>;
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
  return { info, upper: o.upperdir, lowers, mountPoints };
}

/**
 * Runs fn with the container's processes frozen if it runs (Docker's commit
 * and cp pause it too): its files hold still while they are read.
 */
export async function whileFrozen<T>(registry: Registry, id: string, fn: () => Promise<T>): Promise<T> {
  const rt = registry.runtimeRecord(id);
  const live = registry.live(registry.read(id));
  if (!rt?.cgroup || !live.running || live.paused) return fn();
  await freeze(rt.cgroup);
  try {
    return await fn();
  } finally {
    await thaw(rt.cgroup);
  }
}

/** export: the container's merged filesystem as a tar stream (volumes and binds not included, as Docker's). */
export async function exportContainer(registry: Registry, ref: string, out: NodeJS.WritableStream): Promise<void> {
  const layers = containerLayers(registry, ref);
  const all = [layers.upper, ...layers.lowers];
  await whileFrozen(registry, layers.info.id, async () => {
    const root = mergedRoot(all);
    const top = root.find((d) => d !== null)!;
    await pipeline(packTar(mergedEntries(top, fs.lstatSync(top), root)), out);
  });
}

/** diff: what the container changed, added or deleted, from its writable layer. */
export function containerChanges(registry: Registry, ref: string): Change[] {
  const layers = containerLayers(registry, ref);
  return upperChanges(layers.upper, layers.lowers, layers.mountPoints);
}
