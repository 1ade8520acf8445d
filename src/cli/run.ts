import type { Command } from 'commander';
import { runContainer } from '../container/run';
import { TsrunError } from '../errors';
import { globals, traceSink } from './common';

export function register(program: Command) {
  program
    .command('run')
    .description('run a container in the foreground: create, start, wait, delete; exits with its status')
    .argument('<id>', 'container id')
    .option('-b, --bundle <dir>', 'bundle directory holding config.json')
    .option('--pid-file <file>', 'write the container process id here')
    .action(async (id: string, opts: { bundle?: string; pidFile?: string }, cmd: Command) => {
      if (!opts.bundle) throw new TsrunError('run needs --bundle DIR (an OCI bundle with config.json)');
      const g = globals(cmd);
      process.exitCode = await runContainer({ id, bundle: opts.bundle, pidFile: opts.pidFile, root: g.root, trace: traceSink(g), forwardSignals: true });
    });
}
