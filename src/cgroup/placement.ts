// Putting the container in its cgroup before it runs (handshake step 2) and
// removing that cgroup again. Limits, stats and freezing build on this.
// v1 hosts have a hierarchy per controller; v2 hosts one unified tree;
// hybrid hosts (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified)
// get both kinds of directory.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { CgroupHierarchy } from '../plan/compile';
import { v1Writes, v2Writes, type CgroupWrite, type Resources } from './resources';
import { parseCgroupMounts } from '../plan/host-facts';
import { deviceProgram } from './device-program';
import { isSyscallError, native } from '../native';

export interface CgroupPlacement {
  /** Directories this container made, deepest last; removed deepest first. */
  created: string[];
  /** The container's directory in each hierarchy. */
  dirs: string[];
}

export function hostHierarchies(): CgroupHierarchy[] {
  return parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The runtime-spec cgroupsPath, or the default /tsrun/ID, as a path inside each hierarchy. */
export function cgroupPathFor(id: string, cgroupsPath: string | undefined): string {
  const p = cgroupsPath && cgroupsPath !== '' ? cgroupsPath : `/tsrun/${id}`;
  const rel = path.posix.normalize(p.startsWith('/') ? p : `/tsrun/${p}`);
  if (rel.split('/').includes('..')) throw new TsrunError(`invalid config: linux.cgroupsPath: "${p}" leaves the cgroup hierarchy`);
  return rel;
}

/**
 * Creates the container's cgroup in every hierarchy and moves pid into it,
 * recording in placement what it made as it goes, so that a failure part way
 * can be undone by the caller once the process is dead.
 */
export function placeInCgroups(pid: number, cgPath: string, placement: CgroupPlacement, opts: { devices?: DeviceRule[]; resources?: Resources } = {}, hierarchies: CgroupHierarchy[] = hostHierarchies()): CgroupPlacement {
  const writes = planWrites(opts.resources ?? {}, hierarchies);
  const hasV1Devices = hierarchies.some((h) => h.fstype === 'cgroup' && h.controllers.split(',').includes('devices'));
  // The shared default parent goes too once its last container has gone.
  const sharedParent = cgPath.startsWith('/tsrun/') ? '/tsrun' : undefined;
  try {
    for (const h of hierarchies) {
      const dir = path.join(h.mountPoint, cgPath);
      if (sharedParent) placement.created.push(path.join(h.mountPoint, sharedParent));
      // Other containers create and remove the shared parent concurrently: retry a lost race.
      for (let attempt = 0; ; attempt++) {
        try {
          if (h.fstype === 'cgroup2') enableControllers(h.mountPoint, dir, placement.created);
          const made = placement.created.length;
          mkdirCgroup(h, dir, placement.created);
          // An existing cgroup with processes belongs to someone else: killing
          // "everything in the container's cgroup" later would kill them too.
          if (placement.created.length === made && cgroupPids(dir).length) throw new TsrunError(`cgroup ${dir} already exists and has processes in it; choose another linux.cgroupsPath`);
          if (h.controllers.split(',').includes('cpuset')) inheritCpuset(h.mountPoint, dir);
          if (h.controllers.split(',').includes('devices')) writeDeviceRules(dir, opts.devices ?? DEFAULT_DEVICE_RULES);
          // A pure v2 host has no devices files: the same rules as an eBPF program.
          if (h.fstype === 'cgroup2' && !hasV1Devices) native().attachDeviceProgram(dir, deviceProgram(opts.devices ?? DEFAULT_DEVICE_RULES));
          // Limits before the process moves in: they hold from its first instruction.
          applyWrites(dir, writes.get(h.mountPoint) ?? []);
          fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && attempt < 10) continue;
          if (e instanceof TsrunError) throw e;
          // The addon's errors (the device program) say which call failed and why.
          throw new TsrunError(`place pid ${pid} in cgroup ${dir}: ${isSyscallError(e) ? e.message : code ?? (e as Error).message}`);
        }
      }
      placement.dirs.push(dir);
    }
  } catch (e) {
    if (e instanceof TsrunError) throw e;
    throw new TsrunError(`place pid ${pid} in cgroup ${cgPath}: ${(e as Error).message}`);
  }
  return placement;
}

