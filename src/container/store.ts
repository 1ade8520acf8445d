// Container state on disk: one directory per container under the root
// (default /run/tsrun), its record written atomically (temp file + rename).
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { isFrozen } from '../cgroup/ops';
import { oomKills, type CgroupPlacement } from '../cgroup/placement';
import { LOCK_EX, native } from '../native';

export const DEFAULT_ROOT = '/run/tsrun';
export const OCI_VERSION = '1.2.0';

export type Status = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface ContainerRecord {
  ociVersion: string;
  id: string;
  /** 0 until the container process exists. */
  pid: number;
  /** Start time of pid (proc(5) stat field 22), so a reused pid is not mistaken for it. */
  pidStartTime: string;
  /** The tsrun process that is creating it; a create that died leaves a stopped container. */
  creatorPid: number;
  creatorStartTime: string;
  bundle: string;
  rootfs: string;
  created: string;
  annotations: Record<string, string>;
  owner: string;
  /** The cgroup directories it was placed in, and those made for it. */
  cgroup?: CgroupPlacement;
  /** Its path in every hierarchy, recorded before placement, so a create killed part way is still cleaned up. */
  cgroupPath?: string;
  /** The monitor (native/monitor.cc) holding a container that outlives its command. */
  monitorPid?: number;
  monitorStartTime?: string;
}

/** The state of a container as runtime-spec "state" defines it. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: Status;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
  /** Beyond the spec: the OOM killer ended a process of the container. */
  oomKilled?: boolean;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,253}$/;

export function checkId(id: string) {
  if (!ID.test(id)) throw new TsrunError(`invalid container id "${id}": use letters, digits and _ . + - (not starting with a symbol)`);
}

export class Store {
  readonly root: string;

  constructor(root: string = DEFAULT_ROOT) {
    this.root = path.resolve(root);
  }

  dir(id: string) {
    checkId(id);
    return path.join(this.root, id);
  }

  /** Compiled seccomp programs, by hash (a dot name: never a container id). */
  get seccompCache() {
    return path.join(this.root, '.seccomp');
  }

  fifo(id: string) {
    return path.join(this.dir(id), 'exec.fifo');
  }

  /** Claims the id atomically: mkdir fails if another container has it. */
  claim(id: string): string {
    const dir = this.dir(id);
    fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    try {
      fs.mkdirSync(dir, { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new TsrunError(`container "${id}" already exists (id in use under ${this.root})`);
      throw new TsrunError(`create state directory ${dir}: ${(e as NodeJS.ErrnoException).code}`);
    }
    return dir;
  }

  write(rec: ContainerRecord) {
    const file = path.join(this.dir(rec.id), 'state.json');
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  read(id: string): ContainerRecord {
    const file = path.join(this.dir(id), 'state.json');
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as ContainerRecord;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new TsrunError(`container "${id}" does not exist (no ${file})`);
      throw new TsrunError(`read ${file}: ${code ?? (e as Error).message}`);
    }
  }

  exists(id: string) {
    return fs.existsSync(this.dir(id));
  }

  ids(): string[] {
    try {
      return fs
        .readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && ID.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  remove(id: string) {
    fs.rmSync(this.dir(id), { recursive: true, force: true });
  }

  /** Holds an exclusive lock on the container for commands that race on it. */
  lock<T>(id: string, fn: () => T): T {
    let fd: number;
    try {
      fd = fs.openSync(this.dir(id), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new TsrunError(`container "${id}" does not exist`);
      throw e;
    }
    native().flock(fd, LOCK_EX);
    const release = () => fs.closeSync(fd);
    try {
      const r = fn();
      if (r instanceof Promise) return r.finally(release) as T;
      release();
      return r;
    } catch (e) {
      release();
      throw e;
    }
  }
}

/** Start time of a live, non-zombie process; null if it is gone. */
export function processStartTime(pid: number): string | null {
  if (!pid) return null;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return fields[19] ?? null;
}

export function isAlive(pid: number, startTime: string): boolean {
  return pid > 0 && processStartTime(pid) === startTime;
}

export function statusOf(store: Store, rec: ContainerRecord): Status {
  if (rec.pid === 0) return isAlive(rec.creatorPid, rec.creatorStartTime) ? 'creating' : 'stopped';
  if (!isAlive(rec.pid, rec.pidStartTime)) return 'stopped';
  if (fs.existsSync(store.fifo(rec.id))) return 'created';
  return rec.cgroup && isFrozen(rec.cgroup) ? 'paused' : 'running';
}

export function ociState(store: Store, rec: ContainerRecord): OciState {
  const status = statusOf(store, rec);
  const state: OciState = { ociVersion: rec.ociVersion, id: rec.id, status, bundle: rec.bundle };
  if (status === 'created' || status === 'running' || status === 'paused') state.pid = rec.pid;
  if (Object.keys(rec.annotations).length) state.annotations = rec.annotations;
  if (rec.cgroup && oomKills(rec.cgroup) > 0) state.oomKilled = true;
  return state;
}
