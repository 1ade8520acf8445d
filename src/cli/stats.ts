import type { Command } from 'commander';
import { containerStats, type ContainerStats } from '../container/resources';
import { listContainers } from '../container/state';
import { TsrunError } from '../errors';
import { globals, registryOf } from './common';

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)}MiB`;

export function register(program: Command) {
  program
    .command('stats')
    .description('memory, CPU, process and block I/O usage of running containers')
    .argument('[id...]', 'container ids (default: every running one)')
    .option('--no-stream', 'print once and exit')
    .option('--format <format>', 'table or json', 'table')
    .action(async (ids: string[], opts: { stream: boolean; format: string }, cmd: Command) => {
      const root = globals(cmd).root;
      if (opts.format !== 'table' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      const registry = registryOf(cmd);
      const resolved = ids.map((id) => registry.resolve(id));
      const nameOf = (id: string) => (registry.isManaged(id) ? registry.read(id).name : id);
      const targets = () => (resolved.length ? resolved : listContainers(root).filter((c) => c.status === 'running' || c.status === 'paused').map((c) => c.id));
      const stream = opts.stream && process.stdout.isTTY && opts.format === 'table';
      let last = new Map<string, { cpu: number; at: number }>();
      for (;;) {
        const now = Date.now();
        const rows: (ContainerStats & { name: string; cpuPercent: number | null })[] = [];
        const next = new Map<string, { cpu: number; at: number }>();
        for (const id of targets()) {
          let s: ContainerStats;
          try {
            s = containerStats(id, root);
          } catch (e) {
            if (ids.length) throw e;
            continue; // it stopped meanwhile
          }
          const prev = last.get(id);
          next.set(id, { cpu: s.cpuNanos, at: now });
          rows.push({ ...s, name: nameOf(id), cpuPercent: prev ? ((s.cpuNanos - prev.cpu) / 1e6 / Math.max(now - prev.at, 1)) * 100 : null });
        }
        last = next;
        if (opts.format === 'json') process.stdout.write(JSON.stringify(rows) + '\n');
        else {
          const table = [
            ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'PIDS', 'BLOCK I/O'],
            ...rows.map((r) => [r.id.slice(0, 12), r.name, r.cpuPercent === null ? '--' : `${r.cpuPercent.toFixed(2)}%`, `${mib(r.memory.usage)} / ${r.memory.limit === null ? 'unlimited' : mib(r.memory.limit)}`, `${r.pids.current}${r.pids.limit === null ? '' : ` / ${r.pids.limit}`}`, `${mib(r.blockIO.read)} / ${mib(r.blockIO.write)}`]),
          ];
          const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
          if (stream) process.stdout.write('\x1b[H\x1b[2J');
          process.stdout.write(table.map((row) => row.map((v, i) => v.padEnd(w[i])).join('   ').trimEnd()).join('\n') + '\n');
        }
        if (!stream) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
}
