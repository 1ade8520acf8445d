// Published ports: Docker's -p [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]
// (ranges too), -P, and the host ports they take. The portmap plugin only
// writes DNAT rules and binds nothing, so a port already taken is found
// here, by binding it once, before the rules would steal its traffic.
import dgram = require('node:dgram');
import net = require('node:net');
import { TsrunError } from '../errors';
import { parseIp } from './ipv4';

export interface PortBinding {
  /** "" for every address of the host. */
  hostIp: string;
  /** 0 until a free one is chosen. */
  hostPort: number;
  /** With a host range: the last host port it may take (Docker's 8000-8010:80). */
  hostPortEnd?: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

function port(s: string, what: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new TsrunError(`-p ${what}: "${s}" is not a port (1-65535)`);
  return n;
}

function range(s: string, what: string): [number, number] {
  const [a, b] = s.split('-');
  const lo = port(a, what);
  const hi = b === undefined ? lo : port(b, what);
  if (hi < lo) throw new TsrunError(`-p ${what}: range ${s} ends before it begins`);
  return [lo, hi];
}

export function parsePublish(spec: string): PortBinding[] {
  let rest = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw new TsrunError(`-p ${spec}: protocol "${p}" is not tcp or udp`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  if (rest.startsWith('[')) throw new TsrunError(`-p ${spec}: IPv6 host addresses are not supported (tsrun's networks are IPv4)`);
  const parts = rest.split(':');
  if (parts.length > 3 || parts.some((p, i) => p === '' && !(parts.length === 3 && i === 1))) throw new TsrunError(`-p ${spec}: use [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]`);
  const [ip, hostPart, ctrPart] = parts.length === 3 ? parts : parts.length === 2 ? ['', parts[0], parts[1]] : ['', '', parts[0]];
  if (ip && parseIp(ip) === undefined) throw new TsrunError(`-p ${spec}: "${ip}" is not an IPv4 address`);
  const hostIp = ip === '0.0.0.0' ? '' : ip;
  const [c0, c1] = range(ctrPart, spec);
  if (!hostPart) return Array.from({ length: c1 - c0 + 1 }, (_, i) => ({ hostIp, hostPort: 0, containerPort: c0 + i, protocol }));
  const [h0, h1] = range(hostPart, spec);
  if (c0 === c1 && h1 > h0) return [{ hostIp, hostPort: h0, hostPortEnd: h1, containerPort: c0, protocol }];
  if (h1 - h0 !== c1 - c0) throw new TsrunError(`-p ${spec}: the host range and the container range differ in length`);
  return Array.from({ length: c1 - c0 + 1 }, (_, i) => ({ hostIp, hostPort: h0 + i, containerPort: c0 + i, protocol }));
}

/** -P: each port the image EXPOSEs ("80/tcp", "53/udp", "8080"), on a random host port. */
export function publishAll(exposed: string[]): PortBinding[] {
  return exposed.flatMap((e) => {
    const [p, proto = 'tcp'] = e.split('/');
    if (proto !== 'tcp' && proto !== 'udp') throw new TsrunError(`-P: the image EXPOSEs ${e}, and tsrun publishes only tcp and udp`);
    return [{ hostIp: '', hostPort: 0, containerPort: port(p, `-P (EXPOSE ${e})`), protocol: proto }];
  });
}

/** Binds HOST:PORT once: resolves the port bound (a free one for 0), or the errno. */
function tryBind(hostIp: string, hostPort: number, protocol: 'tcp' | 'udp'): Promise<number | string> {
  const address = hostIp || '0.0.0.0';
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const s = dgram.createSocket('udp4');
      s.once('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
      s.bind(hostPort, address, () => {
        const got = s.address().port;
        s.close(() => resolve(got));
      });
      return;
    }
    const s = net.createServer();
    s.once('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
    s.listen({ port: hostPort, host: address, exclusive: true }, () => {
      const got = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

const taken = (a: PortBinding, b: PortBinding) => a.protocol === b.protocol && a.hostPort === b.hostPort && (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp);

/**
 * The host port of each binding, chosen and checked: not bound by a host
 * process, not published by another container (`others`), not twice here.
 */
export async function allocatePorts(wanted: PortBinding[], others: PortBinding[]): Promise<PortBinding[]> {
  const out: PortBinding[] = [];
  for (const w of wanted) {
    const candidates = w.hostPort === 0 ? [0] : Array.from({ length: (w.hostPortEnd ?? w.hostPort) - w.hostPort + 1 }, (_, i) => w.hostPort + i);
    let last = '';
    let chosen: PortBinding | undefined;
    for (const c of candidates) {
      for (let attempt = 0; attempt < 20 && !chosen; attempt++) {
        const r = await tryBind(w.hostIp, c, w.protocol);
        if (typeof r === 'string') {
          last = r === 'EADDRINUSE' ? 'it is in use on the host' : r === 'EADDRNOTAVAIL' ? `${w.hostIp} is not an address of this host` : r;
          break;
        }
        const b: PortBinding = { hostIp: w.hostIp, hostPort: r, containerPort: w.containerPort, protocol: w.protocol };
        if ([...others, ...out].some((o) => taken(o, b))) {
          last = 'another container publishes it';
          if (c !== 0) break;
          continue; // a random port another container holds: draw again
        }
        chosen = b;
      }
      if (chosen) break;
    }
    if (!chosen) {
      const where = `${w.hostIp || '0.0.0.0'}:${w.hostPort || 'random'}${w.hostPortEnd ? `-${w.hostPortEnd}` : ''}/${w.protocol}`;
      throw new TsrunError(`publish ${where} -> ${w.containerPort}: cannot bind host port: ${last}`);
    }
    out.push(chosen);
  }
  return out;
}

/** Docker's way of writing one: 127.0.0.1:8080->80/tcp, 0.0.0.0:8080->80/tcp. */
export function formatBinding(b: PortBinding): string {
  return `${b.hostIp || '0.0.0.0'}:${b.hostPort}->${b.containerPort}/${b.protocol}`;
}

/** Docker's HostConfig.PortBindings: what was asked ("" for a random port). */
export function portBindings(ports: PortBinding[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) (out[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort ? `${p.hostPort}${p.hostPortEnd ? `-${p.hostPortEnd}` : ''}` : '' });
  return out;
}
