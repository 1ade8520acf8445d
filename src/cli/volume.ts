// volume create/ls/inspect/rm/prune: thin over src/volume/.
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { createVolume, inspectVolume, listVolumes, pruneVolumes, removeVolume, volumesOf } from '../volume/manage';
import { printTable, registryOf } from './common';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function pairs(list: string[] = [], what: string): Record<string, string> {
  return Object.fromEntries(list.map((l) => {
    const eq = l.indexOf('=');
    if (what === '--opt' && eq <= 0) throw new TsrunError(`--opt ${l}: expected KEY=VALUE (type=tmpfs, device=tmpfs, o=size=100m)`);
    return eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
  }));
}

/** Docker's "1.2MB" style, powers of 1000 as Docker prints them. */
function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i ? v.toFixed(3).replace(/\.?0+$/, '') : v}${units[i]}`;
}

export function register(program: Command) {
  const volume = program.command('volume').description('manage volumes: data kept in the store that outlives containers');
  volume
    .command('create')
    .description('make a volume (a name is made up when none is given); an existing one is left as it is')
    .argument('[name]')
    .option('-d, --driver <driver>', 'local (the only driver)', 'local')
    .option('--label <key=value>', 'a label', collect)
    .option('-o, --opt <key=value>', 'a driver option: type=tmpfs (device=tmpfs, o=size=64m,uid=1000), or type=none,o=bind,device=HOST-DIR', collect)
    .action(async (name: string | undefined, opts: { driver: string; label?: string[]; opt?: string[] }, cmd: Command) => {
      const v = await createVolume(registryOf(cmd), name, { driver: opts.driver, labels: pairs(opts.label, '--label'), options: pairs(opts.opt, '--opt') });
      process.stdout.write(`${v.name}\n`);
    });
  volume
    .command('ls')
    .alias('list')
    .description('list volumes')
    .option('-q, --quiet', 'only names')
    .option('-f, --filter <filter>', 'dangling=true|false, name=TEXT, label=KEY[=VALUE], driver=local', collect)
    .option('--format <format>', 'table or json', 'table')
    .action((opts: { quiet?: boolean; filter?: string[]; format: string }, cmd: Command) => {
      if (opts.format !== 'table' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      const registry = registryOf(cmd);
      const vols = listVolumes(registry, opts.filter);
      if (opts.quiet) return void process.stdout.write(vols.map((v) => `${v.name}\n`).join(''));
      if (opts.format === 'json') {
        const volumes = volumesOf(registry);
        return void process.stdout.write(vols.map((v) => `${JSON.stringify({ Driver: v.driver, Labels: Object.entries(v.labels).map(([k, x]) => `${k}=${x}`).join(','), Mountpoint: volumes.source(v), Name: v.name, Scope: 'local' })}\n`).join(''));
      }
      printTable([['DRIVER', 'VOLUME NAME'], ...vols.map((v) => [v.driver, v.name])]);
    });
  volume
    .command('inspect')
    .description('print volumes as JSON')
    .argument('<volume...>')
    .action((names: string[], _o: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      process.stdout.write(`${JSON.stringify(names.map((n) => inspectVolume(registry, n)), null, 2)}\n`);
    });
  volume
    .command('rm')
    .alias('remove')
    .description('remove volumes no container uses')
    .argument('<volume...>')
    .option('-f, --force', 'also remove the containers that use it; a missing volume is no error')
    .action(async (names: string[], opts: { force?: boolean }, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const n of names) if (await removeVolume(registry, n, { force: opts.force })) process.stdout.write(`${n}\n`);
    });
  volume
    .command('prune')
    .description('remove the anonymous volumes no container uses (with -a, every unused volume)')
    .option('-a, --all', 'named volumes too')
    .option('--filter <filter>', 'label=KEY[=VALUE] or label!=KEY[=VALUE]', collect)
    .option('-f, --force', 'do not ask (tsrun never asks)')
    .action(async (opts: { all?: boolean; filter?: string[] }, cmd: Command) => {
      const { removed, bytes } = await pruneVolumes(registryOf(cmd), { all: opts.all, filters: opts.filter });
      process.stdout.write(`${removed.length ? `Deleted Volumes:\n${removed.map((n) => `${n}\n`).join('')}\n` : ''}Total reclaimed space: ${humanBytes(bytes)}\n`);
    });
}
