import type { Command } from 'commander';
import { pauseContainer, resumeContainer } from '../container/resources';
import { globals, resolveRef } from './common';

export function register(program: Command) {
  program
    .command('pause')
    .description('freeze every process of a container')
    .argument('<id...>', 'container ids')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      for (const id of ids) await pauseContainer(resolveRef(cmd, id), globals(cmd).root);
    });
  for (const name of ['resume', 'unpause'])
    program
      .command(name)
      .description('thaw a paused container')
      .argument('<id...>', 'container ids')
      .action(async (ids: string[], _o: unknown, cmd: Command) => {
        for (const id of ids) await resumeContainer(resolveRef(cmd, id), globals(cmd).root);
      });
}
