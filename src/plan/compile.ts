// config.json in, plan out. A pure function of the spec and a few host
// facts, so it is tested without root; the native child only walks the result.
import path = require('node:path');
import { ConfigError } from '../errors';
import { CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER, cloneFlagNames, NAMESPACES, namespaceKind } from '../ns/namespaces';
import { capabilityMask } from '../process/capabilities';
import { RLIMITS, rlimitValue } from '../process/rlimits';
import { DEFAULT_DEVICES, DEV_LINKS, deviceTypeBits, makedev } from '../rootfs/devices';
import { BIND_REMOUNT_FLAGS, MS, parseMountOptions, propagationFlags } from '../rootfs/mount-options';
import type { Mount, Spec } from '../spec/types';
import { Op } from './ops';
import { step, type PlanStep } from './step';
import type { SeccompProgram } from '../security/seccomp';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A cgroup hierarchy mounted on the host, as /proc/self/mountinfo shows it. */
export interface CgroupHierarchy {
  fstype: 'cgroup' | 'cgroup2';
  /** Mount point on the host, e.g. /sys/fs/cgroup/memory. */
  mountPoint: string;
  /** Super options naming the controllers, e.g. "memory" or "name=systemd". */
  controllers: string;
}

export interface HostFacts {
  /** /proc/sys/kernel/cap_last_cap */
  lastCap: number;
  cgroups: CgroupHierarchy[];
  /** What a bind source on the host is. */
  statSource(file: string): 'dir' | 'file' | 'missing';
}

export interface CompileOptions {
  /** The root filesystem, absolute, with symlinks resolved. */
  rootfs: string;
  bundle: string;
  /** fd (inherited by the child) to read one byte from before exec; absent: wait on the sync socket. */
  execFifoFd?: number;
  /** Signal the container gets if the runtime dies (foreground runs). */
  parentDeathSignal?: number;
  trace?: boolean;
  /** Mount an overlay of image layers on the rootfs directory first. */
  overlay?: OverlayMount;
  /** Give the container /dev/null as stdin instead of the runtime's (Docker without -i). */
  stdinNull?: boolean;
  /** fds of the runtime's (log pipes) to become the container's 0, 1 and 2. */
  stdio?: StdioFds;
  /** A terminal as stdio, made inside the container; its master goes out over this socket. */
  console?: ConsoleOptions;
  /** A monitor program that clones the container and outlives the runtime. */
  monitor?: MonitorSpec;
  /** The container's cgroup inside each hierarchy (/tsrun/ID): without a cgroup namespace, /sys/fs/cgroup shows only it. */
  cgroupPath?: string;
  /** The container's id: its session keyring is named after it, as runc names it. */
  keyring?: string;
  /** linux.seccomp, compiled (src/security/seccomp.ts). */
  seccomp?: SeccompProgram;
  /**
   * The overlay's layers mounted idmapped for the container's user
   * namespace (joined by path): made in a first mount namespace of the
   * runtime's, before the container joins its user namespace.
   */
  idmap?: IdmapLayers;
}

export interface IdmapLayers {
  /** The user namespace whose mapping the layers take: /proc/PID/ns/user. */
  userns: string;
  /** An empty directory per layer is made in here (0, 1, ...) to mount it on. */
  dir: string;
  /**
   * Where the layers' filesystem takes no idmapped mount: one copy of the
   * image owned by the mapped ids, the overlay's only lower layer.
   */
  chowned?: string;
}

export type StdioFds = [number | undefined, number | undefined, number | undefined];

export interface ConsoleOptions {
  /** fd of a connected unix socket: the pty master is sent on it (SCM_RIGHTS). */
  socket: number;
  rows?: number;
  cols?: number;
}

export interface MonitorSpec {
  path: string;
  argv: string[];
  envp: string[];
  /** The runtime's fds the monitor gets as 3, 4, ... */
  fds: number[];
}

export interface OverlayMount {
  /** Layer directories, top first. Relative ones are resolved against cwd. */
  lowerdirs: string[];
  upperdir: string;
  workdir: string;
  /** Entered before the mount so that short relative lowerdirs fit in a page of options. */
  cwd?: string;
}

export interface Plan {
  cloneFlags: number;
  /** Namespaces are joined by path: a first child joins them, then forks the container. */
  twoStage: boolean;
  newUserNamespace: boolean;
  uidMap: string;
  gidMap: string;
  trace: boolean;
  steps: PlanStep[];
  monitor?: MonitorSpec;
}

/** Steps that give the process the runtime's fds as stdio. */
export function stdioSteps(stdio: StdioFds | undefined): PlanStep[] {
  const names = ['stdin', 'stdout', 'stderr'];
  return (stdio ?? []).flatMap((fd, target) =>
    fd === undefined ? [] : [step(Op.DUP2, `dup2(${fd}, ${target}): ${names[target]}`, target === 0 ? 'stdin from the runtime' : `${names[target]} goes to the monitor, which writes the container's log`, { n: [fd, target] })],
  );
}

