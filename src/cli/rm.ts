import type { Command } from 'commander';
import { removeContainer } from '../container/remove';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('rm')
    .description('remove containers: their runtime state, cgroups, writable layer, log and name')
    .argument('<id...>', 'container ids, names or id prefixes')
    .option('-f, --force', 'kill a running container first')
    .option('-v, --volumes', 'remove its anonymous volumes too (named volumes stay)')
    .action(async (refs: string[], opts: { force?: boolean; volumes?: boolean }, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const ref of refs) {
        await removeContainer(registry, registry.resolve(ref), { force: opts.force, volumes: opts.volumes });
        process.stdout.write(`${ref}\n`);
      }
    });
}
