import type { Command } from 'commander';
import { killContainer } from '../container/kill';
import { parseSignal } from '../process/signals';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('kill')
    .description('send a signal to a container (default SIGTERM)')
    .argument('<id>', 'container id')
    .argument('[signal]', 'name (TERM, SIGTERM) or number', 'SIGTERM')
    .action((id: string, signal: string, _opts: unknown, cmd: Command) => killContainer(id, parseSignal(signal), globals(cmd).root));
}
