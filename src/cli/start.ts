import type { Command } from 'commander';
import { startContainer } from '../container/start';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('start')
    .description('start a created container: it execs its command')
    .argument('<id>', 'container id')
    .action((id: string, _opts: unknown, cmd: Command) => startContainer(id, globals(cmd).root));
}
