// run's network flags, turned into the container's part: the mode, the
// namespace the plan joins by path, the networks to ADD at each start, and
// the /etc/hosts and /etc/resolv.conf it begins with.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import type { Registry } from '../container/registry';
import { baseHosts, networksOf, type NetworkRequest } from './attach';
import { parseIp } from './ipv4';
import { netnsPath } from './netns';
import { DEFAULT_NETWORK } from './networks';
import { parsePublish, publishAll } from './ports';

export interface NetworkFlags {
  /** none, host, bridge, a network's name, or container:NAME. */
  network?: string;
  publish?: string[];
  publishAll?: boolean;
  networkAlias?: string[];
  ip?: string;
  macAddress?: string;
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  addHost?: string[];
  /** --hostname, only to refuse it where it cannot apply. */
  hostname?: string;
  /** Networks joined beside the first (Compose's services.*.networks), each with its own aliases and address. */
  moreNetworks?: { name: string; aliases?: string[]; ip?: string }[];
  /** Not named in the peers' /etc/hosts until setHidden(false) (a rolling update's new replica). */
  hidden?: boolean;
}

export interface NetworkPart {
  /** Docker's NetworkMode: none, host, bridge, NAME, container:ID. */
  mode: string;
  /** The plan's network namespace: a new one (none), the host's (host), or joined by this path. */
  namespace: 'new' | 'host' | { path: string };
  request?: NetworkRequest;
  hosts: string;
  resolvConf: string;
  /** container:NAME: its /etc files are the other container's. */
  shareEtcOf?: string;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
/** Names /etc/hosts has for every container: a member may not take them over in the others'. */
export const RESERVED_NAMES = /^(localhost|ip6-[a-z]+)$/i;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})$/;

/** A name other members' /etc/hosts will carry: one word, nothing that could start another line. */
export function checkAlias(alias: string, flag = '--network-alias') {
  if (flag !== '--hostname' && RESERVED_NAMES.test(alias)) throw new TsrunError(`${flag} ${alias}: a name every /etc/hosts already has (localhost, ip6-*): it would take it over in other containers`);
  if (!HOSTNAME.test(alias)) throw new TsrunError(`${flag} ${JSON.stringify(alias)}: use letters, digits, "_", "." and "-", beginning with a letter or digit`);
}

/** Docker's nameservers for a container whose host has only loopback ones. */
const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

function resolvConf(flags: NetworkFlags, hostNetwork: boolean): string {
  let text = '';
  try {
    text = fs.readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    /* none: the flags alone say it */
  }
  let lines = text.split('\n').filter((l) => l.trim() !== '');
  // Loopback resolvers of the host are unreachable from another network namespace.
  if (!hostNetwork) lines = lines.filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l));
  // With none left (a host that resolves through 127.0.0.53, say), Docker's fallback: Google's public resolvers.
  if (!hostNetwork && !flags.dns?.length && !lines.some((l) => /^\s*nameserver\s/.test(l))) lines.push(...FALLBACK_NAMESERVERS.map((n) => `nameserver ${n}`));
  if (flags.dns?.length) {
    for (const d of flags.dns) if (parseIp(d) === undefined && !/^[0-9a-f:]+$/i.test(d)) throw new TsrunError(`--dns ${d}: not an IP address`);
    lines = [...lines.filter((l) => !/^\s*nameserver\s/.test(l)), ...flags.dns.map((d) => `nameserver ${d}`)];
  }
  for (const v of [...(flags.dnsSearch ?? []), ...(flags.dnsOption ?? [])]) if (!/^[\x21-\x7e]+$/.test(v)) throw new TsrunError(`--dns-search/--dns-option ${JSON.stringify(v)}: one word of printable characters`);
  if (flags.dnsSearch?.length) {
    // "." alone means no search domains, as with Docker.
    const domains = flags.dnsSearch.filter((d) => d !== '.');
    lines = [...lines.filter((l) => !/^\s*(search|domain)\s/.test(l)), ...(domains.length ? [`search ${domains.join(' ')}`] : [])];
  }
  if (flags.dnsOption?.length) lines = [...lines.filter((l) => !/^\s*options\s/.test(l)), `options ${flags.dnsOption.join(' ')}`];
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function checkAddHosts(hosts: string[]) {
  for (const h of hosts) {
    const i = h.lastIndexOf(':');
    const name = h.slice(0, i);
    const ip = h.slice(i + 1);
    if (i <= 0 || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(name) || (parseIp(ip) === undefined && !/^[0-9a-f:]+$/i.test(ip))) throw new TsrunError(`--add-host ${h}: use NAME:IP`);
  }
}

/** Where a container without --network goes instead of the default bridge network. */
export const DEFAULT_NETWORK_ENV = 'TSRUN_DEFAULT_NETWORK';

/**
 * The mode a container gets with no --network: Docker's, the default bridge
 * network, unless TSRUN_DEFAULT_NETWORK names another (none, host or a
 * network); publishing ports needs a network, so -p and -P keep bridge.
 */
function defaultMode(flags: NetworkFlags): string {
  const chosen = process.env[DEFAULT_NETWORK_ENV] || DEFAULT_NETWORK;
  if (chosen.startsWith('container:')) throw new TsrunError(`${DEFAULT_NETWORK_ENV}=${chosen}: the default network may be none, host, bridge or a network's name, not another container's`);
  return (flags.publish?.length || flags.publishAll) && ['none', 'host'].includes(chosen) ? DEFAULT_NETWORK : chosen;
}