/** A session keyring of the container's own: the runtime's, host root's, keys stay out of reach. */
export function keyringStep(name: string): PlanStep {
  return step(Op.JOIN_KEYRING, `keyctl(KEYCTL_JOIN_SESSION_KEYRING, "${name}")`, 'a new session keyring named after the container: it does not inherit the runtime\'s, so host root\'s keys cannot be read or added to (keyrings(7))', { s: [name] });
}

/** The step that makes a terminal inside the container and sends its master out. */
export function consoleStep(c: ConsoleOptions): PlanStep {
  return step(Op.CONSOLE, 'open /dev/ptmx: a terminal as stdin, stdout and stderr', 'the pty is made in the container\'s own devpts so tty(1) can name it; the master goes to the runtime over a unix socket (SCM_RIGHTS), and the process becomes a session leader with the terminal as its controlling tty (setsid(2), TIOCSCTTY)', { n: [c.socket, c.rows ?? 0, c.cols ?? 0] });
}

export function compilePlan(spec: Spec, host: HostFacts, opts: CompileOptions): Plan {
  const proc = spec.process;
  if (!proc) throw new ConfigError('process', 'is required to start a container');
  const linux = spec.linux ?? {};
  const namespaces = linux.namespaces ?? [];
  const steps: PlanStep[] = [];
  const newNs = namespaces.filter((n) => !n.path);
  const joined = namespaces.filter((n) => n.path);
  const newUser = newNs.some((n) => n.type === 'user');
  // In any user namespace but the host's, new or joined, mknod and cgroupfs are off limits.
  const userNs = namespaces.some((n) => n.type === 'user');
  // A new cgroup namespace is made only after the runtime has placed the
  // process in its cgroup, so that cgroup becomes the namespace's root.
  const newCgroupNs = newNs.some((n) => n.type === 'cgroup');
  const nsFlags = newNs.reduce((f, n) => f | namespaceKind(n.type)!.flag, 0) & ~CLONE_NEWCGROUP;
  const twoStage = joined.length > 0;

  if (opts.idmap && opts.overlay) steps.push(...idmapSteps(opts.idmap, opts.overlay, opts.rootfs));

  if (twoStage) {
    // setns into a user namespace must come first: it decides what the other joins may do.
    const order = [...joined].sort((a, b) => Number(b.type === 'user') - Number(a.type === 'user'));
    for (const ns of order) {
      const kind = namespaceKind(ns.type)!;
      steps.push(step(Op.SETNS, `setns ${ns.path} (${kind.type})`, `join an existing ${kind.type} namespace: it isolates ${kind.isolates} (setns(2), ${kind.manPage})`, { s: [ns.path!], n: [kind.flag] }));
    }
    if (newUser) {
      steps.push(step(Op.UNSHARE, 'unshare(CLONE_NEWUSER)', 'a new user namespace, made before the others so that it owns them (user_namespaces(7))', { n: [CLONE_NEWUSER] }));
      steps.push(step(Op.SYNC_USERNS, 'handshake: ask for uid/gid maps', 'only a process outside the new user namespace may write its uid_map and gid_map'));
    }
    const rest = nsFlags & ~CLONE_NEWUSER;
    if (rest) steps.push(step(Op.UNSHARE, `unshare(${cloneFlagNames(rest)})`, 'the remaining new namespaces; a new PID namespace takes effect for the next child (unshare(2))', { n: [rest] }));
    steps.push(step(Op.FORK, 'clone(CLONE_PARENT): the container process', 'a PID namespace is entered only by a new process; CLONE_PARENT makes it the runtime\'s child so the runtime can wait for it', { n: [0] }));
  }

  if (opts.parentDeathSignal) {
    steps.push(step(Op.PDEATHSIG, `prctl(PR_SET_PDEATHSIG, ${opts.parentDeathSignal})`, 'a foreground container must not outlive the runtime that waits for it', { n: [opts.parentDeathSignal] }));
  }
  steps.push(step(Op.SYNC_WAIT, 'handshake: wait for the runtime', 'the runtime writes uid/gid maps and cgroup placement before the container runs any of its own setup'));
  if (newCgroupNs) {
    steps.push(step(Op.UNSHARE, 'unshare(CLONE_NEWCGROUP)', 'a new cgroup namespace, made now that the process is in its cgroup: that cgroup becomes the root it sees (cgroup_namespaces(7))', { n: [CLONE_NEWCGROUP] }));
  }

  if (userNs && mapsRoot(linux.uidMappings) && mapsRoot(linux.gidMappings)) {
    // Until now the child runs as the host's root, which the new namespace does not map:
    // files it creates (mount points, device nodes) would fail with EOVERFLOW.
    steps.push(step(Op.SETRESGID, 'setresgid(0) in the user namespace', 'become the namespace\'s root group, so setup creates files as a mapped id', { n: [0] }));
    steps.push(step(Op.SETRESUID, 'setresuid(0) in the user namespace', 'become the namespace\'s root user, so setup creates files as a mapped id (user_namespaces(7))', { n: [0] }));
  }
  if (opts.keyring) steps.push(keyringStep(opts.keyring));
  if (newNs.some((n) => n.type === 'network')) {
    steps.push(step(Op.LOOPBACK_UP, 'ip link set lo up', 'a new network namespace starts with only lo, and it is down; servers on 127.0.0.1 need it up, as runc and Docker do (network_namespaces(7))'));
  }
  if (opts.stdinNull) {
    steps.push(step(Op.OPEN_FD, 'open /dev/null as stdin', 'without -i the container reads nothing from the terminal or pipe tsrun was given', { s: ['/dev/null', null], n: [0, 0] }));
  }
  steps.push(...stdioSteps(opts.stdio));

  steps.push(...rootfsSteps(spec, host, opts, userNs));
  if (opts.console) steps.push(consoleStep(opts.console));

  if (spec.hostname) steps.push(step(Op.SETHOSTNAME, `sethostname("${spec.hostname}")`, 'the container\'s UTS namespace has its own hostname (uts_namespaces(7))', { s: [spec.hostname] }));
  if (spec.domainname) steps.push(step(Op.SETDOMAINNAME, `setdomainname("${spec.domainname}")`, 'the NIS domain name lives in the UTS namespace too', { s: [spec.domainname] }));

  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    const file = '/proc/sys/' + key.replace(/\./g, '/');
    steps.push(step(Op.WRITE_FILE, `sysctl ${key}=${value}`, `namespaced kernel settings are written through ${file} (sysctl(8))`, { s: [file, value] }));
  }
  for (const p of linux.readonlyPaths ?? []) {
    steps.push(step(Op.READONLY_PATH, `bind ${p} read-only`, 'kernel knobs the container may read but not change', { s: [p] }));
  }
  for (const p of linux.maskedPaths ?? []) {
    steps.push(step(Op.MASK_PATH, `mask ${p}`, 'hide host information: /dev/null over files, an empty read-only tmpfs over directories', { s: [p] }));
  }
  if (spec.root?.readonly) steps.push(step(Op.REMOUNT_RO, 'remount / read-only', 'root.readonly: the root filesystem cannot be written', { s: ['/'] }));

  for (const rl of proc.rlimits ?? []) {
    steps.push(step(Op.RLIMIT, `prlimit(${rl.type}, soft=${rl.soft}, hard=${rl.hard})`, 'resource limits are per process and inherited across exec (getrlimit(2))', { n: [RLIMITS[rl.type], rlimitValue(rl.soft), rlimitValue(rl.hard)] }));
  }

  steps.push(...credentialSteps(spec, host, opts.seccomp));
  if (opts.parentDeathSignal) {
    // The kernel clears the parent-death signal when credentials change.
    steps.push(step(Op.PDEATHSIG, `prctl(PR_SET_PDEATHSIG, ${opts.parentDeathSignal}) again`, 'changing uid or gid cleared it (prctl(2))', { n: [opts.parentDeathSignal] }));
  }

  const env = proc.env ?? [];
  const pathVar = env.filter((e) => e.startsWith('PATH=')).pop()?.slice(5) ?? DEFAULT_PATH;
  steps.push(step(Op.LOOKUP_EXEC, `find "${proc.args[0]}" in PATH`, 'a missing command is an error of create, not a silent exit after start', { s: [proc.args[0], pathVar] }));
  steps.push(step(Op.READY, 'handshake: report ready', 'the container is built; create may return'));
  steps.push(
    opts.execFifoFd !== undefined
      ? step(Op.WAIT_START, 'wait on the exec fifo', '`start` writes a byte to the fifo; until then the container stays "created"', { n: [opts.execFifoFd] })
      : step(Op.WAIT_START, 'wait for start', 'the runtime sends start on the sync socket', { n: [-1] }),
  );
  steps.push(execStep(proc, env, opts.seccomp, 'replace the setup code with the container\'s command; the close-on-exec sync socket closing tells the runtime it worked (execve(2))'));

  const idMap = (m: { containerID: number; hostID: number; size: number }[] | undefined) => (m ?? []).map((e) => `${e.containerID} ${e.hostID} ${e.size}\n`).join('');
  return {
    cloneFlags: twoStage ? 0 : nsFlags,
    twoStage,
    monitor: opts.monitor,
    newUserNamespace: newUser,
    uidMap: idMap(linux.uidMappings),
    gidMap: idMap(linux.gidMappings),
    trace: !!opts.trace,
    steps,
  };
}

