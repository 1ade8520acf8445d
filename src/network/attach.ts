// A container's part in networks: before each start, its network namespace
// is made and bound under the state root and each of its networks ADDed by
// CNI; at each end (exit, stop, rm, a crash found later) the same is undone
// from what was recorded in <container>/network.json alone. Members of a
// user network find each other by name through their /etc/hosts, which is
// rewritten for every member as members come and go (nerdctl's way).
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { native } from '../native';
import type { ContainerInfo, Registry } from '../container/registry';
import { cniAdd, cniDel, pluginDirs, type CniResult, type ConfList } from './cni';
import { contains, parseIp, parseSubnet } from './ipv4';
import { isNetns, makeNetns, netnsPath, removeNetns } from './netns';
import { conflistOf, DEFAULT_NETWORK, Networks, type NetworkRecord } from './networks';
import { allocatePorts, type PortBinding } from './ports';
import { RESERVED_NAMES } from './run-options';
import { guardLoopback, masquerade } from './guard';

/** What run asked for, kept in the container's record. */
export interface NetworkRequest {
  /** The networks joined at each start, the first one carrying the published ports. */
  networks: { name: string; aliases: string[]; ip?: string }[];
  ports: PortBinding[];
  mac?: string;
  /** --add-host NAME:IP lines. */
  extraHosts: string[];
  /** Start out of the peers' /etc/hosts, until shown (a rolling update's new replica, until it is ready). */
  hidden?: boolean;
}

export interface Attachment {
  network: string;
  networkId: string;
  ifname: string;
  aliases: string[];
  conflist: ConfList;
  capabilityArgs: Record<string, unknown>;
  /** Set once ADD has answered; absent if a crash came first (DEL runs anyway). */
  result?: CniResult;
  /** How many of the list's plugins ADD ran (absent: all of them, as records before this field). */
  pluginsRun?: number;
  /** Where its plugins were found at ADD. */
  pluginDirs?: string[];
}

/** The live part, in <container>/network.json from before the first ADD to after the last DEL. */
export interface NetworkState {
  netns: string;
  ports: PortBinding[];
  attachments: Attachment[];
  /** Attached, but not named in the others' /etc/hosts (not ready yet, or about to stop). */
  hidden?: boolean;
}

const LOCK_EX = 2;
const LOCK_NB = 4;

export const stateFile = (registry: Registry, id: string) => registry.file(id, 'network.json');

export function readNetworkState(registry: Registry, id: string): NetworkState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(registry, id), 'utf8')) as NetworkState;
  } catch {
    return undefined;
  }
}

