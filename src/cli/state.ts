import type { Command } from 'commander';
import { containerState } from '../container/state';
import { globals, registryOf } from './common';

export function register(program: Command) {
  program
    .command('state')
    .description('print the state of a container as runtime-spec JSON')
    .argument('<id>', 'container id')
    .action((id: string, _opts: unknown, cmd: Command) => {
      process.stdout.write(JSON.stringify(containerState(registryOf(cmd).resolveExact(id), globals(cmd).root), null, 2) + '\n');
    });
}