/**
 * Stage 1, still in the runtime's user namespace: a mount namespace of its
 * own, each layer bound idmapped onto a directory of the container's, and
 * the overlay of those. The container's own mount namespace, made after it
 * joins its user namespace, starts as a copy with the overlay in place.
 */
function idmapSteps(idmap: IdmapLayers, o: OverlayMount, rootfs: string): PlanStep[] {
  const steps: PlanStep[] = [
    step(Op.UNSHARE, 'unshare(CLONE_NEWNS): a mount namespace for the idmapped layers', 'idmapped mounts need the runtime\'s own capabilities, so they are made before the container joins its user namespace, in a mount namespace no one else sees (mount_namespaces(7))', { n: [CLONE_NEWNS] }),
    step(Op.PROPAGATION, 'mount --make-rslave /', 'nothing mounted here propagates back to the host', { s: ['/'], n: [MS.SLAVE | MS.REC] }),
  ];
  if (idmap.chowned) {
    steps.push(
      step(Op.MOUNT, `mount overlay on ${rootfs} (the image copied, owned by the mapped ids)`, 'the layers\' filesystem takes no idmapped mount, so a copy of the image whose files the container\'s root owns is its lower layer (overlayfs(5))', {
        s: ['overlay', rootfs, 'overlay', `lowerdir=${idmap.chowned},upperdir=${o.upperdir},workdir=${o.workdir}${OVERLAY_PLAIN}`],
        n: [0, 0, 0, 0, 0],
      }),
    );
    return steps;
  }
  o.lowerdirs.forEach((l, i) => {
    const source = o.cwd && !path.isAbsolute(l) ? path.join(o.cwd, l) : l;
    steps.push(step(Op.IDMAP_MOUNT, `bind ${source} idmapped on ${idmap.dir}/${i}`, 'the layer\'s files, owned by host ids, appear owned by the ids the container\'s user namespace maps them to (mount_setattr(2) MOUNT_ATTR_IDMAP)', { s: [source, `${idmap.dir}/${i}`, idmap.userns] }));
  });
  steps.push(step(Op.CHDIR, `chdir ${idmap.dir}`, 'the idmapped layers are named relative to here, short enough for one page of mount options', { s: [idmap.dir] }));
  steps.push(
    step(Op.MOUNT, `mount overlay on ${rootfs} (${o.lowerdirs.length} idmapped layer${o.lowerdirs.length === 1 ? '' : 's'})`, 'the idmapped layers under the container\'s writable directory, which belongs to the container\'s root (overlayfs(5))', {
      s: ['overlay', rootfs, 'overlay', `lowerdir=${o.lowerdirs.map((_, i) => String(i)).join(':')},upperdir=${o.upperdir},workdir=${o.workdir}${OVERLAY_PLAIN}`],
      n: [0, 0, 0, 0, 0],
    }),
  );
  return steps;
}

