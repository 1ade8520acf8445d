// The network verbs over a store: create, ls, inspect, rm, prune, and
// connect/disconnect of a container, live if it runs.
import { TsrunError } from '../errors';
import type { ContainerInfo, Registry } from '../container/registry';
import { attach, networksOf, readNetworkState, refreshHosts, withNetworkLock, writeState } from './attach';
import { cniDel } from './cni';
import { checkAlias } from './run-options';
import { DEFAULT_NETWORK, type CreateNetworkOptions, type NetworkRecord } from './networks';

/** The containers whose record names the network (running or not). */
function users(registry: Registry, net: NetworkRecord): ContainerInfo[] {
  return registry.records().filter((info) => info.hostConfig.networking?.networks.some((n) => n.name === net.name));
}

export function createNetwork(registry: Registry, name: string, opts: CreateNetworkOptions = {}): Promise<NetworkRecord> {
  const nets = networksOf(registry);
  return nets.locked(() => nets.create(name, opts));
}

export function listNetworks(registry: Registry): NetworkRecord[] {
  const nets = networksOf(registry);
  const list = nets.list();
  // The default network is listed before any container has made it.
  if (!list.some((n) => n.name === DEFAULT_NETWORK)) list.push(nets.get(DEFAULT_NETWORK));
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

/** Docker's network inspect document. */
export function inspectNetwork(registry: Registry, ref: string) {
  const net = networksOf(registry).get(ref);
  const containers: Record<string, unknown> = {};
  for (const info of users(registry, net)) {
    const a = readNetworkState(registry, info.id)?.attachments.find((x) => x.network === net.name);
    if (!a?.result) continue;
    containers[info.id] = { Name: info.name, IPv4Address: a.result.ips?.[0]?.address ?? '', MacAddress: a.result.interfaces?.find((i) => i.sandbox)?.mac ?? '' };
  }
  return {
    Name: net.name,
    Id: net.id,
    Created: net.created,
    Driver: net.driver,
    Internal: net.internal,
    IPAM: { Driver: 'host-local', Config: [{ Subnet: net.subnet, Gateway: net.gateway }] },
    Options: { 'com.docker.network.bridge.name': net.bridge },
    Labels: net.labels,
    Containers: containers,
  };
}

export async function removeNetwork(registry: Registry, ref: string): Promise<NetworkRecord> {
  const nets = networksOf(registry);
  return nets.locked(() => {
    const net = nets.get(ref);
    const using = users(registry, net);
    if (using.length) throw new TsrunError(`network ${net.name} is in use by container${using.length > 1 ? 's' : ''} ${using.map((c) => c.name).join(', ')}: remove ${using.length > 1 ? 'them' : 'it'} first (or network disconnect)`);
    nets.remove(net);
    return net;
  });
}

/** Every network no container names, but the default one. */
export async function pruneNetworks(registry: Registry): Promise<string[]> {
  const removed: string[] = [];
  for (const n of networksOf(registry).list()) {
    if (n.name === DEFAULT_NETWORK || users(registry, n).length) continue;
    await removeNetwork(registry, n.name);
    removed.push(n.name);
  }
  return removed;
}

export async function connectNetwork(registry: Registry, ref: string, container: string, opts: { aliases?: string[]; ip?: string } = {}): Promise<void> {
  const net = await networksOf(registry).joinable(ref);
  const id = registry.resolve(container);
  await registry.lock(id, async () => {
    const info = registry.read(id);
    const req = info.hostConfig.networking;
    if (!req) throw new TsrunError(`network connect ${net.name} ${info.name}: its network is ${info.hostConfig.network}, which has no networks to join (it was run without bridge or a user network)`);
    if (req.networks.some((n) => n.name === net.name)) throw new TsrunError(`container ${info.name} is already connected to network ${net.name}`);
    if (net.name === DEFAULT_NETWORK && (opts.ip || opts.aliases?.length)) throw new TsrunError('--ip and --alias need a user network');
    for (const a of opts.aliases ?? []) checkAlias(a, '--alias');
    const want = { name: net.name, aliases: opts.aliases ?? [], ...(opts.ip ? { ip: opts.ip } : {}) };
    if (registry.live(info).running && readNetworkState(registry, id)) {
      await withNetworkLock(registry, id, async (holdFd) => {
        const state = readNetworkState(registry, id);
        if (!state) return;
        try {
          await attach(registry, info, state, net, want, [], { holdFd });
        } catch (e) {
          // Nothing of a failed connect stays: its DEL, then the attachment out of the record.
          const a = state.attachments[state.attachments.length - 1];
          if (a?.network === net.name) {
            await cniDel(a.conflist, { containerId: id, netns: state.netns, ifname: a.ifname, capabilityArgs: a.capabilityArgs, cniPath: a.pluginDirs?.join(':'), holdFd }, a.result, a.pluginsRun).catch(() => {});
            state.attachments.pop();
            writeState(registry, id, state);
          }
          throw e;
        }
        await refreshHosts(registry, [net]);
      });
    }
    req.networks.push(want);
    registry.write(info);
  });
}

export async function disconnectNetwork(registry: Registry, ref: string, container: string): Promise<void> {
  const net = networksOf(registry).get(ref);
  const id = registry.resolve(container);
  await registry.lock(id, async () => {
    const info = registry.read(id);
    const req = info.hostConfig.networking;
    if (!req?.networks.some((n) => n.name === net.name)) throw new TsrunError(`container ${info.name} is not connected to network ${net.name}`);
    await withNetworkLock(registry, id, async (holdFd) => {
      const state = readNetworkState(registry, id);
      const a = state?.attachments.find((x) => x.network === net.name);
      if (!state || !a) return;
      await cniDel(a.conflist, { containerId: id, netns: state.netns, ifname: a.ifname, capabilityArgs: a.capabilityArgs, cniPath: a.pluginDirs?.join(':'), holdFd }, a.result, a.pluginsRun);
      if (a === state.attachments[0]) state.ports = []; // the ports were published through it
      state.attachments = state.attachments.filter((x) => x !== a);
      writeState(registry, id, state);
      await refreshHosts(registry, [net]);
    });
    req.networks = req.networks.filter((n) => n.name !== net.name);
    registry.write(info);
  });
}

