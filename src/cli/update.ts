import type { Command } from 'commander';
import { resourcesFromFlags, type ResourceFlags } from '../cgroup/resources';
import { updateContainer } from '../container/resources';
import { TsrunError } from '../errors';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('update')
    .description('change the resource limits of a running container, as `runc update`')
    .argument('<id>', 'container id')
    .option('-m, --memory <bytes>', 'memory limit (512m, 1g)')
    .option('--memory-swap <bytes>', 'memory plus swap limit')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <number>', 'CPU quota in CPUs')
    .option('-c, --cpu-shares <shares>', 'relative CPU weight')
    .option('--cpuset-cpus <list>', 'CPUs allowed')
    .option('--cpuset-mems <list>', 'memory nodes allowed')
    .option('--pids-limit <n>', 'most processes at once')
    .option('--blkio-weight <weight>', 'relative block I/O weight')
    .action((id: string, flags: ResourceFlags, cmd: Command) => {
      const resources = resourcesFromFlags(flags);
      if (!Object.keys(resources).length) throw new TsrunError('update: give at least one limit, such as --memory 256m or --pids-limit 100');
      updateContainer(id, resources, globals(cmd).root);
    });
}
