import type { Command } from 'commander';
import { startContainer } from '../container/start';
import { startStopped } from '../container/stop';
import { globals, registryOf, traceSink } from './common';

export function register(program: Command) {
  program
    .command('start')
    .description('start containers: a created runtime container execs its command (runc); a stopped image container runs again with its files as it left them (Docker)')
    .argument('<id...>', 'container ids, names or id prefixes')
    .action(async (refs: string[], _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const ref of refs) {
        const id = registry.resolve(ref);
        if (registry.isManaged(id)) {
          await startStopped(registry, id, { trace: traceSink(globals(cmd)) });
          process.stdout.write(`${ref}\n`);
        } else startContainer(id, globals(cmd).root);
      }
    });
}
