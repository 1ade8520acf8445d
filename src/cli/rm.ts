import type { Command } from 'commander';
import { removeContainer } from '../container/remove';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('rm')
    .description('remove containers: their runtime state, cgroups, writable layer, log and name')
    .argument('<id...>', 'container ids, names or id prefixes')
    .option('-f, --force', 'kill a running container first')
    .action(async (refs: string[], opts: { force?: boolean }, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const ref of refs) {
        await removeContainer(registry, registry.resolve(ref), { force: opts.force });
        process.stdout.write(`${ref}\n`);
      }
    });
}
