// create: bundle in, a container process waiting to exec out (runtime-spec
// "create"). Nothing is left behind when it fails.
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { cgroupPathFor, DEFAULT_DEVICE_RULES, hostHierarchies, killCgroups, placeInCgroups, planWrites, removeCgroups, type CgroupPlacement, type DeviceRule } from '../cgroup/placement';
import { ConfigError, TsrunError } from '../errors';
import { compilePlan, type HostFacts, type IdmapLayers, type MonitorSpec, type OverlayMount, type StdioFds } from '../plan/compile';
import { holdUserNamespace, type HeldUserNamespace } from '../ns/userns-holder';
import { readHostFacts } from '../plan/host-facts';
import { launch, type LaunchedProcess } from '../plan/launch';
import { MONITOR_PATH, native } from '../native';
import { parseSpec } from '../spec/validate';
import { compileSeccomp } from '../security/seccomp';
import type { Spec } from '../spec/types';
import { hostIdOf } from '../spec/id-map';
import { chownedDir, chownedLayers, layersIdmappable } from '../rootfs/chowned-layers';
import { OCI_VERSION, processStartTime, Store, type ContainerRecord } from './store';

export interface CreateOptions {
  id: string;
  bundle: string;
  /** State root (default /run/tsrun). */
  root?: string;
  /** Write the container's pid here once it is created. */
  pidFile?: string;
  /** Receives a line per plan step as it runs. */
  trace?: (line: string) => void;
  /**
   * The caller starts, waits for and deletes the container itself (`run`):
   * start goes over the sync socket instead of the exec fifo, and the
   * container is killed if the caller dies.
   */
  foreground?: boolean;
  /** Use this config instead of reading bundle/config.json. */
  spec?: Spec;
  host?: HostFacts;
  /** An overlay of image layers to mount on the rootfs, inside the container's mount namespace. */
  overlay?: OverlayMount;
  /** Give the container /dev/null as stdin. */
  stdinNull?: boolean;
  /** The container's stdin, stdout and stderr (undefined: this process's own); a monitor's take their place. */
  stdio?: StdioFds;
  /** Hold the container with a monitor (native/monitor.cc) that outlives this process. */
  monitor?: MonitorOptions;
  /** Send the pty master of a terminal made in the container to this unix socket (runc's --console-socket). */
  consoleSocket?: number;
  /** runc's --no-new-keyring: the container keeps the caller's session keyring. */
  noNewKeyring?: boolean;
}

export interface MonitorOptions {
  /** Where the monitor writes the exit status (JSON) when the container exits. */
  exitFile: string;
  /** The container's output, in the CRI log format; absent: discarded. */
  logFile?: string;
  /** Rotate the log (one old generation, FILE.1) past this size. */
  logMaxBytes?: number;
  /** A terminal for the container; the monitor holds its master and logs it. */
  terminal?: boolean;
  /** Run after the exit status is written (clean-up, restart policy). */
  exitCommand?: string[];
  /** While this file names a live process (PID STARTTIME), that process cleans up after an exit: the exit command is not run. */
  claimFile?: string;
  /** Start this command (one health probe) on a schedule while the container runs. */
  health?: { command: string[]; intervalMs: number; timeoutMs: number; startPeriodMs: number; startIntervalMs: number };
  /** -d -i: stdin is a pipe the monitor holds open (nothing writes to it), so a shell waits instead of reading EOF. */
  holdStdin?: boolean;
}

/**
 * The monitor's command line and the fds it gets. Every fd made here but
 * the runtime's end of the control pipe is the monitor's or the
 * container's: the runtime closes its copies after spawn.
 */
function monitorSetup(m: MonitorOptions) {
  const n = native();
  const made: number[] = [];
  const make = (pair: [number, number]) => {
    made.push(...pair);
    return pair;
  };
  try {
    const control = make(n.pipe());
    const argv = [MONITOR_PATH, '--exit', m.exitFile];
    if (m.logFile) argv.push('--log', m.logFile, '--log-max', String(m.logMaxBytes ?? 0));
    const fds = [control[0]];
    let stdio: StdioFds | undefined;
    let consoleFd: number | undefined;
    if (m.terminal) {
      const [mine, theirs] = make(n.socketPair());
      fds.push(mine);
      argv.push('--console', '4');
      consoleFd = theirs;
    } else {
      const out = make(n.pipe());
      const err = make(n.pipe());
      fds.push(out[0], err[0]);
      argv.push('--stdout', '4', '--stderr', '5');
      stdio = [undefined, out[1], err[1]];
      if (m.holdStdin) {
        const input = make(n.pipe());
        fds.push(input[1]);
        argv.push('--hold', '6');
        stdio[0] = input[0];
      }
    }
    if (m.health) {
      const h = m.health;
      argv.push('--health-interval', String(h.intervalMs), '--health-timeout', String(h.timeoutMs), '--health-start-period', String(h.startPeriodMs), '--health-start-interval', String(h.startIntervalMs), '--health', String(h.command.length), ...h.command);
    }
    if (m.claimFile) argv.push('--claim', m.claimFile);
    if (m.exitCommand?.length) argv.push('--', ...m.exitCommand);
    const childSide = made.filter((fd) => fd !== control[1]);
    return {
      spec: { path: MONITOR_PATH, argv, envp: [`PATH=${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`], fds } as MonitorSpec,
      stdio,
      consoleFd,
      /** The runtime's end of the control pipe: the container's pid goes there. */
      control: control[1],
      closeControl() {
        if (this.control >= 0) fs.closeSync(this.control);
        this.control = -1;
      },
      closeChildSide: () => {
        for (const fd of childSide.splice(0)) fs.closeSync(fd);
      },
    };
  } catch (e) {
    for (const fd of made) fs.closeSync(fd);
    throw e;
  }
}

