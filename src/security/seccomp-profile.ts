// Seccomp profiles as Docker and podman keep them (moby's format:
// /usr/share/containers/seccomp.json, `--security-opt seccomp=FILE`) into
// the runtime-spec's linux.seccomp for one container: rules are kept or
// dropped by the container's capabilities, the host's architecture and
// kernel, as moby's and containers/common's converters decide them.
import fs = require('node:fs');
import os = require('node:os');
import { TsrunError } from '../errors';
import { builtinProfile } from './default-seccomp';
import type { LinuxSeccomp, SeccompArg, SeccompRule } from './seccomp';

export interface ProfileFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface ProfileRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: ProfileFilter;
  excludes?: ProfileFilter;
}

export interface Profile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  syscalls?: ProfileRule[] | null;
}

/** The profile podman uses, where containers-common installs it. */
export const SYSTEM_PROFILE = '/usr/share/containers/seccomp.json';

/** The keyring calls Docker's profile refuses: a container must not reach the kernel's key store. */
export const KEYRING_SYSCALLS = ['add_key', 'keyctl', 'request_key'];

export interface HostArch {
  /** libseccomp's name: SCMP_ARCH_X86_64. */
  seccomp: string;
  /** Go's name, as the profile format's "arches" uses it: amd64. */
  go: string;
  /** The running kernel as [major, minor]. */
  kernel: [number, number];
}

export function hostArch(): HostArch {
  const [major, minor] = os.release().split('.').map((n) => parseInt(n, 10));
  const map: Record<string, [string, string]> = { x64: ['SCMP_ARCH_X86_64', 'amd64'], arm64: ['SCMP_ARCH_AARCH64', 'arm64'], ia32: ['SCMP_ARCH_X86', '386'], arm: ['SCMP_ARCH_ARM', 'arm'], s390x: ['SCMP_ARCH_S390X', 's390x'], ppc64: ['SCMP_ARCH_PPC64LE', 'ppc64le'], riscv64: ['SCMP_ARCH_RISCV64', 'riscv64'] };
  const [seccomp, go] = map[process.arch] ?? [`SCMP_ARCH_${process.arch.toUpperCase()}`, process.arch];
  return { seccomp, go, kernel: [major || 0, minor || 0] };
}

const kernelAtLeast = (have: [number, number], want: string) => {
  const [maj, min] = want.split('.').map((n) => parseInt(n, 10));
  return have[0] > maj || (have[0] === maj && have[1] >= (min || 0));
};

/** Go's architecture names of the sub-architectures a filter covers (x86 under amd64, say). */
const GO_ARCH: Record<string, string> = { SCMP_ARCH_X86_64: 'amd64', SCMP_ARCH_X86: 'x86', SCMP_ARCH_X32: 'x32', SCMP_ARCH_AARCH64: 'arm64', SCMP_ARCH_ARM: 'arm', SCMP_ARCH_S390X: 's390x', SCMP_ARCH_S390: 's390', SCMP_ARCH_PPC64LE: 'ppc64le', SCMP_ARCH_RISCV64: 'riscv64' };

/** One container's linux.seccomp from a profile, given its capabilities. */
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** The shape of a profile in Docker's format, checked before it is read: a hostile or broken file is one clear line. */
export function checkProfile(p: unknown, what: string): asserts p is Profile {
  const need = (cond: boolean, field: string, problem: string) => {
    if (!cond) throw new TsrunError(`${what}: ${field} ${problem}`);
  };
  need(isObj(p), '(root)', 'must be an object');
  const o = p as Record<string, unknown>;
  need(typeof o.defaultAction === 'string', 'defaultAction', 'must be a string');
  need(o.archMap === undefined || o.archMap === null || (Array.isArray(o.archMap) && o.archMap.every((a) => isObj(a) && typeof a.architecture === 'string' && (a.subArchitectures === undefined || a.subArchitectures === null || strings(a.subArchitectures)))), 'archMap', 'must be a list of {architecture, subArchitectures}');
  need(o.architectures === undefined || strings(o.architectures), 'architectures', 'must be a list of names');
  need(o.flags === undefined || strings(o.flags), 'flags', 'must be a list of names');
  need(o.syscalls === undefined || o.syscalls === null || Array.isArray(o.syscalls), 'syscalls', 'must be a list');
  ((o.syscalls as unknown[] | null | undefined) ?? []).forEach((r, i) => {
    const f = `syscalls[${i}]`;
    need(isObj(r), f, 'must be an object');
    const rule = r as Record<string, unknown>;
    need(rule.names === undefined || rule.names === null || strings(rule.names), `${f}.names`, 'must be a list of syscall names');
    need(rule.name === undefined || typeof rule.name === 'string', `${f}.name`, 'must be a syscall name');
    need(typeof rule.action === 'string', `${f}.action`, 'must be a string');
    need(rule.args === undefined || rule.args === null || Array.isArray(rule.args), `${f}.args`, 'must be a list');
    for (const k of ['includes', 'excludes']) {
      const x = rule[k];
      if (x === undefined || x === null) continue;
      need(isObj(x), `${f}.${k}`, 'must be an object');
      const filter = x as Record<string, unknown>;
      need(filter.caps === undefined || filter.caps === null || strings(filter.caps), `${f}.${k}.caps`, 'must be a list of capabilities');
      need(filter.arches === undefined || filter.arches === null || strings(filter.arches), `${f}.${k}.arches`, 'must be a list of architectures');
      need(filter.minKernel === undefined || filter.minKernel === null || typeof filter.minKernel === 'string', `${f}.${k}.minKernel`, 'must be a version string');
    }
  });
}

