import type { Command } from 'commander';
import { restartContainer, stopContainer } from '../container/stop';
import { TsrunError } from '../errors';
import { parseSignal } from '../process/signals';
import { registryOf } from './common';

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new TsrunError(`--time ${v}: give whole seconds (0 or more)`);
  return n;
}

export function register(program: Command) {
  program
    .command('stop')
    .description("stop containers: the image's stop signal (or SIGTERM), then SIGKILL after the timeout")
    .argument('<id...>', 'container ids, names or id prefixes')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .option('-s, --signal <signal>', 'send this instead of the stop signal')
    .action(async (refs: string[], opts: { time: string; signal?: string }, cmd: Command) => {
      const registry = registryOf(cmd);
      const timeout = seconds(opts.time);
      for (const ref of refs) {
        await stopContainer(registry, registry.resolve(ref), timeout, opts.signal ? parseSignal(opts.signal) : undefined);
        process.stdout.write(`${ref}\n`);
      }
    });
  program
    .command('restart')
    .description('stop containers (as stop does), then start them again')
    .argument('<id...>', 'container ids, names or id prefixes')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(async (refs: string[], opts: { time: string }, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const ref of refs) {
        await restartContainer(registry, registry.resolve(ref), seconds(opts.time));
        process.stdout.write(`${ref}\n`);
      }
    });
}