/**
 * Whatever the kernel's defaults: a renamed directory is copied up whole
 * and a changed file's data goes to the upper directory, so that directory
 * alone says what changed (diff, commit read it as an OCI layer).
 */
const OVERLAY_PLAIN = ',redirect_dir=off,metacopy=off';

function mapsRoot(m: { containerID: number; size: number }[] | undefined): boolean {
  return (m ?? []).some((e) => e.containerID === 0 && e.size > 0);
}

function rootfsSteps(spec: Spec, host: HostFacts, opts: CompileOptions, newUser: boolean): PlanStep[] {
  const steps: PlanStep[] = [];
  const linux = spec.linux ?? {};
  const rootfs = opts.rootfs;
  const newCgroupNs = (linux.namespaces ?? []).some((n) => n.type === 'cgroup' && !n.path);
  steps.push(step(Op.PROPAGATION, 'mount --make-rslave /', 'mounts made in the new mount namespace must not propagate back to the host (mount_namespaces(7))', { s: ['/'], n: [MS.SLAVE | MS.REC] }));
  if (opts.overlay && !opts.idmap) {
    const o = opts.overlay;
    if (o.cwd) steps.push(step(Op.CHDIR, `chdir ${o.cwd}`, 'the layer paths below are relative to here, short enough for one page of mount options', { s: [o.cwd] }));
    const data = `lowerdir=${o.lowerdirs.join(':')},upperdir=${o.upperdir},workdir=${o.workdir}${OVERLAY_PLAIN}`;
    steps.push(
      step(Op.MOUNT, `mount overlay on ${rootfs} (${o.lowerdirs.length} layer${o.lowerdirs.length === 1 ? '' : 's'})`, 'the image layers, read-only and shared, under a writable upper directory of this container alone: creating a container copies nothing (overlayfs(5))', {
        s: ['overlay', rootfs, 'overlay', data],
        n: [0, 0, 0, 0, 0],
      }),
    );
  }
  steps.push(step(Op.MOUNT, `bind ${rootfs} onto itself`, 'pivot_root(2) needs the new root to be a mount point', { s: [rootfs, rootfs, null, null], n: [MS.BIND | MS.REC, 0, 0, 0, 0] }));
  steps.push(step(Op.SET_ROOT, `resolve paths inside ${rootfs}`, 'mount targets are opened with openat2(RESOLVE_IN_ROOT), so symlinks in the image cannot lead outside it', { s: [rootfs] }));

  const postPivot: PlanStep[] = [];
  (spec.mounts ?? []).forEach((m, i) => steps.push(...mountSteps(m, i, host, opts, newUser, newCgroupNs, postPivot)));

  const devices = new Map(DEFAULT_DEVICES.map((d) => [d.path, d]));
  for (const d of linux.devices ?? []) {
    devices.set(d.path, { path: d.path, type: d.type, major: d.major ?? 0, minor: d.minor ?? 0, fileMode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0 });
  }
  for (const d of devices.values()) {
    if (newUser) {
      // mknod is refused inside a user namespace; the host's node is bound in instead.
      steps.push(step(Op.MOUNT, `bind host ${d.path}`, 'a user namespace may not create device nodes, but may bind the host\'s (user_namespaces(7))', { s: [d.path, d.path, null, null], n: [MS.BIND, 1, 2, 0, 0] }));
    } else {
      const mode = deviceTypeBits(d.type) | (d.fileMode & 0o7777);
      steps.push(step(Op.MKNOD, `mknod ${d.path} ${d.type} ${d.major} ${d.minor}`, 'a device node the container may use; which ones it may open is the devices cgroup\'s to decide (mknod(2))', { s: [d.path], n: [mode, makedev(d.major, d.minor), d.uid, d.gid] }));
    }
  }
  for (const [link, target] of DEV_LINKS) {
    if (devices.has(link)) continue;
    steps.push(step(Op.SYMLINK, `symlink ${link} -> ${target}`, 'the standard /dev links into /proc and the devpts instance', { s: [target, link] }));
  }
  const cwd = spec.process?.cwd ?? '/';
  if (cwd !== '/') steps.push(step(Op.MKDIR, `mkdir -p ${cwd}`, 'the working directory is created if the image lacks it, as other runtimes do', { s: [cwd], n: [0o755] }));

  steps.push(step(Op.PIVOT_ROOT, `pivot_root ${rootfs}`, 'make the rootfs "/" and detach the host\'s root, so no path leads back to the host; chroot(2) would leave it reachable (pivot_root(2))', { s: [rootfs] }));
  if (linux.rootfsPropagation) {
    steps.push(step(Op.PROPAGATION, `mount --make-${linux.rootfsPropagation} /`, 'linux.rootfsPropagation asks for this propagation on the new root', { s: ['/'], n: [propagationFlags(linux.rootfsPropagation)] }));
  }
  steps.push(...postPivot);
  return steps;
}

