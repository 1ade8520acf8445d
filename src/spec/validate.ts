// Checks a config.json before anything is created, so a bad config fails
// with the field it is about and leaves nothing behind.
import { ConfigError } from '../errors';
import { namespaceKind } from '../ns/namespaces';
import { capabilityNumber } from '../process/capabilities';
import { RLIMITS } from '../process/rlimits';
import type { Spec } from './types';
import { validateSeccomp } from '../security/seccomp';
import fs = require('node:fs');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
/** The ids a process may have: setresuid(2) takes 32 bits, and (uid_t)-1 means "unchanged". */
export const MAX_ID = 2 ** 31 - 1;
const isId = (v: unknown): v is number => isUint(v) && v <= MAX_ID;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** The namespace a sysctl belongs to, as runc decides it; undefined for host-global ones. */
export function sysctlNamespace(key: string): 'ipc' | 'network' | 'uts' | undefined {
  if (['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'].includes(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key.startsWith('net.')) return 'network';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return undefined;
}

/** Parses config.json text; a syntax error names the file. */
export function parseSpec(text: string, file = 'config.json'): Spec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not valid JSON (${(e as Error).message})`);
  }
  return validateSpec(raw);
}

/**
 * Checks a runtime-spec process object: config.json's, or one given to
 * `exec --process`, which needs the same bounds (a uid past 2^31-1 would
 * wrap to root).
 */
export function validateProcess(p: unknown, field = 'process'): void {
  const need = (cond: boolean, f: string, problem: string) => {
    if (!cond) throw new ConfigError(f.replace(/^process/, field), problem);
  };
  if (!isObject(p)) throw new ConfigError(field, 'must be an object');
  need(isStringArray(p.args) && p.args.length > 0 && p.args[0] !== '', 'process.args', 'must name a command');
  need(typeof p.cwd === 'string' && p.cwd.startsWith('/'), 'process.cwd', 'must be an absolute path');
  need(p.env === undefined || isStringArray(p.env), 'process.env', 'must be an array of "NAME=value" strings');
  (isStringArray(p.env) ? p.env : []).forEach((e, i) => need(/^[^=]+=/.test(e), `process.env[${i}]`, `"${e}" is not NAME=value`));
  need(isObject(p.user), 'process.user', 'is required');
  if (isObject(p.user)) {
    need(isId(p.user.uid), 'process.user.uid', `must be an integer from 0 to ${MAX_ID}, got ${JSON.stringify(p.user.uid)}`);
    need(isId(p.user.gid), 'process.user.gid', `must be an integer from 0 to ${MAX_ID}, got ${JSON.stringify(p.user.gid)}`);
    need(p.user.umask === undefined || (isUint(p.user.umask) && p.user.umask <= 0o777), 'process.user.umask', 'must be 0-0777');
    need(
      p.user.additionalGids === undefined || (Array.isArray(p.user.additionalGids) && p.user.additionalGids.every(isId)),
      'process.user.additionalGids',
      `must be an array of gids from 0 to ${MAX_ID}`,
    );
  }
  if (p.capabilities !== undefined) {
    need(isObject(p.capabilities), 'process.capabilities', 'must be an object');
    for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient']) {
      const list = (p.capabilities as Record<string, unknown>)[set];
      if (list === undefined) continue;
      need(isStringArray(list), `process.capabilities.${set}`, 'must be an array of names');
      (list as string[]).forEach((name, i) =>
        need(capabilityNumber(name) >= 0, `process.capabilities.${set}[${i}]`, `unknown capability "${name}"`),
      );
    }
  }
  if (p.rlimits !== undefined) {
    need(Array.isArray(p.rlimits), 'process.rlimits', 'must be an array');
    const seen = new Set<string>();
    (p.rlimits as unknown[]).forEach((r, i) => {
      const f = `process.rlimits[${i}]`;
      need(isObject(r) && typeof r.type === 'string' && RLIMITS[r.type] !== undefined, `${f}.type`, `unknown limit ${JSON.stringify(isObject(r) ? r.type : r)}`);
      const rl = r as { type: string; soft: unknown; hard: unknown };
      need(isUint(rl.soft) && isUint(rl.hard), f, 'soft and hard must be non-negative integers');
      need((rl.soft as number) <= (rl.hard as number), f, `soft limit ${rl.soft} exceeds hard limit ${rl.hard}`);
      need(!seen.has(rl.type), `${f}.type`, `${rl.type} is given twice`);
      seen.add(rl.type);
    });
  }
  need(p.oomScoreAdj === undefined || (Number.isInteger(p.oomScoreAdj) && Math.abs(p.oomScoreAdj as number) <= 1000), 'process.oomScoreAdj', 'must be an integer from -1000 to 1000');
}

const present = (v: unknown) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0) && !(isObject(v) && Object.keys(v).length === 0);

/**
 * Fields of the runtime-spec that tsrun does not carry out. A config that
 * asks for one is refused: confinement or behaviour silently dropped would
 * be worse than no container.
 */
function refuseUnsupported(raw: Record<string, unknown>) {
  const p = (raw.process ?? {}) as Record<string, unknown>;
  const l = (raw.linux ?? {}) as Record<string, unknown>;
  const r = (l.resources ?? {}) as Record<string, unknown>;
  const refuse = (field: string, value: unknown, why: string) => {
    if (present(value)) throw new ConfigError(field, why);
  };
  refuse('process.apparmorProfile', p.apparmorProfile !== undefined && !apparmorEnabled() ? p.apparmorProfile : undefined, 'AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled), so the profile cannot be applied');
  refuse('process.selinuxLabel', p.selinuxLabel, 'tsrun does not apply SELinux labels');
  refuse('linux.mountLabel', l.mountLabel, 'tsrun does not apply SELinux labels');
  refuse('process.scheduler', p.scheduler, 'scheduling policies are not supported by tsrun');
  refuse('process.ioPriority', p.ioPriority, 'I/O priorities are not supported by tsrun');
  refuse('process.execCPUAffinity', p.execCPUAffinity, 'exec CPU affinity is not supported by tsrun');
  refuse('hooks', raw.hooks, 'lifecycle hooks are not supported by tsrun');
  refuse('linux.intelRdt', l.intelRdt, 'Intel RDT is not supported by tsrun');
  refuse('linux.personality', l.personality, 'execution domains (personality) are not supported by tsrun');
  refuse('linux.timeOffsets', l.timeOffsets, 'time namespaces are not supported by tsrun');
  refuse('linux.memoryPolicy', l.memoryPolicy, 'NUMA memory policies are not supported by tsrun');
  refuse('linux.netDevices', l.netDevices, 'moving network devices into the container is not supported by tsrun');
  refuse('linux.resources.network', r.network, 'the net_cls and net_prio settings are not supported by tsrun');
  refuse('linux.resources.rdma', r.rdma, 'rdma limits are not supported by tsrun');
  const mem = (r.memory ?? {}) as Record<string, unknown>;
  refuse('linux.resources.memory.kernel', mem.kernel, 'kernel memory limits are not supported (the kernel has deprecated them)');
  refuse('linux.resources.memory.kernelTCP', mem.kernelTCP, 'kernel TCP memory limits are not supported by tsrun');
  ((raw.mounts ?? []) as Record<string, unknown>[]).forEach((m, i) => {
    refuse(`mounts[${i}].uidMappings`, m.uidMappings, 'idmapped mounts are not supported by tsrun');
    refuse(`mounts[${i}].gidMappings`, m.gidMappings, 'idmapped mounts are not supported by tsrun');
  });
}

/** Whether the kernel enforces AppArmor, which process.apparmorProfile needs. */
export function apparmorEnabled(): boolean {
  try {
    return fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

export function validateSpec(raw: unknown): Spec {
  if (!isObject(raw)) throw new ConfigError('(root)', 'must be a JSON object');
  const need = (cond: boolean, field: string, problem: string) => {
    if (!cond) throw new ConfigError(field, problem);
  };
  need(typeof raw.ociVersion === 'string' && /^1\.\d+\.\d+/.test(raw.ociVersion), 'ociVersion', `must be a 1.x version string, got ${JSON.stringify(raw.ociVersion)}`);

  need(isObject(raw.root) && typeof raw.root.path === 'string' && raw.root.path !== '', 'root.path', 'is required');

  need(isObject(raw.process), 'process', 'is required to start a container');
  validateProcess(raw.process);

  need(raw.hostname === undefined || typeof raw.hostname === 'string', 'hostname', 'must be a string');
  need(raw.domainname === undefined || typeof raw.domainname === 'string', 'domainname', 'must be a string');

  if (raw.mounts !== undefined) {
    need(Array.isArray(raw.mounts), 'mounts', 'must be an array');
    (raw.mounts as unknown[]).forEach((m, i) => {
      need(isObject(m), `mounts[${i}]`, 'must be an object');
      const mm = m as Record<string, unknown>;
      need(typeof mm.destination === 'string' && mm.destination.startsWith('/'), `mounts[${i}].destination`, 'must be an absolute path');
      need(mm.options === undefined || isStringArray(mm.options), `mounts[${i}].options`, 'must be an array of strings');
      need(mm.type === undefined || typeof mm.type === 'string', `mounts[${i}].type`, 'must be a string');
      need(mm.source === undefined || typeof mm.source === 'string', `mounts[${i}].source`, 'must be a string');
      const isBind = mm.type === 'bind' || (isStringArray(mm.options) && mm.options.some((o) => o === 'bind' || o === 'rbind'));
      need(!isBind || (typeof mm.source === 'string' && mm.source !== ''), `mounts[${i}].source`, 'a bind mount needs a source');
      need(isBind || typeof mm.type === 'string', `mounts[${i}].type`, 'is required unless the mount is a bind mount');
    });
  }

  const linux = raw.linux;
  if (linux !== undefined) {
    need(isObject(linux), 'linux', 'must be an object');
    const l = linux as Record<string, unknown>;
    const nsTypes = new Set<string>();
    // A namespace of the container's own: a new one, or one joined by path that is not this
    // host's (a network namespace tsrun made and bound, say), as runc decides for sysctls.
    const newNamespaces = new Set(((l.namespaces as { type: string; path?: string }[] | undefined) ?? []).filter((n) => isObject(n) && (!n.path || notHosts(n.type, n.path))).map((n) => n.type));
    if (l.namespaces !== undefined) {
      need(Array.isArray(l.namespaces), 'linux.namespaces', 'must be an array');
      (l.namespaces as unknown[]).forEach((ns, i) => {
        const f = `linux.namespaces[${i}]`;
        need(isObject(ns) && typeof ns.type === 'string' && namespaceKind(ns.type) !== undefined, `${f}.type`, `unknown namespace type ${JSON.stringify(isObject(ns) ? ns.type : ns)}`);
        const n = ns as { type: string; path?: unknown };
        need(n.type !== 'time', `${f}.type`, 'time namespaces are not supported');
        need(!nsTypes.has(n.type), `${f}.type`, `namespace "${n.type}" is listed twice`);
        need(n.path === undefined || (typeof n.path === 'string' && n.path.startsWith('/')), `${f}.path`, 'must be an absolute path');
        nsTypes.add(n.type);
      });
    }
    need(nsTypes.has('mount'), 'linux.namespaces', 'a mount namespace is required: the root filesystem is built in it');
    // A new UTS namespace, or one joined by path that is not the runtime's own
    // (runc sets the hostname there too: CRI containers join their pod's).
    const ownsUts = (l.namespaces as { type: string; path?: string }[] | undefined)?.some((n) => n.type === 'uts' && (!n.path || notHosts('uts', n.path)));
    need(raw.hostname === undefined || raw.hostname === '' || !!ownsUts, 'hostname', 'setting it needs a uts namespace of the container\'s own (new, or joined by a path that is not the host\'s)');
    need(raw.domainname === undefined || raw.domainname === '' || !!ownsUts, 'domainname', 'setting it needs a uts namespace of the container\'s own (new, or joined by a path that is not the host\'s)');
    for (const key of ['uidMappings', 'gidMappings'] as const) {
      if (l[key] === undefined) continue;
      need(Array.isArray(l[key]), `linux.${key}`, 'must be an array');
      (l[key] as unknown[]).forEach((m, i) => {
        need(isObject(m) && isUint(m.containerID) && isUint(m.hostID) && isUint(m.size) && (m.size as number) > 0, `linux.${key}[${i}]`, 'needs containerID, hostID and a size above 0');
        const { containerID, hostID, size } = m as { containerID: number; hostID: number; size: number };
        // The container's side holds the ids its processes run as; the host's
        // side may use the whole 32-bit range but (uid_t)-1, as the kernel does.
        need(containerID + size - 1 <= MAX_ID, `linux.${key}[${i}]`, `maps container ids up to ${containerID + size - 1}, past ${MAX_ID}`);
        need(hostID + size - 1 <= 2 ** 32 - 2, `linux.${key}[${i}]`, `maps host ids up to ${hostID + size - 1}, past ${2 ** 32 - 2}`);
      });
    }
    const newUser = (l.namespaces as { type: string; path?: string }[] | undefined)?.some((n) => n.type === 'user' && !n.path);
    if (newUser) {
      need(Array.isArray(l.uidMappings) && l.uidMappings.length > 0, 'linux.uidMappings', 'a new user namespace needs uid mappings');
      need(Array.isArray(l.gidMappings) && l.gidMappings.length > 0, 'linux.gidMappings', 'a new user namespace needs gid mappings');
    }
    for (const key of ['maskedPaths', 'readonlyPaths'] as const) {
      if (l[key] === undefined) continue;
      need(isStringArray(l[key]), `linux.${key}`, 'must be an array of paths');
      (l[key] as string[]).forEach((p, i) => need(p.startsWith('/'), `linux.${key}[${i}]`, 'must be an absolute path'));
    }
    if (l.devices !== undefined) {
      need(Array.isArray(l.devices), 'linux.devices', 'must be an array');
      (l.devices as unknown[]).forEach((d, i) => {
        const f = `linux.devices[${i}]`;
        need(isObject(d) && typeof d.path === 'string' && d.path.startsWith('/dev/') && !d.path.split('/').includes('..'), `${f}.path`, 'must be a path under /dev');
        const dd = d as Record<string, unknown>;
        need(['c', 'u', 'b', 'p'].includes(dd.type as string), `${f}.type`, 'must be c, u, b or p');
        need(dd.type === 'p' || (isUint(dd.major) && isUint(dd.minor)), f, 'needs major and minor numbers');
        for (const k of ['fileMode', 'uid', 'gid']) need(dd[k] === undefined || isUint(dd[k]), `${f}.${k}`, 'must be a non-negative integer');
      });
    }
    if (l.sysctl !== undefined) {
      need(isObject(l.sysctl), 'linux.sysctl', 'must be an object of strings');
      for (const [k, v] of Object.entries(l.sysctl as object)) {
        need(typeof v === 'string', `linux.sysctl.${k}`, 'must be a string');
        need(/^[A-Za-z0-9_.\-/]+$/.test(k) && k.split(/[./]/).every((part) => part !== ''), `linux.sysctl.${k}`, 'is not a sysctl name');
        const ns = sysctlNamespace(k.replace(/\//g, '.'));
        need(ns !== undefined, `linux.sysctl.${k}`, 'is not namespaced: writing it would change the host');
        need(ns === undefined || newNamespaces.has(ns), `linux.sysctl.${k}`, `needs a new ${ns} namespace`);
      }
    }
    const devRules = isObject(l.resources) ? l.resources.devices : undefined;
    if (devRules !== undefined) {
      need(Array.isArray(devRules), 'linux.resources.devices', 'must be an array');
      (devRules as unknown[]).forEach((d, i) => {
        const f = `linux.resources.devices[${i}]`;
        need(isObject(d) && typeof d.allow === 'boolean', `${f}.allow`, 'must be true or false');
        const r = d as Record<string, unknown>;
        // The devices controller (and its BPF program) know a, b and c only: a fifo needs no rule.
        need(r.type === undefined || ['a', 'b', 'c'].includes(r.type as string), `${f}.type`, `must be a, b or c, got ${JSON.stringify(r.type)}`);
        for (const k of ['major', 'minor']) need(r[k] === undefined || r[k] === null || (Number.isInteger(r[k]) && (r[k] as number) >= -1), `${f}.${k}`, 'must be a device number');
        need(r.access === undefined || (typeof r.access === 'string' && /^[rwm]*$/.test(r.access)), `${f}.access`, 'must be some of r, w and m');
      });
    }
    if (l.seccomp !== undefined && l.seccomp !== null) validateSeccomp(l.seccomp);
    const propagations = ['', 'private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared', 'unbindable', 'runbindable'];
    need(l.rootfsPropagation === undefined || propagations.includes(l.rootfsPropagation as string), 'linux.rootfsPropagation', `must be one of ${propagations.filter(Boolean).join(', ')}`);
  } else {
    need(false, 'linux', 'is required: it lists the namespaces');
  }
  refuseUnsupported(raw);
  return raw as unknown as Spec;
}

const NS_FILE: Record<string, string> = { network: 'net', ipc: 'ipc', uts: 'uts' };

/** Whether a namespace file is another namespace than this process's own of that type. */
function notHosts(type: string, file: unknown): boolean {
  if (typeof file !== 'string' || !NS_FILE[type]) return false;
  try {
    const a = fs.statSync(file);
    const b = fs.statSync(`/proc/self/ns/${NS_FILE[type]}`);
    return a.dev !== b.dev || a.ino !== b.ino;
  } catch {
    return false;
  }
}
