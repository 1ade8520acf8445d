// Containers made from images (`run`, `run -d`): what Docker keeps about a
// container beyond the runtime's state. Each lives in the image store's
// containers/ID/ (the bundle, its writable layer, container.json, the log
// and the monitor's exit.json), so it survives a reboot; names are
// symlinks names/NAME -> ID, claimed atomically. Its live process, while
// there is one, is a runtime container of the same id under --root.
import type { NetworkRequest } from '../network/attach';
import type { MountRecord } from '../volume/mounts';
import { crypto } from '../lazy';
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { ImageStore } from '../image/store';
import { LOCK_EX, LOCK_NB, native } from '../native';
import type { SecurityRecord } from '../security/run-options';
import type { UsernsRecord } from '../security/userns';
import type { OverlayMount } from '../plan/compile';
import type { HealthConfig } from './health';
import { oomKills } from '../cgroup/placement';
import { isAlive, Store, statusOf, type ContainerRecord } from './store';

export interface RestartPolicy {
  name: 'no' | 'on-failure' | 'always' | 'unless-stopped';
  /** on-failure:N; 0 = no limit. */
  maximumRetryCount: number;
}

export interface ContainerInfo {
  id: string;
  name: string;
  created: string;
  /** The image as the user named it, and its id. */
  image: string;
  imageId: string;
  /** The process's command line. */
  path: string;
  args: string[];
  config: {
    hostname: string;
    env: string[];
    workingDir: string;
    user: string;
    tty: boolean;
    openStdin: boolean;
    entrypoint: string[] | null;
    cmd: string[] | null;
    labels: Record<string, string>;
    stopSignal: string;
    /** Docker's Config.Healthcheck (the image's with the flags over it); absent: none. */
    healthcheck?: HealthConfig;
    /** The image's SHELL (Docker's Config.Shell), which runs a CMD-SHELL health check; absent: /bin/sh -c. */
    shell?: string[];
  };
  hostConfig: {
    autoRemove: boolean;
    restartPolicy: RestartPolicy;
    logMaxBytes: number;
    readOnly: boolean;
    /** Docker's NetworkMode: none, host, bridge, a network's name, container:ID. */
    network: string;
    /** The networks joined at each start, ports, addresses (bridge and user networks). */
    networking?: NetworkRequest;
    /** -v and --tmpfs as given (Docker's HostConfig.Binds and Tmpfs). */
    binds: string[];
    tmpfs: string[];
    /** Every mount the flags and the image's VOLUME paths gave (absent in records older than volumes). */
    mounts?: MountRecord[];
    init: boolean;
    /** Absent in records made before the security flags existed. */
    security?: SecurityRecord;
    /** A user namespace's mapping, for --userns=auto to keep ranges apart. */
    userns?: UsernsRecord;
  };
  overlay: OverlayMount;
  state: {
    startedAt: string;
    finishedAt: string;
    exitCode: number;
    oomKilled: boolean;
    error: string;
    restartCount: number;
    /** stop, kill or rm asked for the end: no restart policy applies. */
    manuallyStopped: boolean;
    /** The pid of the last start, to match the monitor's exit.json. */
    pid: number;
    /** The restart policy will start it again (after a back-off). */
    restarting: boolean;
    /** The tsrun process making it; if that dies before the container starts, it is dead. */
    creatorPid?: number;
    creatorStartTime?: string;
  };
}

export type DockerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead';

export interface LiveState {
  status: DockerStatus;
  running: boolean;
  paused: boolean;
  pid: number;
  exitCode: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  /** What is wrong, when something is: a monitor gone, a create that died. */
  error: string;
  /** The monitor holding it, if it is alive. */
  monitorPid: number;
}

/** What the monitor writes when the container exits (native/monitor.cc). */
export interface ExitRecord {
  pid: number;
  exitCode: number | null;
  signal: number | null;
  finishedAt: string;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function checkName(name: string) {
  if (!NAME.test(name)) throw new TsrunError(`invalid container name "${name}": use letters, digits and _ . - (not starting with a symbol), at most 128`);
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'fond', 'keen', 'lucid', 'merry', 'nimble', 'proud', 'quiet', 'sharp', 'swift', 'tender', 'vivid', 'witty', 'zen'];
const NOUNS = ['ada', 'babbage', 'curie', 'dijkstra', 'euler', 'fermat', 'gauss', 'hopper', 'knuth', 'lamport', 'lovelace', 'noether', 'ritchie', 'shannon', 'thompson', 'turing'];

export class Registry {
  readonly images: ImageStore;
  readonly runtime: Store;

