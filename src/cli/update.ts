import type { Command } from 'commander';
import { resourcesFromFlags, type ResourceFlags } from '../cgroup/resources';
import { updateContainer } from '../container/resources';
import { TsrunError } from '../errors';
import { globals, resolveRef, resourceOptions } from './common';

export function register(program: Command) {
  resourceOptions(program.command('update').description('change the resource limits of a running container, as `runc update`').argument('<id>', 'container id')).action((id: string, flags: ResourceFlags, cmd: Command) => {
      const resources = resourcesFromFlags(flags);
      if (!Object.keys(resources).length) throw new TsrunError('update: give at least one limit, such as --memory 256m or --pids-limit 100');
      updateContainer(resolveRef(cmd, id), resources, globals(cmd).root);
    });
}
