// rmi, image inspect and image prune: the image store's upkeep.
import fs = require('node:fs');
import path = require('node:path');
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { ImageStore } from '../image/store';
import type { Manifest } from '../image/types';
import { globals } from './common';

/** Images that kept containers (run without --rm) still use. */
function imagesInUse(store: ImageStore): Set<string> {
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

function rmi(store: ImageStore, names: string[], force: boolean) {
  const used = imagesInUse(store);
  for (const name of names) {
    const rec = store.find(name);
    if (!rec) throw new TsrunError(`image "${name}" not found`);
    if (used.has(rec.id) && !force) throw new TsrunError(`image "${name}" (${rec.id.slice(7, 19)}) is used by a container; remove the container or use -f`);
    const byName = rec.names.find((n) => n === name || n.endsWith(`/${name}`) || n.endsWith(`/${name}:latest`));
    if (byName && rec.names.length > 1) {
      store.untag(byName);
      process.stdout.write(`Untagged: ${byName}\n`);
    } else {
      store.removeImage(rec.id);
      process.stdout.write(`Deleted: ${rec.id}\n`);
    }
  }
}

/** Removes layer directories and blobs that no image refers to. */
export function prune(store: ImageStore): { layers: number; blobs: number; temporaries: number } {
  return store.locked(() => {
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const r of store.records()) {
      const m = store.readJson<Manifest>(r.manifestDigest);
      keepBlobs.add(r.manifestDigest.slice(7));
      keepBlobs.add(m.config.digest.slice(7));
      for (const l of m.layers) keepBlobs.add(l.digest.slice(7));
      for (const d of store.readJson<{ rootfs: { diff_ids: string[] } }>(m.config.digest).rootfs.diff_ids) keepLayers.add(d.slice(7));
    }
    let layers = 0;
    for (const hex of store.unpackedLayers()) if (!keepLayers.has(hex)) (store.removeLayer(hex), layers++);
    let blobs = 0;
    const blobDir = path.join(store.root, 'blobs', 'sha256');
    for (const hex of fs.existsSync(blobDir) ? fs.readdirSync(blobDir) : []) if (!keepBlobs.has(hex)) (fs.rmSync(path.join(blobDir, hex)), blobs++);
    return { layers, blobs, temporaries: store.removeStaleTemporaries() };
  });
}

export function register(program: Command) {
  program
    .command('rmi')
    .description('remove images (untag when a name is one of several)')
    .argument('<image...>', 'image names or ids')
    .option('-f, --force', 'remove even if a container uses it')
    .action((names: string[], opts: { force?: boolean }, cmd: Command) => rmi(new ImageStore(globals(cmd).storage), names, !!opts.force));

  const image = program.command('image').description('manage images');
  image
    .command('inspect')
    .description('print an image\'s record, manifest and config as JSON')
    .argument('<image...>', 'image names or ids')
    .action((names: string[], _o: unknown, cmd: Command) => {
      const store = new ImageStore(globals(cmd).storage);
      process.stdout.write(JSON.stringify(names.map((n) => {
        const img = store.get(n);
        return { Id: img.record.id, RepoTags: img.record.names, ManifestDigest: img.record.manifestDigest, Created: img.record.created, Manifest: img.manifest, Config: img.config };
      }), null, 2) + '\n');
    });
  image
    .command('prune')
    .description('remove unpacked layers and blobs that no image uses, and what killed loads left half-done')
    .action((_o: unknown, cmd: Command) => {
      const r = prune(new ImageStore(globals(cmd).storage));
      process.stdout.write(`removed ${r.layers} layer director${r.layers === 1 ? 'y' : 'ies'}, ${r.blobs} blob${r.blobs === 1 ? '' : 's'} and ${r.temporaries} stale temporar${r.temporaries === 1 ? 'y' : 'ies'}\n`);
    });
  image
    .command('ls')
    .description('list images (as `tsrun images`)')
    .action(async () => {
      await program.parseAsync(['node', 'tsrun', 'images']);
    });
}
