// The few facts about the host that the plan compiler needs, read once.
import fs = require('node:fs');
import { hostLastCapability } from '../process/capabilities';
import type { CgroupHierarchy, HostFacts } from './compile';

/** Cgroup hierarchies from a mountinfo text (proc(5) format). */
export function parseCgroupMounts(mountinfo: string): CgroupHierarchy[] {
  const out: CgroupHierarchy[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const controllers = fstype === 'cgroup' ? superOptions.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent') && o !== 'clone_children' && o !== 'noprefix' && o !== 'xattr').join(',') : '';
    out.push({ fstype, mountPoint: left[4].replace(/\\040/g, ' '), controllers });
  }
  return out;
}

export function readHostFacts(): HostFacts {
  return {
    lastCap: hostLastCapability(),
    cgroups: parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')),
    statSource(file) {
      try {
        return fs.statSync(file).isDirectory() ? 'dir' : 'file';
      } catch {
        return 'missing';
      }
    },
  };
}
