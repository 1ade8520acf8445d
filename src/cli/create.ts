import type { Command } from 'commander';
import { createContainer } from '../container/create';
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { isSyscallError, native } from '../native';
import { globals, traceSink } from './common';

export function connectConsoleSocket(file: string): number {
  try {
    return native().connectUnix(file);
  } catch (e) {
    throw new TsrunError(`--console-socket ${file}: ${isSyscallError(e) ? e.message : String(e)}`);
  }
}

export function register(program: Command) {
  program
    .command('create')
    .description('create a container from a bundle; it waits for `start`')
    .argument('<id>', 'container id')
    .option('-b, --bundle <dir>', 'bundle directory holding config.json', '.')
    .option('--pid-file <file>', 'write the container process id here')
    .option('--console-socket <path>', 'with process.terminal: send the pty master to this unix socket (SCM_RIGHTS), as runc does')
    .option('--no-new-keyring', 'keep the caller\'s session keyring instead of a new one of the container\'s own (runc\'s flag)')
    .action(async (id: string, opts: { bundle: string; pidFile?: string; consoleSocket?: string; newKeyring?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const consoleSocket = opts.consoleSocket ? connectConsoleSocket(opts.consoleSocket) : undefined;
      try {
        const created = await createContainer({ id, bundle: opts.bundle, pidFile: opts.pidFile, root: g.root, trace: traceSink(g), consoleSocket, noNewKeyring: opts.newKeyring === false });
        created.process.detach();
      } finally {
        if (consoleSocket !== undefined) fs.closeSync(consoleSocket);
      }
    });
}
