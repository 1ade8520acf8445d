// rmi, image inspect and image prune: the image store's upkeep.
import type { Command } from 'commander';
import { pruneImages, removeImages } from '../image/remove';
import { ImageStore } from '../image/store';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('rmi')
    .description('remove images (untag when a name is one of several)')
    .argument('<image...>', 'image names or ids')
    .option('-f, --force', 'remove even if a container uses it')
    .action((names: string[], opts: { force?: boolean }, cmd: Command) => {
      for (const e of removeImages(new ImageStore(globals(cmd).storage), names, { force: opts.force })) process.stdout.write(e.untagged ? `Untagged: ${e.untagged}\n` : `Deleted: ${e.deleted}\n`);
    });

  const image = program.command('image').description('manage images');
  image
    .command('inspect')
    .description('print an image\'s record, manifest and config as JSON')
    .argument('<image...>', 'image names or ids')
    .action((names: string[], _o: unknown, cmd: Command) => {
      const store = new ImageStore(globals(cmd).storage);
      process.stdout.write(JSON.stringify(names.map((n) => {
        const img = store.get(n);
        return { Id: img.record.id, RepoTags: img.record.names, RepoDigests: img.record.repoDigests ?? [], ManifestDigest: img.record.manifestDigest, Created: img.record.created, Manifest: img.manifest, Config: img.config };
      }), null, 2) + '\n');
    });
  image
    .command('prune')
    .description('remove images with no name that no container uses, unpacked layers and blobs that nothing uses, and what killed loads left half-done')
    .action((_o: unknown, cmd: Command) => {
      const r = pruneImages(new ImageStore(globals(cmd).storage));
      process.stdout.write(`removed ${r.images} untagged image${r.images === 1 ? '' : 's'}, ${r.layers} layer director${r.layers === 1 ? 'y' : 'ies'}, ${r.blobs} blob${r.blobs === 1 ? '' : 's'} and ${r.temporaries} stale temporar${r.temporaries === 1 ? 'y' : 'ies'}\n`);
    });
  image
    .command('ls')
    .description('list images (as `tsrun images`)')
    .action(async () => {
      await program.parseAsync(['node', 'tsrun', 'images']);
    });
}
