// rmi and image prune: names go exactly as asked; an image's blobs and
// layers go once no image and no container uses them.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { digestHex } from './digest';
import { formatReference, parseReference } from './reference';
import type { ImageRecord, ImageStore } from './store';
import type { Manifest } from './types';

/** Image ids that kept containers (run without --rm) still use. */
export function imagesInUse(store: ImageStore): Set<string> {
  const used = new Set<string>();
  const dir = store.containersDir();
  for (const id of fs.readdirSync(dir)) {
    try {
      const spec = JSON.parse(fs.readFileSync(path.join(dir, id, 'config.json'), 'utf8'));
      const img = spec.annotations?.['tsrun.image.id'];
      if (img) used.add(img);
    } catch {
      /* not a container dir */
    }
  }
  return used;
}

/** Layer directories (diffID hex) that containers' overlays mount: kept even when their image is gone. */
function layersOfContainers(store: ImageStore): Set<string> {
  const out = new Set<string>();
  const dir = store.containersDir();
  for (const id of fs.readdirSync(dir)) {
    let lowerdirs: string[] = [];
    try {
      lowerdirs = (JSON.parse(fs.readFileSync(path.join(dir, id, 'container.json'), 'utf8')) as { overlay?: { lowerdirs?: string[] } }).overlay?.lowerdirs ?? [];
    } catch {
      continue;
    }
    for (const l of lowerdirs) {
      // layers/<hex>/diff, or l/<short> (a link to ../layers/<hex>/diff).
      let abs = path.isAbsolute(l) ? l : path.join(store.root, l);
      try {
        abs = fs.realpathSync(abs);
      } catch {
        continue;
      }
      const m = /\/layers\/([a-f0-9]{64})\/diff$/.exec(abs);
      if (m) out.add(m[1]);
    }
  }
  return out;
}

/** Blob hexes and layer hexes an image refers to, through all its manifests. */
function referenced(store: ImageStore, recs: ImageRecord[]): { blobs: Set<string>; layers: Set<string> } {
  const blobs = new Set<string>();
  const layers = new Set<string>();
  for (const r of recs) {
    for (const md of r.manifests ?? [r.manifestDigest]) {
      let m: Manifest;
      try {
        m = store.readJson<Manifest>(md);
      } catch {
        continue;
      }
      blobs.add(digestHex(md));
      blobs.add(digestHex(m.config.digest));
      for (const l of m.layers) blobs.add(digestHex(l.digest));
      try {
        for (const d of store.readJson<{ rootfs: { diff_ids: string[] } }>(m.config.digest).rootfs.diff_ids) layers.add(digestHex(d));
      } catch {
        /* the config is gone: its layers are not named here */
      }
    }
  }
  return { blobs, layers };
}

/** The layers (blobs and diffIDs) that build-cache entries keep: a cached step stays usable until builder prune. */
function cacheReferences(store: ImageStore, into: { blobs: Set<string>; layers: Set<string> }) {
  const dir = store.buildCacheDir();
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    try {
      const entry = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { layers: { digest: string }[]; config: { rootfs: { diff_ids: string[] } } };
      for (const l of entry.layers) into.blobs.add(digestHex(l.digest));
      for (const d of entry.config.rootfs.diff_ids) into.layers.add(digestHex(d));
    } catch {
      /* a half-written or foreign file: it keeps nothing */
    }
  }
  return into;
}

/** What records and the build cache keep. */
const kept = (store: ImageStore) => cacheReferences(store, referenced(store, store.records()));

/**
 * What `gone` (records no longer in the store) held that nothing else does:
 * removed. Containers keep the layers their overlays use.
 */
