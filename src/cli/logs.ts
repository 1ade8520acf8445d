import type { Command } from 'commander';
import { parseSince, readLogs } from '../container/logs';
import { TsrunError } from '../errors';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('logs')
    .description("what a container wrote: stdout to stdout, stderr to stderr")
    .argument('<id>', 'container id, name or id prefix')
    .option('-f, --follow', 'keep printing new output until the container stops')
    .option('-n, --tail <lines>', 'only the last N lines ("all" for every line)', 'all')
    .option('-t, --timestamps', 'prefix each line with the time it was written')
    .option('--since <time>', 'only lines since a time (RFC 3339, Unix seconds) or a duration back (10m, 1h)')
    .action(async (ref: string, opts: { follow?: boolean; tail: string; timestamps?: boolean; since?: string }, cmd: Command) => {
      const registry = registryOf(cmd);
      if (opts.tail !== 'all' && !/^\d+$/.test(opts.tail)) throw new TsrunError(`--tail ${opts.tail}: give a number of lines or "all"`);
      await readLogs(
        registry,
        registry.resolve(ref),
        { follow: opts.follow, tail: opts.tail === 'all' ? undefined : Number(opts.tail), since: opts.since ? parseSince(opts.since) : undefined },
        (e) => (e.stream === 'stderr' ? process.stderr : process.stdout).write(opts.timestamps ? `${e.time} ${e.text}` : e.text),
      );
    });
}
