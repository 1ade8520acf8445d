import type { Command } from 'commander';
import { runHealthcheck } from '../container/health';
import { registryOf } from './common';

// `healthcheck run` is what a container's monitor starts at each interval; people may run it too (podman's verb).
export function register(program: Command) {
  const hc = program.command('healthcheck').description("run a container's health check");
  hc.command('run')
    .description('probe now, record the result, and exit 0 if the probe passed (1 if it failed)')
    .argument('<container>', 'container id or name')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      const h = await runHealthcheck(registry, registry.resolve(ref));
      const last = h.Log[h.Log.length - 1];
      if (last?.ExitCode === 0) return;
      process.stdout.write(`${h.Status}\n`);
      process.exitCode = 1;
    });
}
