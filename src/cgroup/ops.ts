// What runs against a live container's cgroups: freezing and thawing,
// changing limits, reading usage, and noticing OOM kills. Each operation
// picks the v1 file where a v1 hierarchy holds the controller, else the v2 one.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { CgroupHierarchy } from '../plan/compile';
import { applyWrites, cgroupPids, enableControllers, hostHierarchies, oomKills, planWrites, type CgroupPlacement } from './placement';
import type { Resources } from './resources';

interface Located {
  hierarchy: CgroupHierarchy;
  dir: string;
}

/** The container's directory in each hierarchy. */
function located(placement: CgroupPlacement, hierarchies = hostHierarchies()): Located[] {
  return placement.dirs.map((dir) => ({ dir, hierarchy: hierarchies.filter((h) => dir === h.mountPoint || dir.startsWith(h.mountPoint + '/')).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0] })).filter((l) => l.hierarchy);
}

function v1Dir(placement: CgroupPlacement, controller: string): string | undefined {
  return located(placement).find((l) => l.hierarchy.fstype === 'cgroup' && l.hierarchy.controllers.split(',').includes(controller))?.dir;
}

function v2Dir(placement: CgroupPlacement): string | undefined {
  return located(placement).find((l) => l.hierarchy.fstype === 'cgroup2')?.dir;
}

const read = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
};

async function until(cond: () => boolean, what: string, ms = 5000) {
  for (let waited = 0; !cond(); waited += 10) {
    if (waited >= ms) throw new TsrunError(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Freezes every process of the container (v1 freezer, or v2 cgroup.freeze). */
export async function freeze(placement: CgroupPlacement) {
  const v1 = v1Dir(placement, 'freezer');
  if (v1) {
    fs.writeFileSync(path.join(v1, 'freezer.state'), 'FROZEN');
    await until(() => read(path.join(v1, 'freezer.state')) === 'FROZEN', `${v1} to freeze`);
    return;
  }
  const v2 = v2Dir(placement);
  if (!v2 || !fs.existsSync(path.join(v2, 'cgroup.freeze'))) throw new TsrunError('this host has neither the v1 freezer nor cgroup.freeze: cannot pause');
  fs.writeFileSync(path.join(v2, 'cgroup.freeze'), '1');
  await until(() => /^frozen 1$/m.test(read(path.join(v2, 'cgroup.events')) ?? ''), `${v2} to freeze`);
}

export async function thaw(placement: CgroupPlacement) {
  const v1 = v1Dir(placement, 'freezer');
  if (v1) {
    fs.writeFileSync(path.join(v1, 'freezer.state'), 'THAWED');
    await until(() => read(path.join(v1, 'freezer.state')) === 'THAWED', `${v1} to thaw`);
    return;
  }
  const v2 = v2Dir(placement);
  if (!v2) throw new TsrunError('this host has neither the v1 freezer nor cgroup.freeze: cannot resume');
  fs.writeFileSync(path.join(v2, 'cgroup.freeze'), '0');
  await until(() => /^frozen 0$/m.test(read(path.join(v2, 'cgroup.events')) ?? ''), `${v2} to thaw`);
}

/** True when the container's cgroups can be frozen (the v1 freezer, or v2's cgroup.freeze). */
export function canFreeze(placement: CgroupPlacement): boolean {
  if (v1Dir(placement, 'freezer')) return true;
  const v2 = v2Dir(placement);
  return !!v2 && fs.existsSync(path.join(v2, 'cgroup.freeze'));
}

export function isFrozen(placement: CgroupPlacement): boolean {
  const v1 = v1Dir(placement, 'freezer');
  if (v1) return read(path.join(v1, 'freezer.state')) === 'FROZEN';
  const v2 = v2Dir(placement);
  return !!v2 && /^frozen 1$/m.test(read(path.join(v2, 'cgroup.events')) ?? '');
}

/** Changes limits of a running container, as `runc update` does. */
export function update(placement: CgroupPlacement, resources: Resources) {
  const writes = planWrites(resources, hostHierarchies());
  for (const l of located(placement)) {
    if (l.hierarchy.fstype === 'cgroup2') enableControllers(l.hierarchy.mountPoint, l.dir);
    applyWrites(l.dir, writes.get(l.hierarchy.mountPoint) ?? []);
  }
}

export interface Stats {
  memory: { usage: number; limit: number | null };
  /** CPU time used, in nanoseconds. */
  cpuNanos: number;
  pids: { current: number; limit: number | null };
  blockIO: { read: number; write: number };
  oomKills: number;
}

const num = (s: string | undefined) => (s === undefined || s === 'max' ? null : Number(s));
/** v1 reports "no limit" as a huge number near 2^63. */
const v1Limit = (s: string | undefined) => (s === undefined || Number(s) >= 2 ** 62 ? null : Number(s));

export function stats(placement: CgroupPlacement): Stats {
  const out: Stats = { memory: { usage: 0, limit: null }, cpuNanos: 0, pids: { current: 0, limit: null }, blockIO: { read: 0, write: 0 }, oomKills: oomKills(placement) };
  const v2 = v2Dir(placement);
  const mem = v1Dir(placement, 'memory');
  if (mem) out.memory = { usage: Number(read(path.join(mem, 'memory.usage_in_bytes')) ?? 0), limit: v1Limit(read(path.join(mem, 'memory.limit_in_bytes'))) };
  else if (v2) out.memory = { usage: Number(read(path.join(v2, 'memory.current')) ?? 0), limit: num(read(path.join(v2, 'memory.max'))) };
  const cpu = v1Dir(placement, 'cpuacct');
  if (cpu) out.cpuNanos = Number(read(path.join(cpu, 'cpuacct.usage')) ?? 0);
  else if (v2) out.cpuNanos = Number(/^usage_usec (\d+)$/m.exec(read(path.join(v2, 'cpu.stat')) ?? '')?.[1] ?? 0) * 1000;
  const pids = v1Dir(placement, 'pids') ?? v2;
  if (pids) out.pids = { current: Number(read(path.join(pids, 'pids.current')) ?? cgroupPids(pids).length), limit: num(read(path.join(pids, 'pids.max'))) };
  const blkio = v1Dir(placement, 'blkio');
  if (blkio) {
    for (const line of (read(path.join(blkio, 'blkio.throttle.io_service_bytes')) ?? '').split('\n')) {
      const m = /^\S+ (Read|Write) (\d+)$/.exec(line);
      if (m) out.blockIO[m[1] === 'Read' ? 'read' : 'write'] += Number(m[2]);
    }
  } else if (v2) {
    for (const line of (read(path.join(v2, 'io.stat')) ?? '').split('\n')) {
      out.blockIO.read += Number(/rbytes=(\d+)/.exec(line)?.[1] ?? 0);
      out.blockIO.write += Number(/wbytes=(\d+)/.exec(line)?.[1] ?? 0);
    }
  }
  return out;
}
