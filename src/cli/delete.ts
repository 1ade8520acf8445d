import type { Command } from 'commander';
import { deleteContainer } from '../container/delete';
import { globals, registryOf } from './common';

export function register(program: Command) {
  program
    .command('delete')
    .description('delete a stopped container; --force kills it first')
    .argument('<id>', 'container id')
    .option('-f, --force', 'kill the container if it is still created or running')
    .action((id: string, opts: { force?: boolean }, cmd: Command) => deleteContainer(registryOf(cmd).resolveExact(id), { force: opts.force, root: globals(cmd).root }));
}
