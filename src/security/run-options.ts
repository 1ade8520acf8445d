// Docker's security flags for `run IMAGE`, as their part of the bundle:
// capabilities, --privileged, --security-opt (seccomp, no-new-privileges,
// apparmor, label, systempaths, unmask), --device, --group-add, --ulimit,
// --sysctl, --shm-size. Each turns into fields of config.json; the runtime
// then applies or refuses them as it does any bundle's.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { parseBytes } from '../cgroup/resources';
import { CAPABILITIES, runtimeCapabilities } from '../process/capabilities';
import { RLIMITS } from '../process/rlimits';
import type { Device, Spec } from '../spec/types';
import { apparmorEnabled, MAX_ID } from '../spec/validate';
import { defaultSeccomp, seccompFromFile } from './seccomp-profile';
import type { DeviceRule } from '../cgroup/placement';

export interface SecurityFlags {
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  securityOpt?: string[];
  /** --device HOST[:CONTAINER[:PERMISSIONS]] */
  devices?: string[];
  /** --group-add NAME|GID */
  groupAdd?: string[];
  /** --ulimit NAME=SOFT[:HARD] */
  ulimits?: string[];
  /** --sysctl KEY=VALUE */
  sysctls?: string[];
  /** --shm-size 64m */
  shmSize?: string;
}

/** What `inspect` shows of them, in Docker's words. */
export interface SecurityRecord {
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  securityOpt: string[];
  devices: string[];
  groupAdd: string[];
}

/** "net_admin", "CAP_NET_ADMIN" -> "CAP_NET_ADMIN"; "all" -> "ALL". */
export function capabilityName(name: string, flag: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const full = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!CAPABILITIES.includes(full)) throw new TsrunError(`${flag} ${name}: unknown capability (capabilities(7) lists them)`);
  return full;
}

/** Docker's rule: ALL in --cap-add starts from every capability, ALL in --cap-drop from none; otherwise drop, then add. */
export function tweakCapabilities(defaults: string[], add: string[], drop: string[]): string[] {
  const a = add.map((c) => capabilityName(c, '--cap-add'));
  const d = new Set(drop.map((c) => capabilityName(c, '--cap-drop')));
  const all = runtimeCapabilities();
  let caps: string[];
  if (a.includes('ALL')) caps = all.filter((c) => !d.has(c));
  else if (d.has('ALL')) caps = a;
  else caps = [...defaults.filter((c) => !d.has(c)), ...a];
  const missing = a.filter((c) => c !== 'ALL' && !all.includes(c));
  if (missing.length) throw new TsrunError(`--cap-add ${missing.join(',')}: tsrun itself does not hold ${missing.length > 1 ? 'these capabilities' : 'this capability'}, so it cannot give ${missing.length > 1 ? 'them' : 'it'} to a container`);
  return [...new Set(caps)];
}

interface SecurityOpts {
  seccomp?: string;
  noNewPrivileges: boolean;
  apparmor?: string;
  systemPaths: boolean;
  unmask: string[];
}

/** --security-opt KEY=VALUE (or KEY:VALUE, Docker's older spelling). */
export function parseSecurityOpts(opts: string[]): SecurityOpts {
  const out: SecurityOpts = { noNewPrivileges: false, systemPaths: true, unmask: [] };
  for (const o of opts) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(o);
    const [key, value] = m ? [m[1], m[2]] : ['', undefined];
    switch (key) {
      case 'no-new-privileges':
        if (value !== undefined && value !== 'true' && value !== 'false') throw new TsrunError(`--security-opt ${o}: no-new-privileges takes true or false`);
        out.noNewPrivileges = value !== 'false';
        break;
      case 'seccomp':
        if (!value) throw new TsrunError(`--security-opt ${o}: give seccomp=unconfined or seccomp=PROFILE.json`);
        out.seccomp = value;
        break;
      case 'apparmor':
        if (!value) throw new TsrunError(`--security-opt ${o}: give apparmor=PROFILE or apparmor=unconfined`);
        out.apparmor = value;
        break;
      case 'label':
        // Nothing to turn off where nothing labels; any label to apply is refused.
        if (value !== 'disable') throw new TsrunError(`--security-opt ${o}: tsrun does not apply SELinux labels (only label=disable is accepted)`);
        break;
      case 'systempaths':
        if (value !== 'unconfined') throw new TsrunError(`--security-opt ${o}: only systempaths=unconfined is known`);
        out.systemPaths = false;
        break;
      case 'unmask':
        if (!value) throw new TsrunError(`--security-opt ${o}: give unmask=ALL or unmask=PATH[:PATH...]`);
        out.unmask.push(...value.split(':'));
        break;
      default:
        throw new TsrunError(`--security-opt ${o}: unknown option (tsrun knows seccomp, no-new-privileges, apparmor, label=disable, systempaths=unconfined, unmask)`);
    }
  }
  return out;
}

