import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { familiarName } from '../image/reference';
import { ImageStore } from '../image/store';
import type { Manifest } from '../image/types';
import { globals, printTable } from './common';

export function register(program: Command) {
  program
    .command('images')
    .description('list the images in the store')
    .option('--format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'image ids only')
    .action((opts: { format: string; quiet?: boolean }, cmd: Command) => {
      const store = new ImageStore(globals(cmd).storage);
      const rows = store.records().flatMap((r) => {
        const manifest = store.readJson<Manifest>(r.manifestDigest);
        const size = manifest.layers.reduce((n, l) => n + l.size, 0);
        const names = r.names.length ? r.names : ['<none>:<none>'];
        return names.map((n) => {
          const short = familiarName(n);
          const colon = short.lastIndexOf(':');
          return { repository: colon > 0 ? short.slice(0, colon) : short, tag: colon > 0 ? short.slice(colon + 1) : '', name: n, id: r.id, created: r.created, size };
        });
      });
      if (opts.quiet) return void process.stdout.write([...new Set(rows.map((r) => r.id.slice(7, 19)))].map((x) => x + '\n').join(''));
      if (opts.format === 'json') return void process.stdout.write(JSON.stringify(rows) + '\n');
      if (opts.format !== 'table') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      printTable([['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.repository, r.tag, r.id.slice(7, 19), r.created.slice(0, 19).replace('T', ' '), `${(r.size / 1e6).toFixed(1)}MB`])]);
    });
}
