import type { Command } from 'commander';
import { renameContainer } from '../container/rename';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('rename')
    .description('give a container a new name')
    .argument('<id>', 'container id, name or id prefix')
    .argument('<new-name>', 'the new name')
    .action(async (ref: string, name: string, _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      await renameContainer(registry, registry.resolve(ref), name);
    });
}
