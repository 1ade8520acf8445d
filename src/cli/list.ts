import type { Command } from 'commander';
import { listContainers } from '../container/state';
import { TsrunError } from '../errors';
import { globals, printTable } from './common';

export function register(program: Command) {
  program
    .command('list')
    .description('list the containers under the state root')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'ids only')
    .action((opts: { format: string; quiet?: boolean }, cmd: Command) => {
      const list = listContainers(globals(cmd).root);
      if (opts.quiet) return void process.stdout.write(list.map((c) => c.id + '\n').join(''));
      if (opts.format === 'json') return void process.stdout.write(JSON.stringify(list) + '\n');
      if (opts.format !== 'table') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      printTable([['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...list.map((c) => [c.id, String(c.pid ?? 0), c.status, c.bundle, c.created, c.owner])]);
    });
}
