import type { Command } from 'commander';
import { runContainer } from '../container/run';
import { runImage } from '../container/run-image';
import { TsrunError } from '../errors';
import type { ResourceFlags } from '../cgroup/resources';
import { globals, reportExit, resourceOptions, traceSink } from './common';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface RunFlags extends ResourceFlags {
  bundle?: string;
  pidFile?: string;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  name?: string;
  rm?: boolean;
  entrypoint?: string;
  readOnly?: boolean;
  volume?: string[];
  tmpfs?: string[];
  interactive?: boolean;
  tty?: boolean;
  network?: string;
}

export function register(program: Command) {
  const run = program
    .command('run')
    .description('run a container in the foreground and exit with its status: `run [flags] IMAGE [CMD...]`, or `run --bundle DIR ID` for an OCI bundle')
    .argument('<image-or-id>', 'image name (or the container id with --bundle)')
    .argument('[command...]', 'command and arguments, replacing the image\'s Cmd')
    .option('-b, --bundle <dir>', 'run the OCI bundle in DIR (config.json + rootfs) instead of an image')
    .option('--pid-file <file>', 'write the container process id here')
    .option('-e, --env <NAME=value>', 'set an environment variable (NAME alone: take it from here)', collect)
    .option('--env-file <file>', 'read environment variables from a file', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (name or uid, optionally :group) to run as')
    .option('-h, --hostname <name>', 'container hostname')
    .option('--name <name>', 'container name (its id)')
    .option('--rm', 'remove the container when it exits')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint ("" clears it)')
    .option('--read-only', 'mount the root filesystem read-only')
    .option('-v, --volume <host:container[:ro]>', 'bind a host path into the container', collect)
    .option('--tmpfs <path[:options]>', 'mount a tmpfs', collect)
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'allocate a terminal (not yet supported)')
    .option('--network <mode>', 'none or host', 'none');
  resourceOptions(run)
    .helpOption('--help', 'display help for command')
    .passThroughOptions()
    .action(async (first: string, command: string[], opts: RunFlags, cmd: Command) => {
      const g = globals(cmd);
      if (opts.bundle) {
        if (command.length) throw new TsrunError('run --bundle takes only the container id; the command comes from config.json');
        process.exitCode = await runContainer({
          id: first,
          bundle: opts.bundle,
          pidFile: opts.pidFile,
          root: g.root,
          trace: traceSink(g),
          forwardSignals: true,
          onExit: reportExit,
        });
        return;
      }
      if (opts.tty) throw new TsrunError('-t (a terminal for the container) is not supported yet');
      process.exitCode = await runImage({
        image: first,
        args: command,
        entrypoint: opts.entrypoint,
        env: opts.env,
        envFiles: opts.envFile,
        workdir: opts.workdir,
        user: opts.user,
        hostname: opts.hostname,
        name: opts.name,
        rm: opts.rm,
        readOnly: opts.readOnly,
        volumes: opts.volume,
        tmpfs: opts.tmpfs,
        interactive: opts.interactive,
        network: opts.network,
        storage: g.storage,
        root: g.root,
        trace: traceSink(g),
        forwardSignals: true,
        resources: opts,
        onExit: reportExit,
      });
    });
}
