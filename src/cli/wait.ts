import type { Command } from 'commander';
import { waitContainer } from '../container/wait';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('wait')
    .description('wait until containers stop for good (after any restarts) and print their exit codes')
    .argument('<id...>', 'container ids, names or id prefixes')
    .action(async (refs: string[], _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const ref of refs) process.stdout.write(`${await waitContainer(registry, registry.resolve(ref))}\n`);
    });
}
