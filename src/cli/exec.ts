import fs = require('node:fs');
import type { Command } from 'commander';
import { execInContainer } from '../container/exec';
import { TsrunError } from '../errors';
import type { Process } from '../spec/types';
import { globals, registryOf, traceSink } from './common';
import { connectConsoleSocket } from './create';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command) {
  program
    .command('exec')
    .description('run a command in a running container: its namespaces, cgroups, capabilities and environment')
    .argument('<id>', 'container id')
    .argument('[command...]', 'command and arguments')
    .option('-e, --env <NAME=value>', 'set an environment variable', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--cwd <dir>', 'the same as --workdir (runc)')
    .option('-u, --user <user[:group]>', 'user to run as (name or uid)')
    .option('-d, --detach', 'do not wait for the command')
    .option('-i, --interactive', 'keep stdin attached (it always is)')
    .option('-t, --tty', 'give the command a terminal (with -i: yours, in raw mode)')
    .option('--console-socket <path>', 'with -t: send the pty master to this unix socket instead (runc)')
    .option('-p, --process <file>', 'a runtime-spec process as JSON (runc exec --process)')
    .option('--pid-file <file>', 'write the new process id here')
    .passThroughOptions()
    .action(async (id: string, command: string[], opts: { env?: string[]; workdir?: string; cwd?: string; user?: string; detach?: boolean; tty?: boolean; interactive?: boolean; process?: string; pidFile?: string; consoleSocket?: string }, cmd: Command) => {
      if (opts.tty && opts.detach && !opts.consoleSocket) throw new TsrunError('exec -d -t: a detached command\'s terminal needs --console-socket to send its master to');
      let proc: Process | undefined;
      if (opts.process) {
        try {
          proc = JSON.parse(fs.readFileSync(opts.process, 'utf8')) as Process;
        } catch (e) {
          throw new TsrunError(`exec --process ${opts.process}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      } else if (!command.length) throw new TsrunError('exec: give a command to run');
      const g = globals(cmd);
      const registry = registryOf(cmd);
      const target = registry.resolve(id);
      if (registry.isManaged(target)) {
        const info = registry.read(target);
        const live = registry.live(info);
        if (!live.running) throw new TsrunError(`cannot exec in container ${info.name} (${target.slice(0, 12)}): it is ${live.status}`);
      }
      if (opts.tty && opts.interactive && !opts.consoleSocket && !process.stdin.isTTY) throw new TsrunError('exec -it: the input device is not a TTY (drop -t, or run from a terminal)');
      const tty = opts.tty || !!proc?.terminal;
      const consoleSocket = tty && opts.consoleSocket ? connectConsoleSocket(opts.consoleSocket) : undefined;
      try {
        process.exitCode = await execInContainer({
          id: target,
          root: g.root,
          args: command,
          process: proc,
          env: opts.env,
          cwd: opts.workdir ?? opts.cwd,
          user: opts.user,
          detach: opts.detach,
          trace: traceSink(g),
          forwardSignals: true,
          pidFile: opts.pidFile,
          terminal: tty ? { stdin: !!opts.interactive } : undefined,
          consoleSocket,
        });
      } finally {
        if (consoleSocket !== undefined) fs.closeSync(consoleSocket);
      }
    });
}
