// IPv4 addresses and subnets as numbers: parsing, containment, overlap.
import fs = require('node:fs');
import { TsrunError } from '../errors';

export interface Subnet {
  base: number;
  bits: number;
}

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const mask = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

export function parseSubnet(s: string, what = 'subnet'): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s);
  const ip = m ? parseIp(m[1]) : undefined;
  const bits = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(bits >= 8 && bits <= 30)) throw new TsrunError(`${what} ${s}: not an IPv4 CIDR with a prefix of /8 to /30`);
  if ((ip & ~mask(bits)) >>> 0 !== 0) throw new TsrunError(`${what} ${s}: host bits are set (did you mean ${formatIp((ip & mask(bits)) >>> 0)}/${bits}?)`);
  return { base: ip, bits };
}

export const formatSubnet = (s: Subnet) => `${formatIp(s.base)}/${s.bits}`;

export function contains(s: Subnet, ip: number): boolean {
  return (ip & mask(s.bits)) >>> 0 === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const bits = Math.min(a.bits, b.bits);
  return (a.base & mask(bits)) >>> 0 === (b.base & mask(bits)) >>> 0;
}

/** The host's IPv4 routes (main table, as /proc/net/route lists them), default route excluded. */
export function hostRoutes(): { dev: string; subnet: Subnet }[] {
  let text = '';
  try {
    text = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: { dev: string; subnet: Subnet }[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // Little-endian hex, as the kernel prints them.
    const le = (h: string) => Buffer.from(h, 'hex').readUInt32LE(0);
    const dst = le(f[1]);
    const m = le(f[7]);
    const bits = m.toString(2).replace(/0/g, '').length;
    if (bits === 0) continue;
    out.push({ dev: f[0], subnet: { base: dst, bits } });
  }
  return out;
}
