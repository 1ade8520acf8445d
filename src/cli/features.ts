import type { Command } from 'commander';
import { features } from '../spec/features';

export function register(program: Command) {
  program
    .command('features')
    .description('print the runtime-spec features document: what this tsrun carries out')
    .action(() => {
      process.stdout.write(JSON.stringify(features(), null, 2) + '\n');
    });
}
