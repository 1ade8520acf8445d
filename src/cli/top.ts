import type { Command } from 'commander';
import { topContainer } from '../container/top';
import { printTable, registryOf } from './common';

export function register(program: Command) {
  program
    .command('top')
    .description("the processes of a container (every process in its cgroup), with host pids")
    .argument('<id>', 'container id, name or id prefix')
    .action((ref: string, _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      const rows = topContainer(registry, registry.resolve(ref));
      printTable([['UID', 'PID', 'PPID', 'STIME', 'TIME', 'CMD'], ...rows.map((r) => [r.user, String(r.pid), String(r.ppid), r.stime, r.time, r.cmd])]);
    });
}
