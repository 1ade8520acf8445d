import type { Command } from 'commander';
import path = require('node:path');
import { runContainer } from '../container/run';
import { readBundleSpec } from '../container/create';
import { runImage, runImageDetached } from '../container/run-image';
import type { NetworkFlags } from '../network/run-options';
import { parseBytes } from '../cgroup/resources';
import { TsrunError } from '../errors';
import type { ResourceFlags } from '../cgroup/resources';
import { globals, reportExit, resourceOptions, traceSink } from './common';
import { tlsVerify } from './pull';
import { board } from '../image/progress';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface RunFlags extends ResourceFlags, Omit<NetworkFlags, 'network'> {
  bundle?: string;
  pidFile?: string;
  newKeyring?: boolean;
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
  mount?: string[];
  volumesFrom?: string[];
  tmpfs?: string[];
  interactive?: boolean;
  tty?: boolean;
  network?: string;
  detach?: boolean;
  restart?: string;
  init?: boolean;
  logOpt?: string[];
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  securityOpt?: string[];
  device?: string[];
  groupAdd?: string[];
  ulimit?: string[];
  sysctl?: string[];
  shmSize?: string;
  userns?: string;
  pull?: string;
  tlsVerify?: string;
  authfile?: string;
  uidmap?: string[];
  gidmap?: string[];
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  healthcheck?: boolean;
}

/** --health-* and --no-healthcheck as the library's health options. */
function healthOptions(o: RunFlags) {
  if (o.healthRetries !== undefined && !/^\d+$/.test(o.healthRetries)) throw new TsrunError(`--health-retries ${o.healthRetries}: expected a whole number`);
  return {
    test: o.healthCmd !== undefined ? ['CMD-SHELL', o.healthCmd] : undefined,
    interval: o.healthInterval,
    timeout: o.healthTimeout,
    retries: o.healthRetries === undefined ? undefined : Number(o.healthRetries),
    startPeriod: o.healthStartPeriod,
    startInterval: o.healthStartInterval,
    disable: o.healthcheck === false,
  };
}

/** --log-opt max-size=10m (the only option the monitor's log has). */
function logMaxBytes(opts: string[] | undefined): number | undefined {
  let max: number | undefined;
  for (const o of opts ?? []) {
    const m = /^max-size=(.+)$/.exec(o);
    if (!m) throw new TsrunError(`--log-opt ${o}: only max-size=SIZE (such as 10m) is supported`);
    max = parseBytes(m[1], '--log-opt max-size');
  }
  return max;
}

