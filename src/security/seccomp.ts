// linux.seccomp (runtime-spec): checked here, compiled to BPF by libseccomp
// in the addon (native/seccomp.cc), loaded by the child as late as runc
// loads it. A config asking for what tsrun cannot do (a notify listener)
// is refused, never run unconfined.
import fs = require('node:fs');
import path = require('node:path');
import { ConfigError } from '../errors';
import { native } from '../native';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompRule[];
}

/** A compiled filter: what the child loads, with seccomp(2)'s flags. */
export interface SeccompProgram {
  bytes: Buffer;
  flags: number;
  /** BPF instructions, for --trace. */
  instructions: number;
}

export const SECCOMP_ACTIONS = ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG'];
export const SECCOMP_OPERATORS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];
/** seccomp(2) filter flags tsrun passes on. */
export const SECCOMP_FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};
export const SECCOMP_ARCHITECTURES = [
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64',
];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Checks linux.seccomp; throws a ConfigError naming the field. */
export function validateSeccomp(raw: unknown, field = 'linux.seccomp'): asserts raw is LinuxSeccomp {
  const need = (cond: boolean, f: string, problem: string) => {
    if (!cond) throw new ConfigError(f, problem);
  };
  need(isObject(raw), field, 'must be an object');
  const s = raw as Record<string, unknown>;
  need(typeof s.defaultAction === 'string' && SECCOMP_ACTIONS.includes(s.defaultAction), `${field}.defaultAction`, notify(s.defaultAction) ?? `must be one of ${SECCOMP_ACTIONS.join(', ')}, got ${JSON.stringify(s.defaultAction)}`);
  need(s.defaultErrnoRet === undefined || (isUint(s.defaultErrnoRet) && s.defaultErrnoRet <= 0xffff), `${field}.defaultErrnoRet`, 'must be an errno number');
  // A listener is how SCMP_ACT_NOTIFY hands syscalls to a supervisor; tsrun has none to hand them to.
  need(s.listenerPath === undefined || s.listenerPath === '', `${field}.listenerPath`, 'seccomp notification listeners are not supported by tsrun');
  need(s.listenerMetadata === undefined || s.listenerMetadata === '', `${field}.listenerMetadata`, 'seccomp notification listeners are not supported by tsrun');
  if (s.architectures !== undefined) {
    need(Array.isArray(s.architectures), `${field}.architectures`, 'must be an array');
    (s.architectures as unknown[]).forEach((a, i) => need(typeof a === 'string' && SECCOMP_ARCHITECTURES.includes(a), `${field}.architectures[${i}]`, `unknown architecture ${JSON.stringify(a)}`));
  }
  if (s.flags !== undefined) {
    need(Array.isArray(s.flags), `${field}.flags`, 'must be an array');
    (s.flags as unknown[]).forEach((f, i) => need(typeof f === 'string' && f in SECCOMP_FLAGS, `${field}.flags[${i}]`, `${JSON.stringify(f)} is not a flag tsrun can apply (${Object.keys(SECCOMP_FLAGS).join(', ')})`));
  }
  if (s.syscalls === undefined) return;
  need(Array.isArray(s.syscalls), `${field}.syscalls`, 'must be an array');
  (s.syscalls as unknown[]).forEach((r, i) => {
    const f = `${field}.syscalls[${i}]`;
    need(isObject(r), f, 'must be an object');
    const rule = r as Record<string, unknown>;
    need(Array.isArray(rule.names) && rule.names.length > 0 && rule.names.every((n) => typeof n === 'string' && n !== ''), `${f}.names`, 'must name at least one syscall');
    need(typeof rule.action === 'string' && SECCOMP_ACTIONS.includes(rule.action), `${f}.action`, notify(rule.action) ?? `must be one of ${SECCOMP_ACTIONS.join(', ')}, got ${JSON.stringify(rule.action)}`);
    need(rule.errnoRet === undefined || (isUint(rule.errnoRet) && rule.errnoRet <= 0xffff), `${f}.errnoRet`, 'must be an errno number');
    if (rule.args === undefined) return;
    need(Array.isArray(rule.args), `${f}.args`, 'must be an array');
    (rule.args as unknown[]).forEach((a, k) => {
      const af = `${f}.args[${k}]`;
      need(isObject(a), af, 'must be an object');
      const arg = a as Record<string, unknown>;
      need(isUint(arg.index) && arg.index <= 5, `${af}.index`, 'must be 0-5');
      need(typeof arg.op === 'string' && SECCOMP_OPERATORS.includes(arg.op), `${af}.op`, `must be one of ${SECCOMP_OPERATORS.join(', ')}`);
      // JSON numbers past 2^53 have already lost their low bits: refused rather than compared wrongly.
      for (const key of ['value', 'valueTwo']) {
        const v = arg[key];
        if (key === 'valueTwo' && v === undefined) continue;
        need(isUint(v) && Number.isSafeInteger(v), `${af}.${key}`, `must be an integer from 0 to 2^53-1 (a larger one cannot be read exactly from JSON), got ${JSON.stringify(v)}`);
      }
    });
  });
}

