import type { Command } from 'commander';
import { readHealth } from '../container/health';
import { watchEvents } from '../container/resources';
import { globals, registryOf } from './common';

export function register(program: Command) {
  program
    .command('events')
    .description('print a JSON line for each OOM kill in a container, each change of its health, and one when it stops')
    .argument('<id>', 'container id')
    .option('--interval <ms>', 'how often to look', '100')
    .action(async (ref: string, opts: { interval: string }, cmd: Command) => {
      const registry = registryOf(cmd);
      const id = registry.resolve(ref);
      const health = registry.isManaged(id) ? () => (registry.isManaged(id) ? readHealth(registry, registry.read(id))?.Status : undefined) : undefined;
      await watchEvents(id, (e) => process.stdout.write(JSON.stringify(e) + '\n'), { root: globals(cmd).root, intervalMs: Number(opts.interval), health });
    });
}