function mountSteps(m: Mount, index: number, host: HostFacts, opts: CompileOptions, newUser: boolean, newCgroupNs: boolean, postPivot: PlanStep[]): PlanStep[] {
  const opt = parseMountOptions(m.options);
  const isBind = m.type === 'bind' || (opt.flags & MS.BIND) !== 0;
  const dest = path.posix.normalize(m.destination);
  if (opt.copyUp && (isBind || m.type !== 'tmpfs')) throw new ConfigError(`mounts[${index}].options`, `tmpcopyup applies to tmpfs mounts only, not ${isBind ? 'bind' : m.type}`);
  if (isBind) {
    const source = path.resolve(opts.bundle, m.source!);
    const kind = host.statSource(source);
    if (kind === 'missing') throw new ConfigError(`mounts[${index}].source`, `${source}: ENOENT (no such file or directory)`);
    const remount = opt.flags & BIND_REMOUNT_FLAGS;
    return [
      step(Op.MOUNT, `bind ${source} on ${dest}${remount ? ` (${m.options!.join(',')})` : ''}`, 'a bind mount shows a host path inside the container; its flags take effect on a remount (mount(2))', {
        s: [source, dest, null, null],
        n: [MS.BIND | (opt.flags & MS.REC), 1, kind === 'dir' ? 1 : 2, remount, opt.propagation],
      }),
    ];
  }
  const type = m.type!;
  if (type === 'cgroup' || type === 'cgroup2') return !newCgroupNs && opts.cgroupPath ? ownCgroupSteps(dest, opt, host, opts.cgroupPath, postPivot) : cgroupMountSteps(m, dest, opt, host, newUser && !newCgroupNs, postPivot);
  const why = FILESYSTEM_WHY[type] ?? `a ${type} filesystem (mount(2))`;
  const flags = opt.flags & ~(MS.BIND | MS.REC);
  const copyUp = opt.copyUp ? '; tmpcopyup: the directory\'s content is copied into it first, owners, modes and times kept' : '';
  // n2: 1 makes the directory; 4 added copies up what it held.
  return [step(Op.MOUNT, `mount ${type} on ${dest}${m.options?.length ? ` (${m.options.join(',')})` : ''}`, `${why}${copyUp}`, { s: [m.source ?? type, dest, type, opt.data || null], n: [flags, 1, opt.copyUp ? 5 : 1, 0, opt.propagation] })];
}

