import type { Command } from 'commander';
import { removeImageContainer } from '../container/run-image';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('rm')
    .description('remove stopped containers that `run` kept (run without --rm)')
    .argument('<id...>', 'container ids or names')
    .action((ids: string[], _opts: unknown, cmd: Command) => {
      for (const id of ids) removeImageContainer(id, globals(cmd).storage);
    });
}
