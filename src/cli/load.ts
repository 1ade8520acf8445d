import type { Command } from 'commander';
import { familiarName } from '../image/reference';
import { loadImages } from '../image/load';
import { ImageStore } from '../image/store';
import { TsrunError } from '../errors';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('load')
    .description('load images from an oci-archive or docker-archive file, or an OCI layout directory')
    .option('-i, --input <file>', 'the archive (or layout directory); "-" or none: stdin')
    .action(async (opts: { input?: string }, cmd: Command) => {
      const input = opts.input ?? '-';
      const recs = await loadImages(new ImageStore(globals(cmd).storage), input);
      if (!recs.length) throw new TsrunError(`load ${input}: no images in it`);
      for (const r of recs) process.stdout.write(r.names.length ? r.names.map((n) => `Loaded image: ${familiarName(n)}\n`).join('') : `Loaded image ID: ${r.record.id}\n`);
    });
}
