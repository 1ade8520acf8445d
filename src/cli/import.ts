import type { Command } from 'commander';
import { familiarName } from '../image/reference';
import { importRootfs } from '../image/import';
import { ImageStore } from '../image/store';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('import')
    .description('make a one-layer image from a root filesystem tarball (.tar, .tar.gz or .tar.zst)')
    .argument('<file>', 'the tarball')
    .argument('<name>', 'image name[:tag]')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL', (v: string, p: string[] = []) => [...p, v])
    .action(async (file: string, name: string, opts: { change?: string[] }, cmd: Command) => {
      const rec = await importRootfs(new ImageStore(globals(cmd).storage), file, name, opts.change ?? []);
      process.stdout.write(`${rec.id}\n`);
      void familiarName;
    });
}