  constructor(storage?: string, root?: string) {
    this.images = new ImageStore(storage);
    this.runtime = new Store(root);
  }

  // Plain paths: reading (ps, a clean-up that finds its container gone) must
  // not make directories; only a new container does.
  get dir() {
    return path.join(this.images.root, 'containers');
  }

  get namesDir() {
    return path.join(this.images.root, 'names');
  }

  containerDir(id: string) {
    return path.join(this.dir, id);
  }

  file(id: string, name: string) {
    return path.join(this.dir, id, name);
  }

  newId(): string {
    return crypto().randomBytes(32).toString('hex');
  }

  /** A free name like Docker's adjective_scientist. */
  generateName(): string {
    for (;;) {
      const b = crypto().randomBytes(3);
      const name = `${ADJECTIVES[b[0] % ADJECTIVES.length]}_${NOUNS[b[1] % NOUNS.length]}${b[2] % 4 === 0 ? '' : String(b[2] % 100)}`;
      if (!fs.existsSync(path.join(this.namesDir, name))) return name;
    }
  }

  /**
   * Claims a name for id: a symlink, so exactly one of two racing claims
   * wins. A name whose container directory is gone (a removal killed part
   * way) is taken over; claims hold a lock so two cannot both take it.
   */
  claimName(name: string, id: string) {
    checkName(name);
    fs.mkdirSync(this.namesDir, { recursive: true, mode: 0o700 });
    const link = path.join(this.namesDir, name);
    const fd = fs.openSync(this.namesDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      native().flock(fd, LOCK_EX);
      const owner = this.nameOwner(name);
      if (owner !== undefined && !fs.existsSync(this.containerDir(owner))) fs.rmSync(link, { force: true });
      try {
        fs.symlinkSync(id, link);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`container name "${name}" is already in use by container ${this.nameOwner(name)?.slice(0, 12) ?? '(unknown)'}: remove it or choose another name`);
        throw new TsrunError(`claim name ${link}: ${(e as NodeJS.ErrnoException).code}`);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  releaseName(name: string, id: string) {
    if (this.nameOwner(name) === id) fs.rmSync(path.join(this.namesDir, name), { force: true });
  }

  nameOwner(name: string): string | undefined {
    try {
      return fs.readlinkSync(path.join(this.namesDir, name));
    } catch {
      return undefined;
    }
  }

  ids(): string[] {
    try {
      return fs.readdirSync(this.dir).filter((d) => fs.existsSync(path.join(this.dir, d, 'container.json')));
    } catch {
      return [];
    }
  }

  /** Every container's record that can be read now (one removed meanwhile is left out). */
  records(): ContainerInfo[] {
    return this.ids().flatMap((id) => {
      try {
        return [this.read(id)];
      } catch {
        return [];
      }
    });
  }

  /**
   * The id a user's reference means: a full id, a name, or a unique prefix
   * of an image container's id (as Docker resolves them). Runtime
   * containers made with `create` are found by their exact id only, so a
   * runc caller's id that is gone never means another container.
   */
  resolve(ref: string): string {
    if (!ref) throw new TsrunError('no container given');
    if (this.isManaged(ref) || (/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(ref) && this.runtime.exists(ref))) return ref;
    const named = this.liveName(ref);
    if (named) return named;
    let dirs: string[] = [];
    try {
      dirs = fs.readdirSync(this.dir);
    } catch {
      /* no containers yet */
    }
    const matches = dirs.filter((id) => id.startsWith(ref));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw new TsrunError(`"${ref}" matches ${matches.length} containers (${matches.map((m) => m.slice(0, 12)).join(', ')}): give more of the id`);
    throw new TsrunError(`no such container: ${ref}`);
  }

  /** The id a name belongs to, if that container still exists (a name left by a killed rm is not). */
  liveName(name: string): string | undefined {
    if (!NAME.test(name)) return undefined;
    const id = this.nameOwner(name);
    return id && fs.existsSync(this.containerDir(id)) ? id : undefined;
  }

  /**
   * For the runc-compatible verbs (state, delete): the id itself, or a
   * name; never a prefix, so a caller's id that is gone cannot mean another
   * container.
   */
  resolveExact(ref: string): string {
    if (this.runtime.exists(ref) || this.isManaged(ref)) return ref;
    return this.liveName(ref) ?? ref;
  }

  isManaged(id: string) {
    return fs.existsSync(this.file(id, 'container.json'));
  }

  read(id: string): ContainerInfo {
    const file = this.file(id, 'container.json');
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as ContainerInfo;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new TsrunError(`no such container: ${id}`);
      throw new TsrunError(`read ${file}: ${code ?? (e as Error).message}`);
    }
  }

  write(info: ContainerInfo) {
    const file = this.file(info.id, 'container.json');
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  /** Serializes commands on one container (stop/rm/start racing each other or the monitor's clean-up). */
  async lock<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
    let fd: number;
    try {
      fd = fs.openSync(this.containerDir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new TsrunError(`no such container: ${id}`);
      throw e;
    }
    try {
      // Blocking flock would stall the event loop; poll with LOCK_NB instead.
      while (!native().flock(fd, LOCK_EX | LOCK_NB)) await new Promise((r) => setTimeout(r, 20));
      return await fn();
    } finally {
      fs.closeSync(fd);
    }
  }

  readExit(id: string): ExitRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(id, 'exit.json'), 'utf8')) as ExitRecord;
    } catch {
      return undefined;
    }
  }

  runtimeRecord(id: string): ContainerRecord | undefined {
    if (!this.runtime.exists(id)) return undefined;
    try {
      return this.runtime.read(id);
    } catch {
      return undefined;
    }
  }

  /** The container's state now, checked against the live processes. */
  live(info: ContainerInfo): LiveState {
    const s = info.state;
    const base: LiveState = { status: s.startedAt ? 'exited' : 'created', running: false, paused: false, pid: 0, exitCode: s.exitCode, oomKilled: s.oomKilled, startedAt: s.startedAt, finishedAt: s.finishedAt, error: s.error, monitorPid: 0 };
    const rt = this.runtimeRecord(info.id);
    const exit = this.readExit(info.id);
    const exitOfThisRun = exit && exit.pid === s.pid && s.pid > 0 ? exit : undefined;
    if (exitOfThisRun && !s.finishedAt) {
      // Exited; the monitor's clean-up has not recorded it yet.
      base.exitCode = exitOfThisRun.exitCode ?? 128 + (exitOfThisRun.signal ?? 0);
      base.finishedAt = exitOfThisRun.finishedAt;
    }
    if (!rt) {
      if (s.restarting) base.status = 'restarting';
      else if (!s.startedAt && s.creatorPid && !isAlive(s.creatorPid, s.creatorStartTime ?? '')) {
        base.status = 'dead';
        base.error = `tsrun (pid ${s.creatorPid}) ended while making it, before it started; \`tsrun rm -f\` removes it`;
      }
      else if (s.startedAt && !s.finishedAt && !exitOfThisRun) {
        base.exitCode = 255;
        base.error = `the process (pid ${s.pid}) is gone and its exit status was not recorded (tsrun ended, or the host rebooted)`;
      }
      return base;
    }
    const monitorAlive = !!rt.monitorPid && isAlive(rt.monitorPid, rt.monitorStartTime ?? '');
    if (monitorAlive) base.monitorPid = rt.monitorPid!;
    const st = statusOf(this.runtime, rt);
    if (st === 'running' || st === 'paused' || st === 'created') {
      base.status = st === 'created' ? 'created' : st;
      base.running = st !== 'created';
      base.paused = st === 'paused';
      base.pid = rt.pid;
      base.oomKilled = !!rt.cgroup && oomKills(rt.cgroup) > 0;
      if (rt.monitorPid && !monitorAlive) base.error = `its monitor (pid ${rt.monitorPid}) is gone: the exit status will not be recorded; \`tsrun rm -f\` removes it`;
      return base;
    }
    if (st === 'creating') {
      base.status = 'created';
      return base;
    }
    // stopped
    if (rt.pid === 0) {
      base.status = 'dead';
      base.error = `its create (tsrun pid ${rt.creatorPid}) ended before the container was made; \`tsrun rm -f\` removes it`;
      return base;
    }
    base.status = monitorAlive && exitOfThisRun && info.hostConfig.restartPolicy.name !== 'no' && !s.manuallyStopped ? 'restarting' : 'exited';
    if (!exitOfThisRun && !s.finishedAt && !monitorAlive) {
      base.exitCode = 255;
      base.error = rt.monitorPid ? `its monitor (pid ${rt.monitorPid}) ended without recording the exit status` : `the process (pid ${rt.pid}) is gone and its exit status was not recorded (tsrun ended, or the host rebooted)`;
    }
    return base;
  }
}