export function register(program: Command) {
  const run = program
    .command('run')
    .description('run a container in the foreground and exit with its status: `run [flags] IMAGE [CMD...]`, or `run --bundle DIR ID` for an OCI bundle')
    .argument('<image-or-id>', 'image name (or the container id with --bundle)')
    .argument('[command...]', 'command and arguments, replacing the image\'s Cmd')
    .option('-b, --bundle <dir>', 'run the OCI bundle in DIR (config.json + rootfs) instead of an image')
    .option('--pid-file <file>', 'write the container process id here')
    .option('--no-new-keyring', 'with --bundle: keep the caller\'s session keyring (runc\'s flag)')
    .option('-e, --env <NAME=value>', 'set an environment variable (NAME alone: take it from here)', collect)
    .option('--env-file <file>', 'read environment variables from a file', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (name or uid, optionally :group) to run as')
    .option('-h, --hostname <name>', 'container hostname')
    .option('--name <name>', 'container name (its id)')
    .option('--rm', 'remove the container when it exits')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint ("" clears it)')
    .option('--read-only', 'mount the root filesystem read-only')
    .option('-v, --volume <[host-path|name:]path[:opts]>', 'bind a host path, mount a named volume (made on first use), or an anonymous volume; opts: ro, rw, nocopy, z, Z, a propagation', collect)
    .option('--mount <type=...,target=...>', 'Docker\'s --mount: type=bind|volume|tmpfs, source, target, readonly, bind-propagation, bind-nonrecursive, volume-nocopy, volume-label, volume-opt, tmpfs-size, tmpfs-mode', collect)
    .option('--volumes-from <container[:ro|rw]>', 'the volumes and binds of another container, at the same paths', collect)
    .option('--tmpfs <path[:options]>', 'mount a tmpfs', collect)
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'give the container a terminal (with -i: yours, in raw mode)')
    .option('-d, --detach', 'run in the background under a monitor and print the container id')
    .option('--restart <policy>', 'no, on-failure[:N], always or unless-stopped (detached containers)')
    .option('--init', 'run a small init as pid 1 that forwards signals and reaps orphaned processes')
    .option('--log-opt <max-size=SIZE>', 'rotate the log of a detached container past SIZE (default 10m)', collect)
    .option('--network <mode>', 'none, host, bridge, a network\'s name (network create), or container:NAME (default: none, or bridge with -p/-P)')
    .option('-p, --publish <[ip:][hostPort:]port[/proto]>', 'publish a container port on the host (bridge and user networks)', collect)
    .option('-P, --publish-all', 'publish every port the image EXPOSEs on a random host port')
    .option('--network-alias <name>', 'another name the container has on its user network', collect)
    .option('--ip <address>', 'the container\'s IPv4 address on its user network')
    .option('--mac-address <mac>', 'the container\'s MAC address')
    .option('--dns <ip>', 'a nameserver for /etc/resolv.conf (replaces the host\'s)', collect)
    .option('--dns-search <domain>', 'a search domain for /etc/resolv.conf', collect)
    .option('--dns-option <opt>', 'an options line entry for /etc/resolv.conf', collect)
    .option('--add-host <name:ip>', 'a line in /etc/hosts', collect)
    .option('--pull <policy>', 'missing (pull an image the store lacks), always, or never', 'missing')
    .option('--tls-verify <bool>', 'for a pull: false allows https without certificate checks and plain http')
    .option('--authfile <file>', 'for a pull: credentials in Docker\'s config format')
    .option('--cap-add <cap>', 'add a capability (NET_ADMIN or CAP_NET_ADMIN; ALL for every one)', collect)
    .option('--cap-drop <cap>', 'drop a capability (ALL for every one)', collect)
    .option('--privileged', 'every capability and host device, no seccomp filter, no masked or read-only paths')
    .option('--security-opt <opt>', 'seccomp=unconfined|PROFILE.json, no-new-privileges, apparmor=PROFILE, label=disable, systempaths=unconfined, unmask=PATH', collect)
    .option('--device <host[:container[:rwm]]>', 'give the container a host device', collect)
    .option('--group-add <group>', 'an additional group (name in the image\'s /etc/group, or gid)', collect)
    .option('--ulimit <name=soft[:hard]>', 'a resource limit (nofile=1024:2048)', collect)
    .option('--sysctl <key=value>', 'a namespaced kernel setting (net.ipv4.ip_forward=1)', collect)
    .option('--shm-size <bytes>', 'size of /dev/shm (64m by default)')
    .option('--userns <mode>', 'host (the default), or auto[:size=N]: a user namespace with ids of its own from /etc/subuid and /etc/subgid')
    .option('--uidmap <container:host:size>', 'map container uids to host uids in a user namespace', collect)
    .option('--gidmap <container:host:size>', 'map container gids to host gids (default: as --uidmap)', collect)
    .option('--health-cmd <command>', 'a health check: a shell command run in the container, healthy when it exits 0')
    .option('--health-interval <duration>', 'time between health checks (default 30s)')
    .option('--health-timeout <duration>', 'a check running longer fails (default 30s)')
    .option('--health-retries <n>', 'failures in a row that make the container unhealthy (default 3)')
    .option('--health-start-period <duration>', 'failures in this time after the start do not count until a check passes')
    .option('--health-start-interval <duration>', 'time between checks in the start period (default 5s)')
    .option('--no-healthcheck', 'no health check, not even the image\'s HEALTHCHECK');
  resourceOptions(run)
    .helpOption('--help', 'display help for command')
    .passThroughOptions()
    .action(async (first: string, command: string[], opts: RunFlags, cmd: Command) => {
      const g = globals(cmd);
      if (opts.bundle) {
        if (command.length) throw new TsrunError('run --bundle takes only the container id; the command comes from config.json');
        const spec = readBundleSpec(path.resolve(opts.bundle));
        process.exitCode = await runContainer({
          id: first,
          bundle: opts.bundle,
          spec,
          terminal: spec.process?.terminal ? { stdin: true } : undefined,
          pidFile: opts.pidFile,
          noNewKeyring: opts.newKeyring === false,
          root: g.root,
          trace: traceSink(g),
          forwardSignals: true,
          onExit: reportExit,
        });
        return;
      }
      if (opts.newKeyring === false) throw new TsrunError('--no-new-keyring is for OCI bundles (run --bundle, create); an image container always has a keyring of its own');
      const imageOpts = {
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
        mounts: opts.mount,
        volumesFrom: opts.volumesFrom,
        tmpfs: opts.tmpfs,
        interactive: opts.interactive,
        network: opts.network,
        networking: { publish: opts.publish, publishAll: opts.publishAll, networkAlias: opts.networkAlias, ip: opts.ip, macAddress: opts.macAddress, dns: opts.dns, dnsSearch: opts.dnsSearch, dnsOption: opts.dnsOption, addHost: opts.addHost },
        storage: g.storage,
        root: g.root,
        trace: traceSink(g),
        forwardSignals: true,
        resources: opts,
        userns: { userns: opts.userns, uidmap: opts.uidmap, gidmap: opts.gidmap },
        pull: opts.pull as 'missing' | 'always' | 'never',
        registry: registryOptions(opts),
        security: { capAdd: opts.capAdd, capDrop: opts.capDrop, privileged: opts.privileged, securityOpt: opts.securityOpt, devices: opts.device, groupAdd: opts.groupAdd, ulimits: opts.ulimit, sysctls: opts.sysctl, shmSize: opts.shmSize },
        tty: opts.tty,
        restart: opts.restart,
        init: opts.init,
        logMaxBytes: logMaxBytes(opts.logOpt),
        healthcheck: healthOptions(opts),
      };
      if (opts.tty && opts.interactive && !opts.detach && !process.stdin.isTTY) throw new TsrunError('-it: the input device is not a TTY (drop -t, or run from a terminal)');
      if (opts.detach) {
        process.stdout.write(`${await runImageDetached(imageOpts)}\n`);
        return;
      }
      if (opts.restart && opts.restart !== 'no') throw new TsrunError('--restart needs -d: only a detached container has a monitor to restart it');
      process.exitCode = await runImage({ ...imageOpts, onExit: reportExit });
    });
}

/** Registry options of run: Docker's bars on a terminal, with the other lines above them. */
function registryOptions(opts: { tlsVerify?: string; authfile?: string }) {
  const progress = process.stderr.isTTY ? board() : undefined;
  return { tlsVerify: tlsVerify(opts.tlsVerify), authFile: opts.authfile, progress, log: progress ? (line: string) => progress.note(line) : undefined };
}
