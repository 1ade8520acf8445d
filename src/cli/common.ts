// What every CLI verb shares: the global options and how errors end the process.
import type { Command } from 'commander';
import { TsrunError, EXIT_RUNTIME } from '../errors';

export interface GlobalOptions {
  root?: string;
  storage?: string;
  trace?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** --trace lines go to stderr, so the container's stdout stays its own. */
export function traceSink(opts: GlobalOptions): ((line: string) => void) | undefined {
  return opts.trace ? (line) => process.stderr.write(`tsrun: ${line}\n`) : undefined;
}

/** One line on stderr and the error's exit code. */
export function reportError(e: unknown): number {
  if (e instanceof TsrunError) {
    process.stderr.write(`tsrun: ${e.message}\n`);
    return e.exitCode;
  }
  const err = e as Error;
  process.stderr.write(`tsrun: internal error: ${err?.stack ?? String(e)}\n`);
  return EXIT_RUNTIME;
}
