import type { Command } from 'commander';
import { runContainer } from '../container/run';
import { runImage } from '../container/run-image';
import { TsrunError } from '../errors';
import { globals, traceSink } from './common';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface RunFlags {
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
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  blkioWeight?: string;
}

export function register(program: Command) {
  program
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
    .option('--network <mode>', 'none or host', 'none')
    .option('-m, --memory <bytes>', 'memory limit (512m, 1g)')
    .option('--memory-swap <bytes>', 'memory plus swap limit (-1: unlimited swap)')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <number>', 'CPU quota in CPUs (0.5, 2)')
    .option('-c, --cpu-shares <shares>', 'relative CPU weight (2-262144)')
    .option('--cpuset-cpus <list>', 'CPUs allowed (0-3, 0,1)')
    .option('--cpuset-mems <list>', 'memory nodes allowed')
    .option('--pids-limit <n>', 'most processes at once (-1: unlimited)')
    .option('--blkio-weight <weight>', 'relative block I/O weight (10-1000)')
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
          onExit: (r) => {
            if (r.oomKilled) process.stderr.write(`tsrun: the container was killed by the OOM killer (its memory limit was reached); exit status ${r.exitCode}\n`);
          },
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
        resources: {
          memory: opts.memory,
          memorySwap: opts.memorySwap,
          memoryReservation: opts.memoryReservation,
          cpus: opts.cpus,
          cpuShares: opts.cpuShares,
          cpusetCpus: opts.cpusetCpus,
          cpusetMems: opts.cpusetMems,
          pidsLimit: opts.pidsLimit,
          blkioWeight: opts.blkioWeight,
        },
        onExit: (r) => {
          if (r.oomKilled) process.stderr.write(`tsrun: the container was killed by the OOM killer (its memory limit was reached); exit status ${r.exitCode}\n`);
        },
      });
    });
}