export function networkFromFlags(registry: Registry, id: string, flags: NetworkFlags, exposed: string[]): NetworkPart {
  const mode = flags.network ?? defaultMode(flags);
  const extraHosts = flags.addHost ?? [];
  for (const a of flags.networkAlias ?? []) checkAlias(a);
  checkAddHosts(extraHosts);
  if (flags.macAddress && !MAC.test(flags.macAddress)) throw new TsrunError(`--mac-address ${flags.macAddress}: use six hex pairs, 02:42:ac:11:00:02`);
  if (flags.macAddress && parseInt(flags.macAddress.slice(0, 2), 16) & 1) throw new TsrunError(`--mac-address ${flags.macAddress}: a multicast address (the first octet is odd) cannot be an interface's`);
  const ports = [...(flags.publish ?? []).flatMap(parsePublish), ...(flags.publishAll ? publishAll(exposed) : [])];
  const own = (what: string[]) => {
    if (flags.moreNetworks?.length) throw new TsrunError(`a container with --network ${mode} cannot join other networks`);
    const given = [flags.publish?.length && '-p', flags.publishAll && '-P', flags.ip && '--ip', flags.networkAlias?.length && '--network-alias', flags.macAddress && '--mac-address'].filter(Boolean);
    const refused = given.filter((g) => what.includes(g as string));
    if (refused.length) throw new TsrunError(`${refused.join(', ')} cannot be used with --network ${mode}: the container has no network of its own to publish or address`);
  };
  if (mode === 'none' || mode === 'host') {
    own(['-p', '-P', '--ip', '--network-alias', '--mac-address']);
    return { mode, namespace: mode === 'none' ? 'new' : 'host', hosts: mode === 'host' ? fs.readFileSync('/etc/hosts', 'utf8') + baseHosts(extraHosts).slice(baseHosts().length) : baseHosts(extraHosts), resolvConf: resolvConf(flags, mode === 'host') };
  }
  if (mode.startsWith('container:')) {
    own(['-p', '-P', '--ip', '--network-alias', '--mac-address']);
    if (flags.hostname !== undefined) throw new TsrunError(`--hostname cannot be used with --network ${mode}: the namespaces it names are the other container's`);
    if (flags.dns?.length || flags.dnsSearch?.length || flags.dnsOption?.length || extraHosts.length) throw new TsrunError(`--dns, --dns-search, --dns-option and --add-host cannot be used with --network ${mode}: its /etc/hosts and /etc/resolv.conf are the other container's`);
    const other = registry.resolve(mode.slice('container:'.length));
    if (other === id) throw new TsrunError(`--network ${mode}: a container cannot join its own network`);
    const info = registry.read(other);
    if (info.hostConfig.network === 'host') return { mode: `container:${other}`, namespace: 'host', hosts: '', resolvConf: '', shareEtcOf: other };
    // Joined by the other's bound namespace, a path that names its network for as long as
    // it runs (and nothing after): never /proc/PID/ns/net, which a recycled pid could make another's.
    if (!info.hostConfig.networking) throw new TsrunError(`--network ${mode}: container ${info.name} has --network ${info.hostConfig.network}, whose namespace is not bound where another container can join it; run it on bridge or a user network`);
    return { mode: `container:${other}`, namespace: { path: netnsPath(registry.runtime.root, other) }, hosts: '', resolvConf: '', shareEtcOf: other };
  }
  // bridge, or a user network.
  const net = networksOf(registry).find(mode);
  if (!net) throw new TsrunError(`network ${mode} not found (tsrun network ls lists them)${flags.network === undefined ? `: ${DEFAULT_NETWORK_ENV} names it` : ''}`);
  if (net.name === DEFAULT_NETWORK && (flags.ip || flags.networkAlias?.length)) throw new TsrunError(`${flags.ip ? '--ip' : '--network-alias'} needs a user network (network create): the default bridge network has neither fixed addresses nor names`);
  const networks: NetworkRequest['networks'] = [{ name: net.name, aliases: flags.networkAlias ?? [], ...(flags.ip ? { ip: flags.ip } : {}) }];
  for (const more of flags.moreNetworks ?? []) {
    const other = networksOf(registry).find(more.name);
    if (!other) throw new TsrunError(`network ${more.name} not found (tsrun network ls lists them)`);
    if (networks.some((n) => n.name === other.name)) throw new TsrunError(`network ${other.name} is named twice`);
    if (other.name === DEFAULT_NETWORK && (more.ip || more.aliases?.length)) throw new TsrunError(`aliases and fixed addresses need a user network: the default bridge network has neither`);
    for (const a of more.aliases ?? []) checkAlias(a);
    networks.push({ name: other.name, aliases: more.aliases ?? [], ...(more.ip ? { ip: more.ip } : {}) });
  }
  const request: NetworkRequest = { networks, ports, extraHosts, ...(flags.macAddress ? { mac: flags.macAddress.toLowerCase() } : {}), ...(flags.hidden ? { hidden: true } : {}) };
  return { mode: net.name, namespace: { path: netnsPath(registry.runtime.root, id) }, request, hosts: baseHosts(extraHosts), resolvConf: resolvConf(flags, false) };
}
