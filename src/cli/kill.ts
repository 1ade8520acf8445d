import type { Command } from 'commander';
import { killAll, killContainer } from '../container/kill';
import { killManaged } from '../container/stop';
import { parseSignal } from '../process/signals';
import { globals, registryOf } from './common';

export function register(program: Command) {
  program
    .command('kill')
    .description('send a signal to a container: `kill [-s SIGNAL] ID` (Docker; default SIGKILL for image containers) or `kill ID [SIGNAL]` (runc; default SIGTERM)')
    .argument('<id>', 'container id, name or id prefix')
    .argument('[signal]', 'name (TERM, SIGTERM) or number')
    .option('-s, --signal <signal>', 'the signal to send')
    .option('-a, --all', 'signal every process of the container\'s cgroup (runc\'s kill --all)')
    .action(async (ref: string, positional: string | undefined, opts: { signal?: string; all?: boolean }, cmd: Command) => {
      const registry = registryOf(cmd);
      if (opts.all) return killAll(registry.resolveExact(ref), parseSignal(opts.signal ?? positional ?? 'SIGTERM'), globals(cmd).root);
      // An id that is nowhere still goes to the runtime, for runc's own error.
      let id = ref;
      try {
        id = registry.resolve(ref);
      } catch {
        /* reported below */
      }
      const given = opts.signal ?? positional;
      if (registry.isManaged(id)) await killManaged(registry, id, given ? parseSignal(given) : 9);
      else killContainer(id, parseSignal(given ?? 'SIGTERM'), globals(cmd).root);
    });
}
