import type { Command } from 'commander';
import { containerExited } from '../container/exited';
import { registryOf } from './common';

// Run by a container's monitor once it has written exit.json; not for users.
export function register(program: Command) {
  program
    .command('container-exited', { hidden: true })
    .description("record a detached container's exit, clean up, and apply --rm or the restart policy (run by the monitor)")
    .argument('<id>', 'container id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await containerExited(registryOf(cmd), id);
    });
}
