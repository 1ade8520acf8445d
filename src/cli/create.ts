import type { Command } from 'commander';
import { createContainer } from '../container/create';
import { globals, traceSink } from './common';

export function register(program: Command) {
  program
    .command('create')
    .description('create a container from a bundle; it waits for `start`')
    .argument('<id>', 'container id')
    .option('-b, --bundle <dir>', 'bundle directory holding config.json', '.')
    .option('--pid-file <file>', 'write the container process id here')
    .action(async (id: string, opts: { bundle: string; pidFile?: string }, cmd: Command) => {
      const g = globals(cmd);
      const created = await createContainer({ id, bundle: opts.bundle, pidFile: opts.pidFile, root: g.root, trace: traceSink(g) });
      created.process.detach();
    });
}