export function writeState(registry: Registry, id: string, s: NetworkState) {
  const file = stateFile(registry, id);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * Holds <container>/network.lock while fn runs; fn's CNI plugins inherit it
 * (holdFd), so it is held until the last of them has exited, even if this
 * process is killed. Undefined if the container's directory is gone.
 */
export async function withNetworkLock<T>(registry: Registry, id: string, fn: (fd: number) => Promise<T>): Promise<T | undefined> {
  let fd: number;
  try {
    fd = fs.openSync(registry.file(id, 'network.lock'), 'a');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    while (!native().flock(fd, LOCK_EX | LOCK_NB)) await new Promise((r) => setTimeout(r, 10));
    return await fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The address ADD gave an attachment ("172.17.0.2"), if it has one. */
export function addressOf(a: Attachment): string | undefined {
  return a.result?.ips?.[0]?.address.split('/')[0];
}

export function networksOf(registry: Registry): Networks {
  return new Networks(registry.images.root);
}

/** Ports other containers of this store publish now. */
function portsInUse(registry: Registry, self: string): PortBinding[] {
  return registry.ids().filter((id) => id !== self).flatMap((id) => readNetworkState(registry, id)?.ports ?? []);
}

/**
 * Before a start: the namespace, each network's ADD, the host ports, then
 * every member's /etc/hosts. A failure part way undoes what was made.
 */
export async function connectNetworks(registry: Registry, info: ContainerInfo, opts: { cniPath?: string } = {}): Promise<void> {
  const req = info.hostConfig.networking;
  if (!req?.networks.length) return;
  await withNetworkLock(registry, info.id, async (holdFd) => {
    // What an earlier run left (tsrun killed, a reboot) goes first.
    await undo(registry, info.id, holdFd, opts);
    const nets = networksOf(registry);
    // Chosen and recorded under the store's network lock: two runs never take one port, nor one subnet.
    const { state, records } = await nets.locked(async () => {
      const records = req.networks.map((n) => nets.recorded(nets.get(n.name)));
      const ports = await allocatePorts(req.ports, portsInUse(registry, info.id));
      const s: NetworkState = { netns: netnsPath(registry.runtime.root, info.id), ports, attachments: [], ...(req.hidden ? { hidden: true } : {}) };
      writeState(registry, info.id, s);
      return { state: s, records };
    });
    const ports = state.ports;
    try {
      // Made with lo up.
      await makeNetns(state.netns);
      for (const [i, net] of records.entries()) await attach(registry, info, state, net, req.networks[i], i === 0 ? ports : [], { ...opts, holdFd });
      await refreshHosts(registry, records);
    } catch (e) {
      await undo(registry, info.id, holdFd, opts).catch(() => {});
      throw e;
    }
  });
}

/** One network's ADD into a running namespace; call with the network lock held (holdFd). */
export async function attach(registry: Registry, info: ContainerInfo, state: NetworkState, net: NetworkRecord, want: { aliases: string[]; ip?: string }, ports: PortBinding[], opts: { cniPath?: string; holdFd: number }) {
  const capabilityArgs: Record<string, unknown> = {};
  if (ports.length) capabilityArgs.portMappings = ports.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol, ...(p.hostIp ? { hostIP: p.hostIp } : {}) }));
  if (want.ip) {
    const ip = parseIp(want.ip);
    if (ip === undefined || !contains(parseSubnet(net.subnet), ip)) throw new TsrunError(`--ip ${want.ip}: not an address of network ${net.name} (${net.subnet})`);
    capabilityArgs.ips = [`${want.ip}/${net.subnet.split('/')[1]}`];
  }
  if (info.hostConfig.networking?.mac && state.attachments.length === 0) capabilityArgs.mac = info.hostConfig.networking.mac;
  // The plugin directories are recorded: DEL runs the binaries ADD ran, whatever CNI_PATH says then.
  const a: Attachment = { network: net.name, networkId: net.id, ifname: freeIfname(state), aliases: want.aliases, conflist: forAttachment(conflistOf(net), capabilityArgs), capabilityArgs, pluginDirs: pluginDirs(opts.cniPath), pluginsRun: 0 };
  if (ports.length) guardLoopback(net.bridge);
  if (!net.internal) masquerade(net.subnet, net.bridge);
  // Recorded before ADD: a crash inside it still leaves DEL something to run.
  state.attachments.push(a);
  writeState(registry, info.id, state);
  a.result = await cniAdd(
    a.conflist,
    { containerId: info.id, netns: state.netns, ifname: a.ifname, capabilityArgs, cniPath: a.pluginDirs!.join(':'), holdFd: opts.holdFd },
    (n) => {
      a.pluginsRun = n;
      writeState(registry, info.id, state);
    },
    // Each plugin's result as it comes: a DEL after a failure later in the list needs it (the firewall's rules are found from it).
    (r) => {
      a.result = r;
      writeState(registry, info.id, state);
    },
  );
  writeState(registry, info.id, state);
}

/**
 * The network's list without the plugins that would do nothing for this
 * container: portmap with no ports, tuning with no MAC. Each is a process
 * and a few iptables calls at ADD and again at DEL (about 23 and 23 ms
 * here), and what DEL runs is the list recorded with the attachment.
 */
function forAttachment(list: ConfList, capabilityArgs: Record<string, unknown>): ConfList {
  const idle = (type: string) => (type === 'portmap' && !capabilityArgs.portMappings) || (type === 'tuning' && !capabilityArgs.mac);
  return { ...list, plugins: list.plugins.filter((p) => !idle(p.type)) };
}

function freeIfname(state: NetworkState): string {
  for (let n = 0; ; n++) if (!state.attachments.some((a) => a.ifname === `eth${n}`)) return `eth${n}`;
}

/**
 * After the container's processes are gone: DEL of each attachment (last
 * first) from the cached result, the namespace unbound, the record removed,
 * the other members' /etc/hosts rewritten. Runs from network.json alone and
 * may run again: CNI DEL is idempotent.
 */
export async function disconnectNetworks(registry: Registry, id: string, opts: { cniPath?: string } = {}): Promise<void> {
  if (!readNetworkState(registry, id)) return;
  await withNetworkLock(registry, id, (holdFd) => undo(registry, id, holdFd, opts));
}

async function undo(registry: Registry, id: string, holdFd: number, opts: { cniPath?: string }): Promise<void> {
  const state = readNetworkState(registry, id);
  if (!state) return;
  const netns = isNetns(state.netns) ? state.netns : '';
  let first: Error | undefined;
  for (const a of [...state.attachments].reverse()) {
    try {
      await cniDel(a.conflist, { containerId: id, netns, ifname: a.ifname, capabilityArgs: a.capabilityArgs, cniPath: a.pluginDirs?.join(':') ?? opts.cniPath, holdFd }, a.result, a.pluginsRun);
    } catch (e) {
      first ??= e as Error;
    }
  }
  if (first) throw first;
  removeNetns(state.netns);
  fs.rmSync(stateFile(registry, id), { force: true });
  const nets = networksOf(registry);
  await refreshHosts(registry, state.attachments.map((a) => nets.find(a.network)).filter((n): n is NetworkRecord => !!n));
}