/** Every device node of the host under /dev, as --privileged gives them (runc's HostDevices). */
export function hostDevices(dir = '/dev'): Device[] {
  const out: Device[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        // The container has its own of these.
        if (['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd'].includes(p)) continue;
        walk(p);
        continue;
      }
      if (!e.isCharacterDevice() && !e.isBlockDevice()) continue;
      // /dev/console belongs to the terminal setup, as in runc.
      if (p === '/dev/console') continue;
      const dev = deviceOf(p);
      if (dev) out.push(dev);
    }
  };
  walk(dir);
  return out;
}

function deviceOf(hostPath: string, containerPath = hostPath): Device | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(hostPath);
  } catch {
    return undefined;
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice()) return undefined;
  const rdev = st.rdev;
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn);
  return { path: containerPath, type: st.isBlockDevice() ? 'b' : 'c', major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

/** --device /dev/x[:/dev/y[:rwm]]: the node and the cgroup rule that lets it be used. */
export function parseDevice(text: string): { devices: Device[]; rules: DeviceRule[] } {
  const parts = text.split(':');
  if (parts.length > 3 || !parts[0]) throw new TsrunError(`--device ${text}: expected HOST[:CONTAINER[:PERMISSIONS]]`);
  let [host, ctr, perms] = parts;
  if (ctr !== undefined && /^[rwm]+$/.test(ctr) && perms === undefined) [ctr, perms] = [undefined as unknown as string, ctr];
  ctr = ctr || host;
  perms = perms ?? 'rwm';
  if (!/^[rwm]{1,3}$/.test(perms)) throw new TsrunError(`--device ${text}: permissions are some of r, w and m`);
  if (!host.startsWith('/')) throw new TsrunError(`--device ${text}: the host path must be absolute`);
  let st: fs.Stats;
  try {
    st = fs.statSync(host);
  } catch (e) {
    throw new TsrunError(`--device ${text}: ${host}: ${(e as NodeJS.ErrnoException).code}`);
  }
  const devices = st.isDirectory() ? hostDevices(host).map((d) => ({ ...d, path: path.join(ctr, path.relative(host, d.path)) })) : [deviceOf(host, ctr)].filter((d): d is Device => !!d);
  if (!devices.length) throw new TsrunError(`--device ${text}: ${host} is not a device node${st.isDirectory() ? ', nor a directory holding any' : ''}`);
  if (!path.posix.normalize(ctr).startsWith('/dev/')) throw new TsrunError(`--device ${text}: the container path must be under /dev`);
  return { devices, rules: devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: perms })) };
}

/** --ulimit nofile=1024:2048 (one number sets both; -1 or unlimited is no limit). */
export function parseUlimit(text: string): { type: string; soft: number; hard: number } {
  const m = /^([a-z]+)=(-?\w+)(?::(-?\w+))?$/.exec(text);
  if (!m) throw new TsrunError(`--ulimit ${text}: expected NAME=SOFT[:HARD]`);
  const type = `RLIMIT_${m[1].toUpperCase()}`;
  if (RLIMITS[type] === undefined) throw new TsrunError(`--ulimit ${text}: unknown limit "${m[1]}" (getrlimit(2) lists them)`);
  const value = (v: string) => {
    if (v === '-1' || v === 'unlimited') return 2 ** 64 - 1;
    if (!/^\d+$/.test(v)) throw new TsrunError(`--ulimit ${text}: "${v}" is not a number`);
    return Number(v);
  };
  const soft = value(m[2]);
  const hard = m[3] !== undefined ? value(m[3]) : soft;
  if (soft > hard) throw new TsrunError(`--ulimit ${text}: the soft limit is above the hard one`);
  return { type, soft, hard };
}

function parseGroup(name: string, groupFile: string | undefined): number {
  if (/^\d+$/.test(name)) {
    const gid = Number(name);
    if (gid > MAX_ID) throw new TsrunError(`--group-add ${name}: out of range: ids go from 0 to ${MAX_ID}`);
    return gid;
  }
  const line = (groupFile ?? '').split('\n').map((l) => l.split(':')).find((f) => f[0] === name && /^\d+$/.test(f[2] ?? ''));
  if (!line) throw new TsrunError(`--group-add ${name}: no such group in the image's /etc/group`);
  return parseGroup(line[2], undefined);
}