const FILESYSTEM_WHY: Record<string, string> = {
  proc: 'a procfs that belongs to the new PID namespace, so ps sees only the container (proc(5))',
  sysfs: 'sysfs shows the devices of the new network namespace (sysfs(5))',
  tmpfs: 'an empty in-memory filesystem (tmpfs(5))',
  devpts: 'a private devpts instance: pseudo-terminals the container makes are its own (pts(4))',
  mqueue: 'POSIX message queues of the new IPC namespace (mq_overview(7))',
};

/**
 * A cgroup mount without a cgroup namespace: a fresh cgroupfs would show the
 * host's whole tree (and its limits, not the container's), so, as runc does,
 * the container's own cgroup of each hierarchy is bound in its place. The
 * runtime has made and entered those cgroups at the handshake, before this.
 */
function ownCgroupSteps(dest: string, opt: ReturnType<typeof parseMountOptions>, host: HostFacts, cgroupPath: string, postPivot: PlanStep[]): PlanStep[] {
  // Nothing in a cgroup tree is to be run or opened as a device; and the host's cgroup mounts lock these flags on a bind of them in a user namespace.
  const remount = (opt.flags & BIND_REMOUNT_FLAGS) | MS.NOSUID | MS.NODEV | MS.NOEXEC;
  const bind = (source: string, target: string) =>
    step(Op.MOUNT, `bind the container's cgroup ${source} on ${target}`, 'without a cgroup namespace the container sees its own cgroup here, not the host\'s whole hierarchy, as runc shows it', { s: [source, target, null, null], n: [MS.BIND, 1, 1, remount, 0] });
  const unified = host.cgroups.find((c) => c.fstype === 'cgroup2' && c.mountPoint === '/sys/fs/cgroup');
  if (unified) return [bind(path.posix.join(unified.mountPoint, cgroupPath), dest)];
  return v1CgroupSteps(dest, opt, host, (h, target) => bind(path.posix.join(h.mountPoint, cgroupPath), target), postPivot);
}

/** cgroup v1: a tmpfs at dest holding one mount per hierarchy, read-only as a whole when asked. */
function v1CgroupSteps(dest: string, opt: ReturnType<typeof parseMountOptions>, host: HostFacts, mountHierarchy: (h: CgroupHierarchy, target: string) => PlanStep, postPivot: PlanStep[]): PlanStep[] {
  const steps = [step(Op.MOUNT, `mount tmpfs on ${dest}`, 'cgroup v1 has one hierarchy per controller: a tmpfs holds their mount points', { s: ['tmpfs', dest, 'tmpfs', 'mode=755'], n: [MS.NOSUID | MS.NODEV | MS.NOEXEC, 1, 1, 0, 0] })];
  for (const h of host.cgroups) {
    if (h.mountPoint.startsWith('/sys/fs/cgroup/')) steps.push(mountHierarchy(h, `${dest}/${h.mountPoint.slice('/sys/fs/cgroup/'.length)}`));
  }
  if (opt.flags & MS.RDONLY) postPivot.push(step(Op.REMOUNT_RO, `remount ${dest} read-only`, 'the cgroup mount point tree is read-only, like its hierarchies', { s: [dest] }));
  return steps;
}

/**
 * A fresh cgroup mount. In a cgroup namespace (a user namespace's own, too)
 * its root is the container's cgroup; only a user namespace without a cgroup
 * namespace may not mount one, and gets the host's tree bound.
 */
function cgroupMountSteps(m: Mount, dest: string, opt: ReturnType<typeof parseMountOptions>, host: HostFacts, userNsWithoutCgroupNs: boolean, postPivot: PlanStep[]): PlanStep[] {
  const ro = (opt.flags & MS.RDONLY) !== 0;
  const flags = opt.flags & ~(MS.BIND | MS.REC);
  const unified = host.cgroups.find((c) => c.fstype === 'cgroup2' && c.mountPoint === '/sys/fs/cgroup');
  if (userNsWithoutCgroupNs) {
    // cgroup filesystems cannot be mounted fresh from a user namespace without a cgroup namespace of its own.
    return [step(Op.MOUNT, `bind host /sys/fs/cgroup on ${dest}`, 'a user namespace may not mount cgroupfs; the host tree is bound instead', { s: ['/sys/fs/cgroup', dest, null, null], n: [MS.BIND | MS.REC, 1, 1, ro ? MS.RDONLY : 0, 0] })];
  }
  if (unified) {
    return [step(Op.MOUNT, `mount cgroup2 on ${dest}`, 'the unified cgroup hierarchy; in a cgroup namespace its root is the container\'s own cgroup (cgroups(7))', { s: ['cgroup', dest, 'cgroup2', null], n: [flags, 1, 1, 0, 0] })];
  }
  return v1CgroupSteps(dest, opt, host, (h, target) => step(Op.MOUNT, `mount ${h.fstype} (${h.controllers || 'unified'}) on ${target}`, 'one cgroup hierarchy (cgroups(7))', { s: ['cgroup', target, h.fstype, h.fstype === 'cgroup' ? h.controllers : null], n: [flags, 1, 1, 0, 0] }), postPivot);
}