function notify(action: unknown): string | undefined {
  return action === 'SCMP_ACT_NOTIFY' ? 'SCMP_ACT_NOTIFY needs a notification listener, which tsrun does not support' : undefined;
}

const compiled = new Map<string, Buffer>();
const MAX_PROGRAM = 4096 * 8;

/**
 * The BPF program of a seccomp config, built by libseccomp. Building one
 * for three architectures takes libseccomp about 10 ms, so programs are
 * kept, by their config's exact text (and the libseccomp that built them):
 * in this process, and, given a cache directory (the runtime's state root,
 * root's own), on disk for the next tsrun command. A cache file holds the
 * text it was built from and is used only for that very text, so a name
 * that two configs share costs a compile, never a wrong filter.
 */
export function compileSeccomp(s: LinuxSeccomp, cacheDir?: string): SeccompProgram {
  validateSeccomp(s);
  const flags = (s.flags ?? []).reduce((f, name) => f | SECCOMP_FLAGS[name], 0);
  const text = `${native().seccompVersion()}\0${process.arch}\0${JSON.stringify(s)}`;
  let bytes = compiled.get(text) ?? (cacheDir ? readCached(cacheDir, text) : undefined);
  if (!bytes) {
    bytes = build(s);
    if (cacheDir) writeCached(cacheDir, text, bytes);
  }
  compiled.set(text, bytes);
  return { bytes, flags, instructions: bytes.length / 8 };
}

/** A cache file's name: two 32-bit FNV-1a lanes of the text (no crypto module to load for it). */
function cacheName(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x811c9dc5) ^ (b >>> 13);
  }
  return `${(a >>> 0).toString(16).padStart(8, '0')}${(b >>> 0).toString(16).padStart(8, '0')}.bpf`;
}

/** The file: the text's length (4 bytes), the text, the program. */
function readCached(dir: string, text: string): Buffer | undefined {
  try {
    const f = fs.readFileSync(path.join(dir, cacheName(text)));
    const n = f.readUInt32LE(0);
    if (4 + n > f.length || f.toString('utf8', 4, 4 + n) !== text) return undefined;
    const b = f.subarray(4 + n);
    return b.length > 0 && b.length <= MAX_PROGRAM && b.length % 8 === 0 ? Buffer.from(b) : undefined;
  } catch {
    return undefined;
  }
}

function writeCached(dir: string, text: string, bytes: Buffer) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const t = Buffer.from(text, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(t.length, 0);
    const file = path.join(dir, cacheName(text));
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.concat([head, t, bytes]), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    /* a cache that cannot be written only costs the next command a compile */
  }
}

function build(s: LinuxSeccomp): Buffer {
  try {
    return native().compileSeccomp(s);
  } catch (e) {
    throw new ConfigError('linux.seccomp', (e as Error).message.replace(/^linux\.seccomp\.?/, ''));
  }
}
