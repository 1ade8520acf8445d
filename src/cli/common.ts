// What every CLI verb shares: the global options and how errors end the process.
import type { Command } from 'commander';
import type { RunResult } from '../container/run';
import { Registry } from '../container/registry';
import { TsrunError, EXIT_RUNTIME } from '../errors';
import { log, logging } from './log';

export interface GlobalOptions {
  root?: string;
  storage?: string;
  trace?: boolean;
  debug?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Image containers and the runtime's, as the global --storage and --root name them. */
export function registryOf(cmd: Command): Registry {
  const g = globals(cmd);
  return new Registry(g.storage, g.root);
}

/** A container id from what the user typed: an id, a name or a unique id prefix. */
export function resolveRef(cmd: Command, ref: string): string {
  return registryOf(cmd).resolve(ref);
}

/** --trace lines go to stderr, so the container's stdout stays its own. */
export function traceSink(opts: GlobalOptions): ((line: string) => void) | undefined {
  if (opts.trace) return (line) => process.stderr.write(`tsrun: ${line}\n`);
  // runc's --debug: the steps go to the log where there is one.
  if (opts.debug) return logging() ? (line) => log('debug', line) : (line) => process.stderr.write(`tsrun: ${line}\n`);
  return undefined;
}

/** One line on stderr and the error's exit code. */
export function reportError(e: unknown): number {
  if (e instanceof TsrunError) {
    process.stderr.write(`tsrun: ${e.message}\n`);
    log('error', e.message);
    return e.exitCode;
  }
  const err = e as Error;
  process.stderr.write(`tsrun: internal error: ${err?.stack ?? String(e)}\n`);
  log('error', `internal error: ${err?.message ?? String(e)}`);
  return EXIT_RUNTIME;
}

/** Columns padded to the widest cell; the last column is not padded. */
export function printTable(rows: string[][]) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  process.stdout.write(rows.map((r) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]))).join('   ')).join('\n') + '\n');
}

/** Docker's resource flags, shared by run and update. */
export function resourceOptions(cmd: Command): Command {
  return cmd
    .option('-m, --memory <bytes>', 'memory limit (512m, 1g)')
    .option('--memory-swap <bytes>', 'memory plus swap limit (-1: unlimited swap)')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <number>', 'CPU quota in CPUs (0.5, 2)')
    .option('-c, --cpu-shares <shares>', 'relative CPU weight (2-262144)')
    .option('--cpuset-cpus <list>', 'CPUs allowed (0-3, 0,1)')
    .option('--cpuset-mems <list>', 'memory nodes allowed')
    .option('--pids-limit <n>', 'most processes at once (-1: unlimited)')
    .option('--blkio-weight <weight>', 'relative block I/O weight (10-1000)');
}

/** A foreground run says when the OOM killer ended it. */
export function reportExit(r: RunResult) {
  if (r.oomKilled) process.stderr.write(`tsrun: the container was killed by the OOM killer (its memory limit was reached); exit status ${r.exitCode}\n`);
}