export interface Created {
  record: ContainerRecord;
  store: Store;
  /** The live handle; for a detached create the caller may simply drop it. */
  process: LaunchedProcess;
}

/**
 * The devices cgroup rules, as runc orders them: everything denied, the
 * config's linux.resources.devices in its order, then the default devices
 * (null, zero, full, random, urandom, tty, the console, pseudo-terminals).
 * A node of linux.devices is made, but usable only if a rule allows it.
 */
function deviceRules(spec: Spec): DeviceRule[] {
  const [denyAll, ...defaults] = DEFAULT_DEVICE_RULES;
  return [denyAll, ...((spec.linux?.resources?.devices ?? []) as DeviceRule[]), ...defaults];
}

/** process.consoleSize as the terminal's first window size. */
function consoleSize(spec: Spec): { rows?: number; cols?: number } {
  const c = spec.process?.consoleSize;
  return c ? { rows: c.height, cols: c.width } : {};
}

export function readBundleSpec(bundle: string): Spec {
  const file = path.join(bundle, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TsrunError(`read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSpec(text, file);
}

export async function createContainer(opts: CreateOptions): Promise<Created> {
  const store = new Store(opts.root);
  store.dir(opts.id); // validates the id before anything is made
  const bundle = path.resolve(opts.bundle);
  const spec = opts.spec ?? readBundleSpec(bundle);
  let rootfs: string;
  try {
    rootfs = fs.realpathSync(path.resolve(bundle, spec.root!.path));
  } catch (e) {
    throw new ConfigError('root.path', `${path.resolve(bundle, spec.root!.path)}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (!fs.statSync(rootfs).isDirectory()) throw new ConfigError('root.path', `${rootfs}: ENOTDIR (not a directory)`);

  const terminal = !!spec.process?.terminal;
  if (terminal && !opts.foreground && !opts.monitor && opts.consoleSocket === undefined) throw new TsrunError('process.terminal is true but no --console-socket was given: a detached container\'s terminal needs somewhere to send its master');
  if (!terminal && opts.consoleSocket !== undefined) throw new TsrunError('--console-socket was given but process.terminal is false: there is no terminal to send');
  // Resource settings this host cannot apply fail now, before anything exists.
  planWrites(spec.linux?.resources ?? {}, hostHierarchies());
  const dir = store.claim(opts.id);
  const placement: CgroupPlacement = { created: [], dirs: [] };
  let fifoFd = -1;
  let launched: LaunchedProcess | undefined;
  let mon: ReturnType<typeof monitorSetup> | undefined;
  let held: HeldUserNamespace | undefined;
  try {
    mon = opts.monitor ? monitorSetup(opts.monitor) : undefined;
    const record: ContainerRecord = {
      ociVersion: OCI_VERSION,
      id: opts.id,
      pid: 0,
      pidStartTime: '',
      creatorPid: process.pid,
      creatorStartTime: processStartTime(process.pid) ?? '',
      bundle,
      rootfs,
      created: new Date().toISOString(),
      annotations: spec.annotations ?? {},
      owner: os.userInfo().username,
    };
    store.write(record);
    // The config as created: exec takes the container's process and filter
    // from here, not from a bundle that may have changed since.
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
    if (!opts.foreground) {
      native().mkfifo(store.fifo(opts.id), 0o600);
      // O_RDWR: the open does not block, and the child (which inherits it)
      // blocks in read until `start` writes.
      fifoFd = fs.openSync(store.fifo(opts.id), fs.constants.O_RDWR);
    }
    // An image container in a user namespace: its layers are mounted
    // idmapped for that namespace, which is made first and joined by path.
    const usernsNew = spec.linux?.namespaces?.some((n) => n.type === 'user' && !n.path);
    let planSpec = spec;
    let idmap: IdmapLayers | undefined;
    if (opts.overlay && usernsNew) {
      held = await holdUserNamespace(idMapText(spec.linux?.uidMappings), idMapText(spec.linux?.gidMappings));
      planSpec = structuredClone(spec);
      planSpec.linux!.namespaces = planSpec.linux!.namespaces!.map((n) => (n.type === 'user' ? { type: 'user', path: held!.path } : n));
      idmap = { userns: held.path, dir: path.join(bundle, 'idmap') };
      const layers = opts.overlay.lowerdirs.map((l) => (opts.overlay!.cwd ? path.resolve(opts.overlay!.cwd, l) : l));
      if (!layersIdmappable(layers, held.path)) {
        opts.trace?.(`layers: their filesystem takes no idmapped mount: the image is copied once into ${chownedDir(bundle)}, owned by the ids the user namespace maps`);
        idmap.chowned = await chownedLayers(layers, chownedDir(bundle), spec.linux?.uidMappings, spec.linux?.gidMappings);
      }
      prepareIdmappedLayers(opts.overlay, idmap, spec);
    }
    const cgPath = cgroupPathFor(opts.id, spec.linux?.cgroupsPath);
    const plan = compilePlan(planSpec, opts.host ?? readHostFacts(), {
      rootfs,
      bundle,
      execFifoFd: fifoFd >= 0 ? fifoFd : undefined,
      parentDeathSignal: opts.foreground ? 9 : undefined,
      trace: !!opts.trace,
      overlay: opts.overlay,
      stdinNull: opts.stdinNull,
      stdio: mon?.stdio ?? opts.stdio,
      console: mon?.consoleFd !== undefined ? { socket: mon.consoleFd, ...consoleSize(spec) } : opts.consoleSocket !== undefined ? { socket: opts.consoleSocket, ...consoleSize(spec) } : undefined,
      monitor: mon?.spec,
      keyring: opts.noNewKeyring ? undefined : opts.id,
      seccomp: spec.linux?.seccomp ? compileSeccomp(spec.linux.seccomp, store.seccompCache) : undefined,
      idmap,
      cgroupPath: cgPath,
    });
    record.cgroupPath = cgPath;
    store.write(record);
    const launching = launch(plan, {
      trace: opts.trace,
      place: (pid) => {
        opts.trace?.(`        handshake: runtime places pid ${pid} in cgroup ${cgPath}`);
        record.cgroup = placement;
        store.write(record);
        placeInCgroups(pid, cgPath, placement, { devices: deviceRules(spec), resources: spec.linux?.resources });
        store.write(record);
        if (spec.process?.oomScoreAdj !== undefined) {
          // From outside: inside a user namespace a lower score would be refused.
          opts.trace?.(`        handshake: runtime writes ${spec.process.oomScoreAdj} to /proc/${pid}/oom_score_adj`);
          fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(spec.process.oomScoreAdj));
        }
      },
    });
    // The monitor and the container have their copies of the pipes now (or never will).
    mon?.closeChildSide();
    launched = await launching;
    // The container is in its user namespace now and holds it.
    await held?.release();
    held = undefined;
    record.pid = launched.pid;
    record.pidStartTime = processStartTime(launched.pid) ?? '';
    if (launched.monitorPid) {
      record.monitorPid = launched.monitorPid;
      record.monitorStartTime = processStartTime(launched.monitorPid) ?? '';
    }
    store.write(record);
    if (mon) {
      // From here the monitor records the container's end.
      fs.writeSync(mon.control, `${launched.pid}\n`);
      mon.closeControl();
    }
    if (opts.pidFile) {
      const tmp = `${opts.pidFile}.tmp`;
      fs.writeFileSync(tmp, String(launched.pid));
      fs.renameSync(tmp, path.resolve(opts.pidFile));
    }
    return { record, store, process: launched };
  } catch (e) {
    // EOF without a pid: the monitor kills what it cloned and exits.
    mon?.closeControl();
    if (launched) {
      try {
        process.kill(launched.pid, 'SIGKILL');
        native().reap(launched.pid);
      } catch {
        /* gone */
      }
    }
    try {
      await killCgroups(placement);
      // The error that got us here is the one to report.
      await removeCgroups(placement).catch(() => {});
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    throw e;
  } finally {
    if (fifoFd >= 0) fs.closeSync(fifoFd);
    mon?.closeChildSide();
    await held?.release();
  }
}

const idMapText = (m: { containerID: number; hostID: number; size: number }[] | undefined) => (m ?? []).map((e) => `${e.containerID} ${e.hostID} ${e.size}\n`).join('');

/**
 * A mount point per layer, and the writable directory handed to the
 * container's root: the overlay's own root directory is the upper one's,
 * so it must belong to the user the container's root is on the host.
 */
function prepareIdmappedLayers(overlay: OverlayMount, idmap: IdmapLayers, spec: Spec) {
  if (!idmap.chowned) {
    fs.mkdirSync(idmap.dir, { recursive: true, mode: 0o700 });
    overlay.lowerdirs.forEach((_, i) => fs.mkdirSync(path.join(idmap.dir, String(i)), { recursive: true }));
  }
  const uid = hostIdOf(spec.linux?.uidMappings, 0);
  const gid = hostIdOf(spec.linux?.gidMappings, 0);
  if (uid === undefined || gid === undefined) throw new ConfigError('linux.uidMappings', 'an image container in a user namespace needs its root (id 0) mapped');
  const upper = overlay.upperdir;
  const st = fs.statSync(upper);
  // Only a fresh upper directory is handed over; one in use keeps its owner.
  if (st.uid === 0 && st.gid === 0 && fs.readdirSync(upper).length === 0) fs.chownSync(upper, uid, gid);
}