/** Controllers a v2 hierarchy offers (its root's cgroup.controllers). */
function v2Controllers(mountPoint: string): string[] {
  try {
    return fs.readFileSync(path.join(mountPoint, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Which writes go to which hierarchy. On a hybrid host a controller lives in
 * its v1 hierarchy if it has one, else in the unified tree if offered there.
 */
export function planWrites(r: Resources, hierarchies: CgroupHierarchy[], offered: (mountPoint: string) => string[] = v2Controllers): Map<string, CgroupWrite[]> {
  const out = new Map<string, CgroupWrite[]>();
  const v1 = hierarchies.filter((h) => h.fstype === 'cgroup');
  const v2 = hierarchies.find((h) => h.fstype === 'cgroup2');
  const v1For = (c: string) => v1.find((h) => h.controllers.split(',').includes(c));
  const push = (mp: string, w: CgroupWrite) => out.set(mp, [...(out.get(mp) ?? []), w]);
  const missing = new Set<string>();
  const v1List = v1.length ? v1Writes({ ...r, unified: undefined }) : [];
  for (const w of v1List) {
    const h = v1For(w.controller);
    if (h) push(h.mountPoint, w);
  }
  const v2List = v2 ? v2Writes(v1.length ? { ...r, memory: undefined, cpu: undefined, pids: undefined, blockIO: undefined } : r) : [];
  for (const w of v2List) {
    if (v1For(w.controller)) continue;
    if (offered(v2!.mountPoint).includes(w.controller)) push(v2!.mountPoint, w);
    else missing.add(w.controller);
  }
  for (const w of v1List) if (!v1For(w.controller) && !(v2 && offered(v2.mountPoint).includes(w.controller))) missing.add(w.controller);
  if (v1.length && r.unified && Object.keys(r.unified).length && !v2) throw new TsrunError('invalid config: linux.resources.unified needs a cgroup v2 hierarchy');
  if (missing.size) throw new TsrunError(`linux.resources: the ${[...missing].join(', ')} controller${missing.size > 1 ? 's are' : ' is'} not available on this host`);
  return out;
}

/**
 * v2: each level from the root down enables every controller it offers in
 * cgroup.subtree_control, as runc and systemd do, so the leaf has the files
 * for limits set now, for `update` later, and for `stats`.
 */
export function enableControllers(mountPoint: string, leaf: string, created?: string[]) {
  const levels = path.relative(mountPoint, path.dirname(leaf)).split('/').filter(Boolean);
  let dir = mountPoint;
  for (let i = 0; i <= levels.length; i++) {
    if (i > 0) {
      dir = path.join(dir, levels[i - 1]);
      try {
        fs.mkdirSync(dir);
        created?.push(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    const offered = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
    const enabled = fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
    const want = offered.filter((c) => !enabled.includes(c));
    if (want.length) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' '));
  }
}

/** Kernels whose block layer runs BFQ name the v1 weights blkio.bfq.*, as runc also handles. */
function v1File(dir: string, file: string): string {
  if ((file === 'blkio.weight' || file === 'blkio.weight_device') && !fs.existsSync(path.join(dir, file))) {
    const bfq = file.replace('blkio.', 'blkio.bfq.');
    if (fs.existsSync(path.join(dir, bfq))) return bfq;
  }
  return file;
}

export function applyWrites(dir: string, writes: CgroupWrite[]) {
  const list = [...writes];
  const limit = list.findIndex((w) => w.file === 'memory.limit_in_bytes');
  const memsw = list.findIndex((w) => w.file === 'memory.memsw.limit_in_bytes');
  if (limit >= 0 && memsw > limit) {
    // v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every
    // step: raising both means memsw first, lowering both the limit first.
    const current = Number(fs.readFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), 'utf8'));
    if (Number(list[limit].value) > current) list.splice(limit, 0, list.splice(memsw, 1)[0]);
  }
  for (const w of list) {
    try {
      fs.writeFileSync(path.join(dir, v1File(dir, w.file)), w.value);
    } catch (e) {
      throw new TsrunError(`set ${w.file} to ${w.value} in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

/** A devices cgroup rule (runtime-spec linux.resources.devices). */
export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

/**
 * What a container may use when its config says nothing more: the default
 * devices, pseudo-terminals, and mknod of any node (opening one is still refused).
 */
export const DEFAULT_DEVICE_RULES: DeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

/** v1 devices controller: deny everything, then allow the rules in order. */
function writeDeviceRules(dir: string, rules: DeviceRule[]) {
  const num = (n: number | undefined | null) => (n === undefined || n === null || n < 0 ? '*' : n);
  const rule = (r: DeviceRule) => `${r.type ?? 'a'} ${num(r.major)}:${num(r.minor)} ${r.access ?? 'rwm'}`;
  fs.writeFileSync(path.join(dir, 'devices.deny'), 'a');
  for (const r of rules) {
    if (r.type === 'a' || r.type === undefined) {
      if (r.allow) fs.writeFileSync(path.join(dir, 'devices.allow'), 'a');
      continue;
    }
    fs.writeFileSync(path.join(dir, r.allow ? 'devices.allow' : 'devices.deny'), rule(r));
  }
}

function mkdirCgroup(h: CgroupHierarchy, dir: string, created: string[]): void {
  const parent = path.dirname(dir);
  if (parent !== dir && parent.startsWith(h.mountPoint + '/') && !fs.existsSync(parent)) mkdirCgroup(h, parent, created);
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw e;
  }
  created.push(dir);
}

/**
 * A new v1 cpuset starts with no cpus and no memory nodes and refuses tasks
 * until it has some: each level below the root takes its parent's, top down
 * (a shared parent made by a concurrent create may still be empty).
 */
function inheritCpuset(mountPoint: string, dir: string) {
  const levels = path.relative(mountPoint, dir).split('/').filter(Boolean);
  let parent = mountPoint;
  for (const name of levels) {
    const d = path.join(parent, name);
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (fs.readFileSync(path.join(d, file), 'utf8').trim() === '') fs.writeFileSync(path.join(d, file), fs.readFileSync(path.join(parent, file), 'utf8').trim());
    }
    parent = d;
  }
}

/** How many times the OOM killer struck in the container's memory cgroup. */
export function oomKills(placement: CgroupPlacement): number {
  let kills = 0;
  for (const dir of placement.dirs) {
    for (const file of ['memory.events', 'memory.oom_control']) {
      try {
        const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(dir, file), 'utf8'));
        if (m) kills += Number(m[1]);
      } catch {
        /* not this hierarchy */
      }
    }
  }
  return kills;
}

/** The cgroup directories below dir, at any depth. */
function cgroupsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const stack = [dir]; stack.length; ) {
    const d = stack.pop()!;
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      /* gone */
    }
    for (const e of entries) if (e.isDirectory()) (out.push(path.join(d, e.name)), stack.push(path.join(d, e.name)));
  }
  return out;
}

/** The processes of a cgroup and of every cgroup below it (a container may make its own). */
export function cgroupPids(dir: string): number[] {
  const out: number[] = [];
  for (const d of [dir, ...cgroupsBelow(dir)]) {
    try {
      for (const line of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (line) out.push(Number(line));
    } catch {
      /* gone, or not a cgroup */
    }
  }
  return out;
}

/**
 * SIGKILLs every process left in the container's cgroups: cgroup.kill on
 * v2; on v1 the cgroup is frozen first, so nothing can fork while the
 * processes are listed and killed, then thawed so the kills land.
 */
export async function killCgroups(placement: CgroupPlacement) {
  const freezer = placement.dirs.find((d) => fs.existsSync(path.join(d, 'freezer.state')));
  for (let round = 0; round < 500; round++) {
    const pids = new Set(placement.dirs.flatMap(cgroupPids));
    if (pids.size === 0) return;
    const kill = placement.dirs.map((d) => path.join(d, 'cgroup.kill')).find((f) => fs.existsSync(f));
    if (kill) fs.writeFileSync(kill, '1');
    else {
      if (freezer) fs.writeFileSync(path.join(freezer, 'freezer.state'), 'FROZEN');
      for (const pid of new Set(placement.dirs.flatMap(cgroupPids))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      if (freezer) fs.writeFileSync(path.join(freezer, 'freezer.state'), 'THAWED');
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new TsrunError(`processes are still running in ${placement.dirs[0]} after 5 s of SIGKILL`);
}

/**
 * Removes the directories the container made, deepest first; shared parents
 * stay while in use. The container's own directory can be busy a moment
 * after its last process is killed (a task not yet reaped still counts):
 * that is waited for, and reported if it lasts, never left behind silently.
 */
export async function removeCgroups(placement: CgroupPlacement) {
  // Cgroups the container made below its own go first, as runc removes them.
  const below = placement.dirs.flatMap(cgroupsBelow);
  const own = new Set([...placement.dirs, ...below]);
  for (const dir of [...new Set([...placement.created, ...below])].sort((a, b) => b.length - a.length)) {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' && code !== 'ENOTEMPTY') throw new TsrunError(`remove cgroup ${dir}: ${code}`);
        if (!own.has(dir)) break; // a shared parent that another container still uses
        if (attempt >= 200) throw new TsrunError(`remove cgroup ${dir}: ${code} 2 s after its last process was killed (${cgroupPids(dir).length} process(es) listed in it)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
}