/**
 * Applies the flags to a spec made by specFromImage (Docker's defaults:
 * its 14 capabilities, masked and read-only paths, default devices), and
 * adds the default seccomp filter unless told otherwise.
 */
export function applySecurity(spec: Spec, f: SecurityFlags, ctx: { groupFile?: string } = {}): SecurityRecord {
  const proc = spec.process!;
  const linux = spec.linux!;
  const sec = parseSecurityOpts(f.securityOpt ?? []);
  const rules: DeviceRule[] = [];
  const defaults = proc.capabilities?.bounding ?? [];
  const caps = f.privileged ? runtimeCapabilities() : tweakCapabilities(defaults, f.capAdd ?? [], f.capDrop ?? []);
  proc.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps] };

  if (f.privileged) {
    // Docker's --privileged: every host device usable, nothing masked or read-only, no filter, /sys and cgroups writable.
    linux.devices = hostDevices();
    rules.push({ allow: true, access: 'rwm' });
    linux.maskedPaths = [];
    linux.readonlyPaths = [];
    for (const m of spec.mounts ?? []) {
      if (m.destination === '/sys' || m.destination === '/sys/fs/cgroup') m.options = (m.options ?? []).filter((o) => o !== 'ro');
    }
  }
  if (!sec.systemPaths) {
    linux.maskedPaths = [];
    linux.readonlyPaths = [];
  }
  if (sec.unmask.length) {
    const all = sec.unmask.includes('ALL');
    linux.maskedPaths = all ? [] : (linux.maskedPaths ?? []).filter((p) => !sec.unmask.includes(p));
    if (all) linux.readonlyPaths = [];
  }
  proc.noNewPrivileges = sec.noNewPrivileges;

  if (sec.apparmor && sec.apparmor !== 'unconfined') {
    if (!apparmorEnabled()) throw new TsrunError(`--security-opt apparmor=${sec.apparmor}: AppArmor is not enabled on this host, so the profile cannot be applied`);
    proc.apparmorProfile = sec.apparmor;
  }

  if (f.privileged && sec.seccomp && sec.seccomp !== 'unconfined') throw new TsrunError(`--privileged --security-opt seccomp=${sec.seccomp}: a privileged container has no seccomp filter; drop one of the two`);
  if (f.privileged || sec.seccomp === 'unconfined') delete linux.seccomp;
  else linux.seccomp = sec.seccomp ? seccompFromFile(sec.seccomp, caps) : defaultSeccomp(caps);

  for (const d of f.devices ?? []) {
    const parsed = parseDevice(d);
    linux.devices = [...(linux.devices ?? []).filter((x) => !parsed.devices.some((p) => p.path === x.path)), ...parsed.devices];
    rules.push(...parsed.rules);
  }
  if (f.groupAdd?.length) proc.user.additionalGids = [...new Set([...(proc.user.additionalGids ?? [proc.user.gid]), ...f.groupAdd.map((g) => parseGroup(g, ctx.groupFile))])];
  if (f.ulimits?.length) {
    const limits = new Map((proc.rlimits ?? []).map((r) => [r.type, r]));
    for (const u of f.ulimits) {
      const r = parseUlimit(u);
      limits.set(r.type, r);
    }
    proc.rlimits = [...limits.values()];
  }
  if (f.sysctls?.length) {
    linux.sysctl = { ...linux.sysctl };
    for (const s of f.sysctls) {
      const eq = s.indexOf('=');
      if (eq <= 0) throw new TsrunError(`--sysctl ${s}: expected KEY=VALUE`);
      linux.sysctl[s.slice(0, eq)] = s.slice(eq + 1);
    }
  }
  if (f.shmSize !== undefined) {
    const bytes = parseBytes(f.shmSize, '--shm-size');
    if (bytes <= 0) throw new TsrunError(`--shm-size ${f.shmSize}: must be more than 0`);
    const shm = spec.mounts?.find((m) => m.destination === '/dev/shm');
    if (shm) shm.options = [...(shm.options ?? []).filter((o) => !o.startsWith('size=')), `size=${bytes}`];
  }
  if (rules.length) linux.resources = { ...linux.resources, devices: [...(linux.resources?.devices ?? []), ...rules] };
  return { capAdd: f.capAdd ?? [], capDrop: f.capDrop ?? [], privileged: !!f.privileged, securityOpt: f.securityOpt ?? [], devices: f.devices ?? [], groupAdd: f.groupAdd ?? [] };
}