/**
 * The final execve, made by tsrun-exec from a sealed memfd (CVE-2019-5736).
 * With no_new_privs the seccomp filter rides along and tsrun-exec loads it
 * just before the execve, so nothing of tsrun's runs under it but that call.
 */
function execStep(proc: NonNullable<Spec['process']>, env: string[], seccomp: SeccompProgram | undefined, why: string, forkIntoPidNs = false): PlanStep {
  const filter = seccomp && proc.noNewPrivileges ? seccomp : undefined;
  const title = `execve ${JSON.stringify(proc.args)}${filter ? ` under a seccomp filter of ${filter.instructions} instructions` : ''}${forkIntoPidNs ? ', forked into the PID namespace by tsrun-exec' : ''}`;
  const loads = filter ? '; the filter is loaded by tsrun-exec right before the execve, after no_new_privs (seccomp(2))' : '';
  const relay = forkIntoPidNs ? '; tsrun-exec forks the command into the container\'s PID namespace and stays outside it as its relay (signals in, exit status out), so no copy of the host\'s node ever appears in there' : '';
  return step(Op.EXEC, title, `${why}; tsrun-exec, a sealed read-only copy, makes the call, so /proc/self/exe never leads to a host binary${loads}${relay}`, { argv: [...proc.args], envp: [...env], n: [filter?.flags ?? 0, forkIntoPidNs ? 1 : 0], ...(filter ? { bytes: filter.bytes } : {}) });
}

function credentialSteps(spec: Spec, host: HostFacts, seccomp?: SeccompProgram): PlanStep[] {
  const proc = spec.process!;
  const caps = proc.capabilities ?? {};
  const mask = (names: string[] | undefined) => capabilityMask(names, host.lastCap);
  const user = proc.user;
  const steps: PlanStep[] = [];
  if (seccomp && !proc.noNewPrivileges) {
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the capabilities go, as runc does.
    steps.push(step(Op.SECCOMP, `load a seccomp filter of ${seccomp.instructions} instructions`, 'system calls the container may not make are refused from here on; without no_new_privs this needs CAP_SYS_ADMIN, so it comes before the capabilities are dropped (seccomp(2))', { bytes: seccomp.bytes, n: [seccomp.flags] }));
  }
  if (proc.apparmorProfile) {
    steps.push(step(Op.WRITE_FILE, `AppArmor profile "${proc.apparmorProfile}" on exec`, 'the kernel confines the command with this profile from its execve on (apparmor(7))', { s: ['/proc/self/attr/apparmor/exec', `exec ${proc.apparmorProfile}`] }));
  }
  steps.push(step(Op.CAPBSET, `drop bounding capabilities to [${(caps.bounding ?? []).join(' ')}]`, 'the bounding set caps what any later exec can gain, even of setuid programs (capabilities(7))', { n: [mask(caps.bounding), host.lastCap] }));
  steps.push(step(Op.KEEPCAPS, 'prctl(PR_SET_KEEPCAPS, 1)', 'keep permitted capabilities across the uid change that follows', { n: [1] }));
  steps.push(step(Op.SETGROUPS, `setgroups([${(user.additionalGids ?? []).join(',')}])`, 'supplementary groups; the runtime\'s own must not leak in (setgroups(2))', { ints: [...(user.additionalGids ?? [])] }));
  steps.push(step(Op.SETRESGID, `setresgid(${user.gid})`, 'the container\'s group id, real, effective and saved (setresgid(2))', { n: [user.gid] }));
  steps.push(step(Op.SETRESUID, `setresuid(${user.uid})`, 'the container\'s user id, real, effective and saved (setresuid(2))', { n: [user.uid] }));
  steps.push(step(Op.CHDIR, `chdir ${proc.cwd}`, 'process.cwd, entered as the container user so permissions apply', { s: [proc.cwd] }));
  steps.push(step(Op.KEEPCAPS, 'prctl(PR_SET_KEEPCAPS, 0)', 'back to the default: later uid changes by the command drop capabilities', { n: [0] }));
  steps.push(step(Op.CAPSET, `capset(effective=[${(caps.effective ?? []).join(' ')}])`, 'the effective, permitted and inheritable sets of the spec (capset(2))', { n: [mask(caps.effective), mask(caps.permitted), mask(caps.inheritable)] }));
  // The kernel raises an ambient capability only if it is permitted and
  // inheritable too; others are left out, as runc leaves them with a warning.
  const ambient = (caps.ambient ?? []).filter((c) => caps.permitted?.includes(c) && caps.inheritable?.includes(c));
  if (ambient.length) {
    steps.push(step(Op.AMBIENT, `raise ambient [${ambient.join(' ')}]`, 'ambient capabilities survive exec of a non-setuid program for non-root users (capabilities(7))', { n: [mask(ambient)] }));
  }
  // Without process.user.umask the runtime's own umask stays, as the spec says.
  if (user.umask !== undefined) steps.push(step(Op.UMASK, `umask ${user.umask.toString(8).padStart(4, '0')}`, 'the file mode creation mask (umask(2))', { n: [user.umask] }));
  if (proc.noNewPrivileges) steps.push(step(Op.NO_NEW_PRIVS, 'prctl(PR_SET_NO_NEW_PRIVS, 1)', 'setuid bits and file capabilities can no longer raise privileges (prctl(2))'));
  return steps;
}

