// top: the processes of a container, from its cgroup (every process it
// has, whatever its PID namespace), as `ps -ef` would show them.
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { Registry } from './registry';
import { statusOf } from './store';
import { cgroupPids } from '../cgroup/placement';

export interface ProcessRow {
  uid: number;
  user: string;
  pid: number;
  ppid: number;
  /** Start time, HH:MM (today) or the date. */
  stime: string;
  /** User + system CPU time, [DD-]HH:MM:SS. */
  time: string;
  cmd: string;
}

function users(): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2) m.set(Number(f[2]), f[0]);
    }
  } catch {
    /* numeric ids then */
  }
  return m;
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The pids of a container's cgroup and those below it. A stopped container
 * is refused unless `stopped` (runc's ps lists what its cgroup still holds).
 */
export function containerPids(registry: Registry, id: string, opts: { stopped?: boolean } = {}): number[] {
  const rt = registry.runtimeRecord(id);
  if (!rt) throw new TsrunError(`container ${id.slice(0, 12)} is not running`);
  const st = statusOf(registry.runtime, rt);
  const live = st === 'running' || st === 'paused' || st === 'created';
  if (!live && !opts.stopped) throw new TsrunError(`container ${id.slice(0, 12)} is not running (it is ${st})`);
  for (const dir of rt.cgroup?.dirs ?? []) {
    const pids = cgroupPids(dir);
    if (pids.length) return [...new Set(pids)].sort((a, b) => a - b);
  }
  return live ? [rt.pid] : [];
}

export function topContainer(registry: Registry, id: string): ProcessRow[] {
  const names = users();
  const hz = 100; // USER_HZ on Linux
  const bootMs = Date.now() - os.uptime() * 1000;
  const rows: ProcessRow[] = [];
  for (const pid of containerPids(registry, id)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const cpu = Math.floor((Number(f[11]) + Number(f[12])) / hz);
      const started = new Date(bootMs + (Number(f[19]) / hz) * 1000);
      const days = Math.floor(cpu / 86400);
      rows.push({
        uid,
        user: names.get(uid) ?? String(uid),
        pid,
        ppid: Number(f[1]),
        stime: started.toDateString() === new Date().toDateString() ? `${pad(started.getHours())}:${pad(started.getMinutes())}` : started.toISOString().slice(0, 10),
        time: `${days ? `${days}-` : ''}${pad(Math.floor((cpu % 86400) / 3600))}:${pad(Math.floor((cpu % 3600) / 60))}:${pad(cpu % 60)}`,
        cmd: cmdline || `[${comm}]`,
      });
    } catch {
      /* exited while we looked */
    }
  }
  return rows;
}
