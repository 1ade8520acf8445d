import type { Command } from 'commander';
import { containerChanges } from '../container/filesystem';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('diff')
    .description('list what a container changed in its filesystem: A added, C changed, D deleted')
    .argument('<container>')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      process.stdout.write((await containerChanges(registryOf(cmd), ref)).map((c) => `${c.kind} ${c.path}\n`).join(''));
    });
}