/** One line per namespace the first clone creates, for --trace. */
export function describeClone(plan: Plan): string[] {
  return NAMESPACES.filter((k) => plan.cloneFlags & k.flag).map((k) => `new ${k.type} namespace: isolates ${k.isolates} (${k.manPage})`);
}

/** A namespace of a running container to enter, as /proc/PID/ns/NAME. */
export interface JoinNamespace {
  type: string;
  path: string;
}

/**
 * The plan of `exec`: enter the container's namespaces (its user namespace
 * first, its mount namespace last, since that one changes the root), fork
 * into its PID namespace, then take the process's credentials and exec.
 * The runtime places the new process in the container's cgroups at GO.
 */
export function compileExecPlan(process: NonNullable<Spec['process']>, join: JoinNamespace[], host: HostFacts, opts: { trace?: boolean; parentDeathSignal?: number; console?: ConsoleOptions; keyring?: string; seccomp?: SeccompProgram; stdio?: StdioFds } = {}): Plan {
  const steps: PlanStep[] = [];
  const rank = (t: string) => (t === 'user' ? 0 : t === 'mount' ? 2 : 1);
  for (const ns of [...join].sort((a, b) => rank(a.type) - rank(b.type))) {
    const kind = namespaceKind(ns.type)!;
    steps.push(step(Op.SETNS, `setns ${ns.path} (${kind.type})`, `enter the container's ${kind.type} namespace: ${kind.isolates} as the container sees them (setns(2))`, { s: [ns.path], n: [kind.flag] }));
  }
  // No fork here: setns into a PID namespace applies to children only, and
  // this process, a copy of the runtime's node, stays outside it. tsrun-exec
  // makes the one child that enters it, at the end.
  if (opts.parentDeathSignal) steps.push(step(Op.PDEATHSIG, `prctl(PR_SET_PDEATHSIG, ${opts.parentDeathSignal})`, 'the process must not outlive the exec that waits for it', { n: [opts.parentDeathSignal] }));
  steps.push(step(Op.SYNC_WAIT, 'handshake: wait for the runtime', 'the runtime puts the process in the container\'s cgroups first; what it forks stays there'));
  if (opts.keyring) steps.push(keyringStep(opts.keyring));
  steps.push(...stdioSteps(opts.stdio));
  if (opts.console) steps.push(consoleStep(opts.console));
  for (const rl of process.rlimits ?? []) {
    steps.push(step(Op.RLIMIT, `prlimit(${rl.type}, soft=${rl.soft}, hard=${rl.hard})`, 'the container\'s resource limits (getrlimit(2))', { n: [RLIMITS[rl.type], rlimitValue(rl.soft), rlimitValue(rl.hard)] }));
  }
  const spec = { ociVersion: '1.0.2', process } as Spec;
  steps.push(...credentialSteps(spec, host, opts.seccomp));
  if (opts.parentDeathSignal) steps.push(step(Op.PDEATHSIG, `prctl(PR_SET_PDEATHSIG, ${opts.parentDeathSignal}) again`, 'changing uid or gid cleared it (prctl(2))', { n: [opts.parentDeathSignal] }));
  const env = process.env ?? [];
  const pathVar = env.filter((e) => e.startsWith('PATH=')).pop()?.slice(5) ?? DEFAULT_PATH;
  steps.push(step(Op.LOOKUP_EXEC, `find "${process.args[0]}" in PATH`, 'a missing command is reported with exit code 127', { s: [process.args[0], pathVar] }));
  steps.push(step(Op.READY, 'handshake: report ready', 'the process is in place'));
  steps.push(step(Op.WAIT_START, 'wait for start', 'the runtime sends start on the sync socket', { n: [-1] }));
  steps.push(execStep(process, env, opts.seccomp, 'run the command inside the container (execve(2))', join.some((n) => n.type === 'pid')));
  return { cloneFlags: 0, twoStage: false, newUserNamespace: false, uidMap: '', gidMap: '', trace: !!opts.trace, steps };
}
