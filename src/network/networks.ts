// The networks of a store: each a record tsrun owns (name, id, subnet,
// bridge) in <storage>/networks/NAME.json, from which its CNI conflist is
// made: bridge + host-local + portmap + firewall + tuning. `bridge` is the
// default network, on the host bridge tsrun0, made on first use.
import { execFileSync } from 'node:child_process';
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { withFileLock } from '../file-lock';
import { CNI_VERSION, type ConfList } from './cni';
import { removeNetworkRules } from './guard';
import { contains, formatIp, formatSubnet, hostRoutes, overlaps, parseIp, parseSubnet, type Subnet } from './ipv4';

export const DEFAULT_NETWORK = 'bridge';
export const DEFAULT_BRIDGE = 'tsrun0';
/** Docker's default-address-pools idea: /16s of 172.17.0.0/12, then /20s of 192.168.0.0/16. */
export const DEFAULT_POOLS = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/15', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/13', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];
/** The modes that are not networks (Docker's): they are refused as network names. */
const RESERVED = new Set(['none', 'host', 'default', 'container']);
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
/** host-local's leases: where the leak checks and `network rm` look. */
export const IPAM_DIR = '/var/lib/cni/networks';

export interface NetworkRecord {
  name: string;
  id: string;
  driver: 'bridge';
  /** The host bridge device. */
  bridge: string;
  subnet: string;
  gateway: string;
  /** No route out and no NAT: members reach each other only. */
  internal: boolean;
  labels: Record<string, string>;
  created: string;
}

export interface CreateNetworkOptions {
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  labels?: Record<string, string>;
  driver?: string;
}

export class Networks {
  readonly dir: string;
  constructor(storage: string) {
    this.dir = path.join(storage, 'networks');
  }

  private file(name: string) {
    return path.join(this.dir, `${name}.json`);
  }

