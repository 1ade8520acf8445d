// An image's config and Docker-style run options into a runtime-spec
// config.json, with Docker's default security (its 14 capabilities, its
// masked and read-only paths, only the default devices).
import { TsrunError } from '../errors';
import type { Mount, Spec } from '../spec/types';
import type { ImageConfig } from './types';
import type { ResolvedUser } from './user';

export const DOCKER_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const DOCKER_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DOCKER_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface ImageRunSettings {
  /** The command after the image name; replaces Cmd. */
  args: string[];
  /** --entrypoint: replaces Entrypoint ("" or [] clears it, and Cmd with it); a list is Compose's exec form. */
  entrypoint?: string | string[];
  /** -e and --env-file, in order: NAME=value, or NAME alone to take the host's value. */
  env: string[];
  workdir?: string;
  hostname: string;
  readOnly: boolean;
  network: 'none' | 'host';
  /** A network namespace made beforehand (bridge and user networks, container:NAME), joined by path. */
  netnsPath?: string;
  /** Host files bound over /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  etcFiles: { hosts: string; hostname: string; resolvConf: string };
  /** -t: the process gets a terminal. */
  tty?: boolean;
  /** --init: this host binary runs as pid 1 (bound at /dev/init) and starts the command. */
  init?: string;
}

/** Where --init's binary appears inside the container: /dev is the container's own tmpfs, so the image is not touched. */
export const INIT_IN_CONTAINER = '/dev/init';

/** The command Docker would run: Entrypoint + Cmd, with the override rules. */
export function commandLine(config: ImageConfig['config'], args: string[], entrypoint: string | string[] | undefined): string[] {
  let ep = config?.Entrypoint ?? [];
  let cmd = config?.Cmd ?? [];
  if (entrypoint !== undefined) {
    ep = Array.isArray(entrypoint) ? entrypoint : entrypoint === '' ? [] : [entrypoint];
    // A new entrypoint drops the image's Cmd, as Docker does.
    cmd = [];
  }
  if (args.length) cmd = args;
  const line = [...ep, ...cmd];
  if (!line.length) throw new TsrunError('no command: the image has no Entrypoint or Cmd, and none was given after the image name');
  return line;
}

/** Docker's -e: NAME=value sets, NAME alone copies the host's value (or nothing). */
export function mergeEnv(base: string[], overrides: string[]): string[] {
  const env = new Map(base.map((e) => [e.slice(0, e.indexOf('=')), e]));
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq === 0) throw new TsrunError(`invalid environment variable "${o}": the name is empty`);
    if (eq < 0) {
      const v = process.env[o];
      if (v !== undefined) env.set(o, `${o}=${v}`);
      continue;
    }
    env.set(o.slice(0, eq), o);
  }
  return [...env.values()];
}

export function specFromImage(image: ImageConfig, user: ResolvedUser, s: ImageRunSettings): Spec {
  const cfg = image.config ?? {};
  const args = commandLine(cfg, s.args, s.entrypoint);
  let env = mergeEnv(cfg.Env ?? [], [`HOSTNAME=${s.hostname}`]);
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  env = mergeEnv(env, s.env);
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/'}`);
  const cwd = s.workdir ?? (cfg.WorkingDir || '/');
  if (!cwd.startsWith('/')) throw new TsrunError(`invalid working directory "${cwd}": it must be absolute`);

  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: s.etcFiles.resolvConf, options: ['rbind', 'rprivate'] },
    { destination: '/etc/hostname', type: 'bind', source: s.etcFiles.hostname, options: ['rbind', 'rprivate'] },
    { destination: '/etc/hosts', type: 'bind', source: s.etcFiles.hosts, options: ['rbind', 'rprivate'] },
    ...(s.init ? [{ destination: INIT_IN_CONTAINER, type: 'bind', source: s.init, options: ['bind', 'ro', 'nosuid', 'nodev'] }] : []),
  ];
  const namespaces: Spec['linux'] = {
    namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }, ...(s.netnsPath ? [{ type: 'network' as const, path: s.netnsPath }] : s.network === 'none' ? [{ type: 'network' as const }] : [])],
  };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: !!s.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids.length ? user.additionalGids : undefined },
      args: s.init ? [INIT_IN_CONTAINER, '--', ...args] : args,
      env,
      cwd,
      capabilities: { bounding: [...DOCKER_CAPABILITIES], effective: [...DOCKER_CAPABILITIES], permitted: [...DOCKER_CAPABILITIES] },
      noNewPrivileges: false,
    },
    root: { path: 'rootfs', readonly: s.readOnly },
    hostname: s.hostname,
    mounts,
    annotations: {},
    linux: {
      ...namespaces,
      maskedPaths: [...DOCKER_MASKED_PATHS],
      readonlyPaths: [...DOCKER_READONLY_PATHS],
    },
  };
}