function release(store: ImageStore, gone: ImageRecord[]): { layers: number; blobs: number } {
  const keep = kept(store);
  const mounted = layersOfContainers(store);
  const drop = referenced(store, gone);
  let layers = 0;
  let blobs = 0;
  for (const hex of drop.layers) {
    if (keep.layers.has(hex) || mounted.has(hex) || !fs.existsSync(store.layerDir(`sha256:${hex}`))) continue;
    store.removeLayer(hex);
    layers++;
  }
  for (const hex of drop.blobs) {
    if (keep.blobs.has(hex)) continue;
    const file = path.join(store.root, 'blobs', 'sha256', hex);
    if (fs.existsSync(file)) {
      fs.rmSync(file);
      blobs++;
    }
  }
  return { layers, blobs };
}

export interface RemoveEvent {
  untagged?: string;
  deleted?: string;
}

/**
 * Docker's rmi: a name untags exactly that name; the image goes when its
 * last name does. An id removes the image, refused when it has several
 * names (unless forced) or a container uses it (unless forced: the
 * container keeps its layers).
 */
export function removeImages(store: ImageStore, refs: string[], opts: { force?: boolean } = {}): RemoveEvent[] {
  const used = imagesInUse(store);
  const events: RemoveEvent[] = [];
  for (const ref of refs) {
    const rec = store.find(ref);
    if (!rec) throw new TsrunError(`image "${ref}" not found`);
    if (used.has(rec.id) && !opts.force) throw new TsrunError(`image "${ref}" (${rec.id.slice(7, 19)}) is used by a container; remove the container or use -f`);
    let name: string | undefined;
    try {
      const full = formatReference(parseReference(ref));
      if (rec.names.includes(full)) name = full;
    } catch {
      /* an id, not a name */
    }
    let gone: ImageRecord | undefined;
    if (name) {
      gone = store.untag(name);
      events.push({ untagged: name });
    } else {
      if (rec.names.length > 1 && !opts.force) throw new TsrunError(`image ${rec.id.slice(7, 19)} has several names (${rec.names.join(', ')}): remove them by name, or use -f`);
      gone = store.removeImage(rec.id);
      for (const n of rec.names) events.push({ untagged: n });
    }
    if (gone) {
      store.locked(() => release(store, [gone]));
      events.push({ deleted: gone.id });
    }
  }
  return events;
}

/**
 * image prune: images with no name that no container uses (Docker's
 * dangling ones), then layers and blobs no image and no cached build step
 * uses (containers' layers stay), and what dead processes left in tmp/.
 */
export function pruneImages(store: ImageStore): { images: number; layers: number; blobs: number; temporaries: number } {
  const used = imagesInUse(store);
  let images = 0;
  for (const r of store.records()) if (!r.names.length && !used.has(r.id) && store.removeImage(r.id)) images++;
  return { images, ...removeUnused(store) };
}

/** Layers and blobs no image and no cached build step uses (containers' layers stay), and what dead processes left in tmp/. */
export function removeUnused(store: ImageStore): { layers: number; blobs: number; temporaries: number } {
  return store.locked(() => {
    const keep = kept(store);
    const mounted = layersOfContainers(store);
    let layers = 0;
    for (const hex of store.unpackedLayers()) if (!keep.layers.has(hex) && !mounted.has(hex)) (store.removeLayer(hex), layers++);
    let blobs = 0;
    const blobDir = path.join(store.root, 'blobs', 'sha256');
    for (const hex of fs.existsSync(blobDir) ? fs.readdirSync(blobDir) : []) if (!keep.blobs.has(hex)) (fs.rmSync(path.join(blobDir, hex)), blobs++);
    return { layers, blobs, temporaries: store.removeStaleTemporaries() };
  });
}

/** builder prune: the build cache, then the layers and blobs only it kept. */
export function pruneBuildCache(store: ImageStore): { entries: number; layers: number; blobs: number } {
  const dir = store.buildCacheDir();
  let entries = 0;
  store.locked(() => {
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) (fs.rmSync(path.join(dir, f), { force: true }), entries++);
  });
  const r = removeUnused(store);
  return { entries, layers: r.layers, blobs: r.blobs };
}
