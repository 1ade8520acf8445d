import type { Command } from 'commander';
import { watchEvents } from '../container/resources';
import { globals, resolveRef } from './common';

export function register(program: Command) {
  program
    .command('events')
    .description('print a JSON line for each OOM kill in a container, and one when it stops')
    .argument('<id>', 'container id')
    .option('--interval <ms>', 'how often to look', '100')
    .action(async (id: string, opts: { interval: string }, cmd: Command) => {
      await watchEvents(resolveRef(cmd, id), (e) => process.stdout.write(JSON.stringify(e) + '\n'), { root: globals(cmd).root, intervalMs: Number(opts.interval) });
    });
}