const LOCALHOST = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

/** The /etc/hosts of a container that has no network of its own (none, host) or before its start. */
export function baseHosts(extraHosts: string[] = []): string {
  return LOCALHOST + extraHosts.map((h) => hostsLine(h)).join('');
}

function hostsLine(nameIp: string): string {
  const i = nameIp.lastIndexOf(':');
  return `${nameIp.slice(i + 1)}\t${nameIp.slice(0, i)}\n`;
}

/**
 * Every member of the given networks gets an /etc/hosts naming itself and
 * each member it shares a user network with (name, aliases, short id). The
 * default network resolves no names, as Docker's does not. Written in place:
 * the file is bound into the running container.
 */
export async function refreshHosts(registry: Registry, networks: NetworkRecord[]): Promise<void> {
  const names = new Set(networks.map((n) => n.name));
  await networksOf(registry).locked(() => {
    const members = registry.ids().flatMap((id) => {
      const s = readNetworkState(registry, id);
      if (!s) return [];
      try {
        return [{ info: registry.read(id), state: s }];
      } catch {
        return [];
      }
    });
    const affected = members.filter((m) => m.state.attachments.some((a) => names.has(a.network)));
    for (const m of affected) {
      const lines: string[] = [];
      const self = m.state.attachments.find((a) => addressOf(a));
      if (self) lines.push(`${addressOf(self)}\t${[m.info.config.hostname, m.info.name].filter((v, i, all) => all.indexOf(v) === i).join(' ')}`);
      for (const a of m.state.attachments) {
        if (a.network === DEFAULT_NETWORK) continue;
        for (const o of members) {
          if (o.info.id === m.info.id || o.state.hidden) continue;
          const theirs = o.state.attachments.find((b) => b.network === a.network && addressOf(b));
          // A member named like a name every /etc/hosts has (localhost) does not take it over.
          if (theirs) lines.push(`${addressOf(theirs)}\t${[o.info.name, ...theirs.aliases, o.info.id.slice(0, 12)].filter((n) => !RESERVED_NAMES.test(n)).join(' ')}`);
        }
      }
      const text = baseHosts(m.info.hostConfig.networking?.extraHosts) + lines.map((l) => `${l}\n`).join('');
      try {
        fs.writeFileSync(registry.file(m.info.id, 'hosts'), text);
      } catch {
        /* removed meanwhile */
      }
    }
  });
}

/**
 * Takes a running container out of its peers' /etc/hosts, or puts it back,
 * while it keeps its addresses: a rolling update shows a new replica once it
 * is ready, and hides an old one before it stops (requests under way still
 * reach it). Shown, it stays shown at later starts.
 */
export async function setHidden(registry: Registry, id: string, hidden: boolean): Promise<void> {
  if (!hidden) {
    await registry.lock(id, () => {
      const info = registry.read(id);
      if (!info.hostConfig.networking?.hidden) return;
      delete info.hostConfig.networking.hidden;
      registry.write(info);
    });
  }
  const joined = await withNetworkLock(registry, id, async () => {
    const state = readNetworkState(registry, id);
    if (!state) return [];
    writeState(registry, id, { ...state, hidden });
    return state.attachments.map((a) => a.network);
  });
  if (joined?.length) await refreshHosts(registry, networksOf(registry).list().filter((n) => joined.includes(n.name)));
}

/** Docker's NetworkSettings for inspect: the ports and each network's address. */
export function networkSettings(registry: Registry, info: ContainerInfo) {
  const s = readNetworkState(registry, info.id);
  const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const p of s?.ports ?? info.hostConfig.networking?.ports ?? []) (ports[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp || '0.0.0.0', HostPort: s ? String(p.hostPort) : '' });
  const networks: Record<string, unknown> = {};
  for (const n of info.hostConfig.networking?.networks ?? []) {
    const a = s?.attachments.find((x) => x.network === n.name);
    const ipm = a?.result?.ips?.[0];
    const mac = a?.result?.interfaces?.find((i) => i.name === a.ifname && i.sandbox)?.mac ?? '';
    networks[n.name] = { Aliases: n.aliases, NetworkID: a?.networkId ?? '', IPAddress: ipm ? ipm.address.split('/')[0] : '', IPPrefixLen: ipm ? Number(ipm.address.split('/')[1]) : 0, Gateway: ipm?.gateway ?? '', MacAddress: mac };
  }
  const first = Object.values(networks)[0] as { IPAddress?: string; Gateway?: string; MacAddress?: string } | undefined;
  return { SandboxKey: s?.netns ?? '', Ports: ports, IPAddress: first?.IPAddress ?? '', Gateway: first?.Gateway ?? '', MacAddress: first?.MacAddress ?? '', Networks: networks };
}

