import type { Command } from 'commander';
import { commitContainer } from '../image/commit';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('commit')
    .description('make an image of a container: its writable layer on top of its image, its command and environment as the config')
    .argument('<container>')
    .argument('[image]', 'name[:tag] for the new image')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL', (v: string, p: string[] = []) => [...p, v])
    .option('-m, --message <text>', 'the commit message (the history entry\'s comment)')
    .option('-a, --author <name>', 'the author')
    // Docker's -p is a bare flag and --pause takes =false: two options, so `commit -p CTR IMG` reads as Docker's does.
    .option('-p', 'freeze a running container while its layer is read (the default)')
    .option('--pause <bool>', 'true (the default) or false, which is refused for a running container', 'true')
    .action(async (ref: string, name: string | undefined, opts: { change?: string[]; message?: string; author?: string; pause: string }, cmd: Command) => {
      const rec = await commitContainer(registryOf(cmd), ref, name, { changes: opts.change, message: opts.message, author: opts.author, pause: !['false', '0'].includes(opts.pause) });
      process.stdout.write(`${rec.id}\n`);
    });
}
