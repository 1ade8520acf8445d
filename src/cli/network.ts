// network create/ls/inspect/rm/prune/connect/disconnect, and port: thin
// over src/network/.
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { readNetworkState } from '../network/attach';
import { connectNetwork, createNetwork, disconnectNetwork, inspectNetwork, listNetworks, pruneNetworks, removeNetwork } from '../network/manage';
import { formatBinding } from '../network/ports';
import { printTable, registryOf } from './common';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function labels(list: string[] = []): Record<string, string> {
  return Object.fromEntries(list.map((l) => {
    const eq = l.indexOf('=');
    return eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
  }));
}

export function register(program: Command) {
  const network = program.command('network').description('manage networks (bridge networks wired by CNI plugins)');
  network
    .command('create')
    .description('make a network: a bridge of its own, addresses from its subnet, names resolved between its members')
    .argument('<name>')
    .option('-d, --driver <driver>', 'bridge (the only driver)', 'bridge')
    .option('--subnet <cidr>', 'IPv4 subnet (default: the first free /16 of 172.17.0.0/12, then /20s of 192.168.0.0/16)')
    .option('--gateway <ip>', 'the bridge\'s address in the subnet (default: its first)')
    .option('--internal', 'no route out of the network and no NAT')
    .option('--label <key=value>', 'a label', collect)
    .action(async (name: string, opts: { driver: string; subnet?: string; gateway?: string; internal?: boolean; label?: string[] }, cmd: Command) => {
      const net = await createNetwork(registryOf(cmd), name, { driver: opts.driver, subnet: opts.subnet, gateway: opts.gateway, internal: opts.internal, labels: labels(opts.label) });
      process.stdout.write(`${net.id}\n`);
    });
  network
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('-q, --quiet', 'only names')
    .option('--format <format>', 'table or json', 'table')
    .action((opts: { quiet?: boolean; format: string }, cmd: Command) => {
      if (opts.format !== 'table' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      const nets = listNetworks(registryOf(cmd));
      if (opts.quiet) return void process.stdout.write(nets.map((n) => `${n.name}\n`).join(''));
      if (opts.format === 'json') return void process.stdout.write(nets.map((n) => `${JSON.stringify({ ID: n.id.slice(0, 12), Name: n.name, Driver: n.driver, Subnet: n.subnet, Internal: n.internal, Labels: n.labels })}\n`).join(''));
      printTable([['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET'], ...nets.map((n) => [n.id.slice(0, 12), n.name, n.driver, n.subnet + (n.internal ? ' (internal)' : '')])]);
    });
  network
    .command('inspect')
    .description('print networks as JSON, with their members')
    .argument('<network...>')
    .action((refs: string[], _o: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      process.stdout.write(`${JSON.stringify(refs.map((r) => inspectNetwork(registry, r)), null, 2)}\n`);
    });
  network
    .command('rm')
    .alias('remove')
    .description('remove networks no container uses')
    .argument('<network...>')
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      for (const r of refs) process.stdout.write(`${(await removeNetwork(registry, r)).name}\n`);
    });
  network
    .command('prune')
    .description('remove every network no container uses')
    .option('-f, --force', 'do not ask (tsrun never asks)')
    .action(async (_o: unknown, cmd: Command) => {
      const removed = await pruneNetworks(registryOf(cmd));
      if (removed.length) process.stdout.write(`Deleted Networks:\n${removed.map((n) => `${n}\n`).join('')}`);
    });
  network
    .command('connect')
    .description('connect a container to a network (at once if it runs)')
    .argument('<network>')
    .argument('<container>')
    .option('--alias <name>', 'another name on this network', collect)
    .option('--ip <address>', 'its IPv4 address on this network')
    .action(async (net: string, container: string, opts: { alias?: string[]; ip?: string }, cmd: Command) => {
      await connectNetwork(registryOf(cmd), net, container, { aliases: opts.alias, ip: opts.ip });
    });
  network
    .command('disconnect')
    .description('disconnect a container from a network (at once if it runs)')
    .argument('<network>')
    .argument('<container>')
    .action(async (net: string, container: string, _o: unknown, cmd: Command) => {
      await disconnectNetwork(registryOf(cmd), net, container);
    });

  program
    .command('port')
    .description('list a running container\'s published ports, or the host address of one')
    .argument('<container>')
    .argument('[port]', 'PORT[/PROTO]: only this container port')
    .action((container: string, port: string | undefined, _o: unknown, cmd: Command) => {
      const registry = registryOf(cmd);
      const id = registry.resolve(container);
      let ports = readNetworkState(registry, id)?.ports ?? [];
      if (port) {
        const [p, proto = 'tcp'] = port.split('/');
        ports = ports.filter((b) => String(b.containerPort) === p && b.protocol === proto);
        if (!ports.length) throw new TsrunError(`no public port ${p}/${proto} published for container ${container}`);
        return void process.stdout.write(ports.map((b) => `${b.hostIp || '0.0.0.0'}:${b.hostPort}\n`).join(''));
      }
      process.stdout.write(ports.map((b) => `${b.containerPort}/${b.protocol} -> ${formatBinding(b).split('->')[0]}\n`).join(''));
    });
}
