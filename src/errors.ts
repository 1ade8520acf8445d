// Errors that reach the user: one line saying what was done, to what, and
// why, and the exit code the CLI returns for it (DESIGN section 6).
import os = require('node:os');

/** tsrun itself failed (docker's convention). */
export const EXIT_RUNTIME = 125;
/** The command was found but could not be invoked. */
export const EXIT_CANNOT_INVOKE = 126;
/** The command was not found. */
export const EXIT_NOT_FOUND = 127;

export class TsrunError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_RUNTIME,
  ) {
    super(message);
    this.name = 'TsrunError';
  }
}

/** The config (or a flag that feeds it) is invalid; names the field. */
export class ConfigError extends TsrunError {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`invalid config: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const errnoNames = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, num]) => [num, name]),
);

/** "ENOENT" for 2, and so on. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

export function errnoNumber(name: string): number {
  return (os.constants.errno as Record<string, number>)[name] ?? 0;
}
