// Putting the container in its cgroup before it runs (handshake step 2) and
// removing that cgroup again. Limits, stats and freezing build on this.
// v1 hosts have a hierarchy per controller; v2 hosts one unified tree;
// hybrid hosts (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified)
// get both kinds of directory.
import fs from 'node:fs';
import path from 'node:path';
import { TsrunError } from '../errors';
import type { CgroupHierarchy } from '../plan/compile';
import { parseCgroupMounts } from '../plan/host-facts';

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

/** Creates the container's cgroup in every hierarchy and moves pid into it. */
export function placeInCgroups(pid: number, cgPath: string, hierarchies: CgroupHierarchy[] = hostHierarchies()): CgroupPlacement {
  const placement: CgroupPlacement = { created: [], dirs: [] };
  // The shared default parent goes too once its last container has gone.
  const sharedParent = cgPath.startsWith('/tsrun/') ? '/tsrun' : undefined;
  try {
    for (const h of hierarchies) {
      const dir = path.join(h.mountPoint, cgPath);
      if (sharedParent) placement.created.push(path.join(h.mountPoint, sharedParent));
      mkdirCgroup(h, dir, placement.created);
      placement.dirs.push(dir);
      const procs = path.join(dir, 'cgroup.procs');
      try {
        fs.writeFileSync(procs, String(pid));
      } catch (e) {
        throw new TsrunError(`place pid ${pid} in cgroup: write ${procs}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
  } catch (e) {
    removeCgroups(placement);
    throw e;
  }
  return placement;
}

function mkdirCgroup(h: CgroupHierarchy, dir: string, created: string[], retried = false): void {
  const parent = path.dirname(dir);
  if (parent !== dir && parent.startsWith(h.mountPoint + '/') && !fs.existsSync(parent)) mkdirCgroup(h, parent, created);
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    // Another container's removal may just have taken the shared parent away.
    if (code === 'ENOENT' && !retried) return mkdirCgroup(h, dir, created, true);
    throw new TsrunError(`create cgroup ${dir}: ${code}`);
  }
  created.push(dir);
  // A new v1 cpuset starts with no cpus and no memory nodes, and refuses
  // tasks until it has some: inherit the parent's.
  if (h.controllers.split(',').includes('cpuset')) {
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      const value = fs.readFileSync(path.join(parent, file), 'utf8').trim();
      if (fs.readFileSync(path.join(dir, file), 'utf8').trim() === '') fs.writeFileSync(path.join(dir, file), value);
    }
  }
}

export function cgroupPids(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs every process left in the container's cgroups. */
export async function killCgroups(placement: CgroupPlacement) {
  for (let round = 0; round < 100; round++) {
    const pids = new Set(placement.dirs.flatMap(cgroupPids));
    if (pids.size === 0) return;
    const kill = placement.dirs.map((d) => path.join(d, 'cgroup.kill')).find((f) => fs.existsSync(f));
    if (kill) fs.writeFileSync(kill, '1');
    else
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Removes the directories the container made, deepest first; shared parents stay while in use. */
export function removeCgroups(placement: CgroupPlacement) {
  for (const dir of [...new Set(placement.created)].sort((a, b) => b.length - a.length)) {
    try {
      fs.rmdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw new TsrunError(`remove cgroup ${dir}: ${code}`);
    }
  }
}