  /** One lock for a store's network changes: creating, removing, and members' /etc/hosts. */
  locked<T>(fn: () => Promise<T> | T): Promise<T> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withFileLock(path.join(this.dir, '.lock'), fn);
  }

  list(): NetworkRecord[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    return names.map((n) => JSON.parse(fs.readFileSync(path.join(this.dir, n), 'utf8')) as NetworkRecord).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** By name, id, or unique id prefix; `bridge` as it will be recorded when a container first joins it. */
  find(ref: string): NetworkRecord | undefined {
    if (NAME.test(ref) && fs.existsSync(this.file(ref))) return JSON.parse(fs.readFileSync(this.file(ref), 'utf8')) as NetworkRecord;
    if (ref === DEFAULT_NETWORK) return this.defaultRecord();
    const byId = this.list().filter((n) => n.id === ref || (ref.length >= 3 && n.id.startsWith(ref)));
    if (byId.length > 1) throw new TsrunError(`network "${ref}" is ambiguous: it begins the ids of ${byId.map((n) => n.name).join(', ')}`);
    return byId[0];
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new TsrunError(`network ${ref} not found (tsrun network ls lists them)`);
    return n;
  }

  /** The default network: on tsrun0, with the subnet tsrun0 already has, else the first free one of the pools. */
  private defaultRecord(): NetworkRecord {
    const onBridge = hostRoutes().find((r) => r.dev === DEFAULT_BRIDGE);
    const subnet = onBridge ? onBridge.subnet : this.freeSubnet();
    return { name: DEFAULT_NETWORK, id: sha256(`tsrun default network ${DEFAULT_BRIDGE}`), driver: 'bridge', bridge: DEFAULT_BRIDGE, subnet: formatSubnet(subnet), gateway: formatIp(subnet.base + 1), internal: false, labels: {}, created: new Date().toISOString() };
  }

  /**
   * A network a container is about to join, recorded (the default one on
   * first use) under the lock, so its subnet cannot be taken meanwhile by a
   * network being created.
   */
  joinable(ref: string): Promise<NetworkRecord> {
    return this.locked(() => this.recorded(this.get(ref)));
  }

  /** The record as written; call with the lock held. */
  recorded(net: NetworkRecord): NetworkRecord {
    return net.name !== DEFAULT_NETWORK || fs.existsSync(this.file(DEFAULT_NETWORK)) ? net : this.write(net);
  }

  create(name: string, opts: CreateNetworkOptions = {}): NetworkRecord {
    if (!NAME.test(name)) throw new TsrunError(`network name "${name}": use 1 to 64 letters, digits, "_", "." or "-", beginning with a letter or digit`);
    if (RESERVED.has(name) || name === DEFAULT_NETWORK) throw new TsrunError(`network name "${name}" is reserved (it is a --network mode, or the default network)`);
    if (opts.driver && opts.driver !== 'bridge') throw new TsrunError(`network create --driver ${opts.driver}: only the bridge driver is supported`);
    if (this.find(name)) throw new TsrunError(`network ${name} already exists`);
    if (opts.gateway && !opts.subnet) throw new TsrunError('network create --gateway needs --subnet');
    let subnet: Subnet;
    if (opts.subnet) {
      subnet = parseSubnet(opts.subnet, '--subnet');
      const clash = this.clashes(subnet);
      if (clash) throw new TsrunError(`network create ${name}: subnet ${opts.subnet} overlaps ${clash}`);
    } else subnet = this.freeSubnet();
    let gateway = subnet.base + 1;
    if (opts.gateway) {
      const g = parseIp(opts.gateway);
      if (g === undefined || !contains(subnet, g) || g === subnet.base || g === subnet.base + 2 ** (32 - subnet.bits) - 1) throw new TsrunError(`--gateway ${opts.gateway}: not a host address of ${formatSubnet(subnet)}`);
      gateway = g;
    }
    const id = crypto.randomBytes(32).toString('hex');
    return this.write({ name, id, driver: 'bridge', bridge: `tsrun-${id.slice(0, 8)}`, subnet: formatSubnet(subnet), gateway: formatIp(gateway), internal: !!opts.internal, labels: opts.labels ?? {}, created: new Date().toISOString() });
  }

  /** The record goes, then the bridge device and host-local's lease directory. Members must be gone first (the caller checks). */
  remove(net: NetworkRecord) {
    if (net.name === DEFAULT_NETWORK) throw new TsrunError('network bridge is the default network: it cannot be removed');
    fs.rmSync(this.file(net.name), { force: true });
    fs.rmSync(path.join(this.dir, `${net.name}.conflist`), { force: true });
    deleteBridge(net.bridge);
    // Its rules, and the plugins' shared chains if it was the last network using them.
    removeNetworkRules(net.bridge);
    fs.rmSync(path.join(IPAM_DIR, cniName(net)), { recursive: true, force: true });
  }

  private write(rec: NetworkRecord): NetworkRecord {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // The conflist beside the record, for CNI's own tools (cnitool, a CNI_PATH of one's own) to read.
    const conf = path.join(this.dir, `${rec.name}.conflist`);
    fs.writeFileSync(`${conf}.${process.pid}.tmp`, JSON.stringify(conflistOf(rec), null, 2) + '\n');
    fs.renameSync(`${conf}.${process.pid}.tmp`, conf);
    const tmp = `${this.file(rec.name)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n');
    fs.renameSync(tmp, this.file(rec.name));
    return rec;
  }

  /** What a subnet would collide with: a host route, or another network of this store. */
  private clashes(s: Subnet): string | undefined {
    for (const r of hostRoutes()) if (overlaps(r.subnet, s)) return `the host's route ${formatSubnet(r.subnet)} on ${r.dev}`;
    for (const n of this.list()) if (overlaps(parseSubnet(n.subnet), s)) return `network ${n.name} (${n.subnet})`;
    return undefined;
  }

  private freeSubnet(): Subnet {
    for (const pool of DEFAULT_POOLS) {
      const p = parseSubnet(pool.base);
      for (let base = p.base; contains(p, base); base += 2 ** (32 - pool.size)) {
        const s = { base, bits: pool.size };
        if (!this.clashes(s)) return s;
      }
    }
    throw new TsrunError('no free subnet is left in the address pools (give --subnet)');
  }
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

/** The network's name as CNI knows it (its cache, host-local's lease directory, the rules' comments): host-wide unique. */
export function cniName(net: NetworkRecord): string {
  return net.name === DEFAULT_NETWORK ? DEFAULT_BRIDGE : `tsrun-${net.id.slice(0, 12)}`;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIP?: string;
}

/** The conflist of one network: the bridge with host-local addresses, ports, the firewall's forwarding rules, and the interface's tuning. */
export function conflistOf(net: NetworkRecord): ConfList {
  const subnet = parseSubnet(net.subnet);
  return {
    cniVersion: CNI_VERSION,
    name: cniName(net),
    plugins: [
      {
        type: 'bridge',
        bridge: net.bridge,
        isGateway: !net.internal,
        // Outbound NAT is one rule per network, tsrun's (guard.ts masquerade), not a chain per container.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: net.subnet, gateway: net.gateway, rangeStart: formatIp(subnet.base + 2) }]],
          routes: net.internal ? [] : [{ dst: '0.0.0.0/0' }],
          dataDir: IPAM_DIR,
        },
        capabilities: { ips: true },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      // same-bridge: a member takes traffic only from its own network's bridge, so user networks stay apart (as Docker's).
      { type: 'firewall', backend: 'iptables', ingressPolicy: 'same-bridge' },
      { type: 'tuning', capabilities: { mac: true } },
    ],
  };
}

function deleteBridge(dev: string) {
  if (!fs.existsSync(`/sys/class/net/${dev}`)) return;
  try {
    execFileSync('ip', ['link', 'del', dev], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim();
    if (fs.existsSync(`/sys/class/net/${dev}`)) throw new TsrunError(`remove bridge ${dev}: ${err || (e as Error).message}`);
  }
}
