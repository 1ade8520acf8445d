// cgroup v2 has no devices files: device access is decided by an eBPF
// program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the cgroup. The rules
// are first replayed as the v1 devices controller would take them (a
// default, allow or deny, and exceptions), so a config means the same on
// both; then each exception becomes a few instructions. A pure function:
// tested without a kernel, and for real where a cgroup2 mount exists.
import type { DeviceRule } from './placement';

/** access bits of bpf_cgroup_dev_ctx (BPF_DEVCG_ACC_*) */
const ACC = { m: 1, r: 2, w: 4 } as const;
/** device types (BPF_DEVCG_DEV_*) */
const DEV = { b: 1, c: 2 } as const;
const ANY = -1;

interface Exception {
  type: 'a' | 'b' | 'c';
  major: number;
  minor: number;
  access: number;
}

export interface DevicePolicy {
  /** What a device no exception names gets. */
  defaultAllow: boolean;
  exceptions: Exception[];
}

const accessBits = (a: string | undefined) => [...(a ?? 'rwm')].reduce((n, c) => n | (ACC[c as keyof typeof ACC] ?? 0), 0);
const num = (n: number | undefined | null) => (n === undefined || n === null || n < 0 ? ANY : n);

/**
 * The v1 controller's reading of a rule list: "a" rules reset the default
 * and drop the exceptions; other rules add to the exceptions when they go
 * against the default, and take access away from an equal exception when
 * they go with it.
 */
export function devicePolicy(rules: DeviceRule[]): DevicePolicy {
  const policy: DevicePolicy = { defaultAllow: false, exceptions: [] };
  for (const r of rules) {
    const type = (r.type ?? 'a') as Exception['type'];
    if (type === 'a' && num(r.major) === ANY && num(r.minor) === ANY) {
      policy.defaultAllow = r.allow;
      policy.exceptions = [];
      continue;
    }
    const ex: Exception = { type, major: num(r.major), minor: num(r.minor), access: accessBits(r.access) };
    const same = policy.exceptions.find((e) => e.type === ex.type && e.major === ex.major && e.minor === ex.minor);
    if (r.allow !== policy.defaultAllow) {
      if (same) same.access |= ex.access;
      else policy.exceptions.push(ex);
    } else if (same) {
      same.access &= ~ex.access;
      if (!same.access) policy.exceptions.splice(policy.exceptions.indexOf(same), 1);
    }
  }
  return policy;
}

// eBPF instruction encoding (linux/bpf.h): opcode, dst and src registers, offset, immediate.
const LDX_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV_X = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND_K = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT = 0x95; // BPF_JMP | BPF_EXIT

type Insn = [code: number, dst: number, src: number, off: number, imm: number];

/**
 * The program: r3 = device type, r4 = access, r5 = major, r6 = minor; each
 * exception a block that jumps to the next block unless it matches. With a
 * deny default a request is allowed by an exception that covers all of its
 * access (v1's match_exception); with an allow default it is denied by an
 * exception that covers any of it (match_exception_partial).
 */
export function deviceProgramInstructions(policy: DevicePolicy): Insn[] {
  const out: Insn[] = [
    [LDX_W, 2, 1, 0, 0], // r2 = ctx->access_type
    [MOV_X, 3, 2, 0, 0],
    [AND_K, 3, 0, 0, 0xffff], // r3 = type
    [MOV_X, 4, 2, 0, 0],
    [RSH_K, 4, 0, 0, 16], // r4 = access
    [LDX_W, 5, 1, 4, 0], // r5 = ctx->major
    [LDX_W, 6, 1, 8, 0], // r6 = ctx->minor
  ];
  for (const ex of policy.exceptions) {
    const tests: [number, number][] = [];
    if (ex.type !== 'a') tests.push([3, DEV[ex.type]]);
    if (ex.major !== ANY) tests.push([5, ex.major]);
    if (ex.minor !== ANY) tests.push([6, ex.minor]);
    // After the tests: r7 = access bits, the access check, and the verdict.
    const blockLen = tests.length + 5;
    tests.forEach(([reg, value], i) => out.push([JNE_K, reg, 0, blockLen - i - 1, value]));
    out.push([MOV_X, 7, 4, 0, 0]);
    if (policy.defaultAllow) {
      out.push([AND_K, 7, 0, 0, ex.access]);
      out.push([JEQ_K, 7, 0, 2, 0]); // no denied bit asked for: next exception
      out.push([MOV_K, 0, 0, 0, 0]);
    } else {
      out.push([AND_K, 7, 0, 0, ~ex.access & 7]);
      out.push([JNE_K, 7, 0, 2, 0]); // asks for a bit this exception does not give: next
      out.push([MOV_K, 0, 0, 0, 1]);
    }
    out.push([EXIT, 0, 0, 0, 0]);
  }
  out.push([MOV_K, 0, 0, 0, policy.defaultAllow ? 1 : 0]);
  out.push([EXIT, 0, 0, 0, 0]);
  return out;
}

/** The program as the bytes bpf(BPF_PROG_LOAD) takes (struct bpf_insn, little-endian). */
export function deviceProgram(rules: DeviceRule[]): Buffer {
  const insns = deviceProgramInstructions(devicePolicy(rules));
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, dst, src, off, imm], i) => {
    buf.writeUInt8(code, i * 8);
    buf.writeUInt8((src << 4) | dst, i * 8 + 1);
    buf.writeInt16LE(off, i * 8 + 2);
    buf.writeInt32LE(imm | 0, i * 8 + 4);
  });
  return buf;
}
