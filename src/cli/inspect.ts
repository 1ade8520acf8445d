import type { Command } from 'commander';
import { inspectContainer } from '../container/inspect';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('inspect')
    .description('a JSON array describing containers: config, state (status, pid, exit code, OOMKilled, times), mounts')
    .argument('<id...>', 'container ids, names or id prefixes')
    .action((refs: string[], _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      process.stdout.write(JSON.stringify(refs.map((ref) => inspectContainer(registry, registry.resolve(ref))), null, 2) + '\n');
    });
}