export function profileToSeccomp(profile: Profile, caps: string[], arch: HostArch = hostArch()): LinuxSeccomp {
  checkProfile(profile, 'seccomp profile');
  const has = new Set(caps.map((c) => c.toUpperCase()));
  const archMap = profile.archMap ?? [];
  const entry = archMap.find((a) => a.architecture === arch.seccomp);
  const architectures = archMap.length ? (entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : []) : profile.architectures;
  const syscalls: SeccompRule[] = [];
  for (const [i, rule] of (profile.syscalls ?? []).entries()) {
    const names = rule.names ?? (rule.name ? [rule.name] : []);
    if (!names.length) throw new TsrunError(`seccomp profile: syscalls[${i}] names no syscall`);
    const inc = rule.includes ?? {};
    const exc = rule.excludes ?? {};
    if (inc.caps?.length && !inc.caps.every((c) => has.has(c))) continue;
    if (exc.caps?.some((c) => has.has(c))) continue;
    if (inc.arches?.length && !inc.arches.includes(arch.go)) continue;
    if (exc.arches?.includes(arch.go)) continue;
    if (inc.minKernel && !kernelAtLeast(arch.kernel, inc.minKernel)) continue;
    if (exc.minKernel && kernelAtLeast(arch.kernel, exc.minKernel)) continue;
    syscalls.push({ names, action: rule.action, ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}), ...(rule.args?.length ? { args: rule.args } : {}) });
  }
  void GO_ARCH;
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures?.length ? { architectures } : {}),
    ...(profile.flags?.length ? { flags: profile.flags } : {}),
    syscalls,
  };
}

/** The same filter with the keyring calls refused with EPERM, as in Docker's profile. */
export function withoutKeyring(s: LinuxSeccomp): LinuxSeccomp {
  const syscalls = (s.syscalls ?? []).map((r) => ({ ...r, names: r.names.filter((n) => !KEYRING_SYSCALLS.includes(n)) })).filter((r) => r.names.length);
  return { ...s, syscalls: [...syscalls, { names: [...KEYRING_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
}

function readProfileFile(file: string): Profile {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new TsrunError(`seccomp profile ${file}: not a regular file`);
    if (st.size > 4 << 20) throw new TsrunError(`seccomp profile ${file}: ${st.size} bytes, more than a profile has`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof TsrunError) throw e;
    throw new TsrunError(`read seccomp profile ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (e) {
    throw new TsrunError(`seccomp profile ${file}: not valid JSON (${(e as Error).message})`);
  }
  checkProfile(profile, `seccomp profile ${file}`);
  return profile;
}

/**
 * `run IMAGE`'s filter: the system's profile (podman's) when it is there,
 * the built-in one with the same rules otherwise; the keyring calls refused.
 */
export function defaultSeccomp(caps: string[], systemProfile = SYSTEM_PROFILE): LinuxSeccomp {
  const profile = fs.existsSync(systemProfile) ? readProfileFile(systemProfile) : builtinProfile();
  return withoutKeyring(profileToSeccomp(profile, caps));
}

/** --security-opt seccomp=FILE: a profile in Docker's format, or a runtime-spec linux.seccomp. */
export function seccompFromFile(file: string, caps: string[]): LinuxSeccomp {
  const profile = readProfileFile(file);
  const isDockerFormat = profile.archMap !== undefined || (profile.syscalls ?? []).some((r) => r.includes || r.excludes || r.name);
  return isDockerFormat ? profileToSeccomp(profile, caps) : (profile as LinuxSeccomp);
}
