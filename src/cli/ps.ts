import type { Command } from 'commander';
import { listManaged, parseFilters } from '../container/inspect';
import { TsrunError } from '../errors';
import { printTable, registryOf } from './common';
import { containerPids } from '../container/top';
import { spawnSync } from 'node:child_process';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command) {
  program
    .command('ps')
    .description('list containers made from images: running ones, or all with -a')
    .option('-a, --all', 'include stopped containers')
    .option('-q, --quiet', 'only ids')
    .option('--no-trunc', 'full ids and commands')
    .option('--format <format>', 'table or json', 'table')
    .option('-f, --filter <key=value>', 'name=..., status=created|running|paused|restarting|exited|dead, id=..., health=starting|healthy|unhealthy|none', collect)
    .argument('[id]', 'runc\'s form: the processes of this one container')
    .argument('[ps-options...]', 'with an id: options for ps(1) (default -ef)')
    .passThroughOptions()
    .action((ref: string | undefined, psOptions: string[], opts: { all?: boolean; quiet?: boolean; trunc: boolean; format: string; filter?: string[] }, cmd: Command) => {
      if (opts.format !== 'table' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      if (ref !== undefined) return containerProcesses(cmd, ref, opts.format, psOptions);
      let filter;
      try {
        filter = parseFilters(opts.filter ?? []);
      } catch (e) {
        throw new TsrunError((e as Error).message);
      }
      const rows = listManaged(registryOf(cmd), { all: opts.all, filter });
      const id = (s: string) => (opts.trunc ? s.slice(0, 12) : s);
      if (opts.quiet) {
        if (rows.length) process.stdout.write(rows.map((r) => id(r.id)).join('\n') + '\n');
        return;
      }
      if (opts.format === 'json') {
        process.stdout.write(rows.map((r) => JSON.stringify({ ID: r.id, Names: r.name, Image: r.image, Command: r.command, CreatedAt: r.created, State: r.status, Status: r.statusText, ExitCode: r.exitCode, Pid: r.pid, Ports: r.ports })).join('\n') + (rows.length ? '\n' : ''));
        return;
      }
      const cmdText = (c: string) => JSON.stringify(opts.trunc && c.length > 20 ? c.slice(0, 19) + '…' : c);
      printTable([['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'], ...rows.map((r) => [id(r.id), r.image, cmdText(r.command), `${humanAgo(r.created)}`, r.statusText, r.ports, r.name])]);
    });
}

/** runc's ps: the container's pids as JSON, or ps(1)'s lines of those pids under its header. */
function containerProcesses(cmd: Command, ref: string, format: string, psOptions: string[]) {
  const registry = registryOf(cmd);
  const pids = containerPids(registry, registry.resolveExact(ref), { stopped: true });
  if (format === 'json') {
    process.stdout.write(JSON.stringify(pids) + '\n');
    return;
  }
  const r = spawnSync('ps', psOptions.length ? psOptions : ['-ef'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error || r.status !== 0) throw new TsrunError(`ps ${psOptions.join(' ') || '-ef'}: ${r.error?.message ?? r.stderr.trim()}`);
  const [header = '', ...lines] = r.stdout.split('\n').filter(Boolean);
  const column = header.trim().split(/\s+/).indexOf('PID');
  if (column < 0) throw new TsrunError(`ps ${psOptions.join(' ')}: its header has no PID column: ${header.trim()}`);
  const ours = new Set(pids);
  process.stdout.write([header, ...lines.filter((l) => ours.has(Number(l.trim().split(/\s+/)[column])))].join('\n') + '\n');
}

function humanAgo(t: string): string {
  const s = Math.round((Date.now() - Date.parse(t)) / 1000);
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 172800) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}
