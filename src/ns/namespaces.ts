// Namespace kinds: their clone(2) flags, their /proc/PID/ns names, and what
// each one isolates (printed by --trace for workshops).
import type { NamespaceType } from '../spec/types';

export interface NamespaceKind {
  type: NamespaceType;
  flag: number;
  procName: string;
  isolates: string;
  manPage: string;
}

export const NAMESPACES: readonly NamespaceKind[] = [
  { type: 'user', flag: 0x10000000, procName: 'user', isolates: 'user and group ids, and capabilities', manPage: 'user_namespaces(7)' },
  { type: 'mount', flag: 0x00020000, procName: 'mnt', isolates: 'the mount table', manPage: 'mount_namespaces(7)' },
  { type: 'pid', flag: 0x20000000, procName: 'pid', isolates: 'process ids: the command becomes pid 1', manPage: 'pid_namespaces(7)' },
  { type: 'network', flag: 0x40000000, procName: 'net', isolates: 'network devices, addresses, routes and ports', manPage: 'network_namespaces(7)' },
  { type: 'ipc', flag: 0x08000000, procName: 'ipc', isolates: 'System V IPC objects and POSIX message queues', manPage: 'ipc_namespaces(7)' },
  { type: 'uts', flag: 0x04000000, procName: 'uts', isolates: 'the hostname and NIS domain name', manPage: 'uts_namespaces(7)' },
  { type: 'cgroup', flag: 0x02000000, procName: 'cgroup', isolates: 'the view of the cgroup hierarchy', manPage: 'cgroup_namespaces(7)' },
  { type: 'time', flag: 0x00000080, procName: 'time', isolates: 'the boot and monotonic clocks', manPage: 'time_namespaces(7)' },
];

export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWCGROUP = 0x02000000;

export function namespaceKind(type: string): NamespaceKind | undefined {
  return NAMESPACES.find((k) => k.type === type);
}

/** "CLONE_NEWPID|CLONE_NEWNS" for a flag set, for traces. */
export function cloneFlagNames(flags: number): string {
  const names: Record<string, number> = {
    CLONE_NEWUSER: 0x10000000,
    CLONE_NEWNS: 0x00020000,
    CLONE_NEWPID: 0x20000000,
    CLONE_NEWNET: 0x40000000,
    CLONE_NEWIPC: 0x08000000,
    CLONE_NEWUTS: 0x04000000,
    CLONE_NEWCGROUP: 0x02000000,
    CLONE_NEWTIME: 0x00000080,
  };
  const out = Object.entries(names)
    .filter(([, f]) => (flags & f) !== 0)
    .map(([n]) => n);
  return out.length ? out.join('|') : '0';
}
