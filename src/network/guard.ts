// With a port published, portmap's SNAT sets route_localnet on the bridge,
// so that 127.0.0.1 on the host reaches containers; it also lets a
// container send to the host's own 127.0.0.0/8 through its gateway, where
// services that trust loopback listen (CVE-2020-8558). One rule per bridge
// drops such packets, the rule kube-proxy adds for the same reason.
import { spawnSync } from 'node:child_process';
import { TsrunError } from '../errors';

const rule = (bridge: string) => ['INPUT', '-i', bridge, '-d', '127.0.0.0/8', '!', '-s', '127.0.0.0/8', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-m', 'comment', '--comment', `tsrun: no host loopback from ${bridge}`, '-j', 'DROP'];

const ipt = (table: string, args: string[]) => spawnSync('iptables', ['-w', '-t', table, ...args], { encoding: 'utf8' });
const missing = (r: ReturnType<typeof ipt>) => ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' ? 'iptables is not installed (Debian package iptables)' : (r.stderr || r.error?.message || '').trim());
const iptables = (args: string[]) => ipt('filter', args);

/** An `iptables -S` line as arguments again: shell-like words, the comment quoted. */
const words = (line: string) => (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));

/** Adds a rule unless it is there (-C first: the rules are tsrun's, made once). */
function ensureRule(table: string, add: '-I' | '-A', rule: string[], what: string) {
  if (ipt(table, ['-C', ...rule]).status === 0) return;
  const r = ipt(table, [add, ...rule]);
  if (r.status !== 0) throw new TsrunError(`add ${what} (iptables ${table === 'filter' ? '' : `-t ${table} `}${add} ${rule[0]}): ${missing(r)}`);
}

/** Adds the rule for this bridge unless it is there. */
export function guardLoopback(bridge: string) {
  ensureRule('filter', '-I', rule(bridge), `the rule that keeps containers on ${bridge} from the host's 127.0.0.0/8`);
}

/**
 * Outbound NAT for a network, one rule for its subnet as Docker's: the
 * bridge plugin's ipMasq makes a chain and rules per container, about 15
 * iptables processes (9 ms each here) over its ADD and DEL.
 */
const masqRule = (subnet: string, bridge: string) => ['POSTROUTING', '-s', subnet, '!', '-o', bridge, '!', '-d', '224.0.0.0/4', '-m', 'comment', '--comment', `tsrun: masquerade ${bridge}`, '-j', 'MASQUERADE'];

/** Adds the network's masquerade rule unless it is there. */
export function masquerade(subnet: string, bridge: string) {
  ensureRule('nat', '-A', masqRule(subnet, bridge), `the outbound NAT rule of ${bridge} for ${subnet}`);
}

/** A table's rules as `iptables -S` prints them, or undefined when it cannot be listed. */
function list(table: string): string[] | undefined {
  const r = ipt(table, ['-S']);
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
}

/** `-A CHAIN rule` as the command that deletes it. */
const deletion = (line: string) => `-D${line.slice(2)}`;

/**
 * Runs each table's commands in one `iptables-restore --noflush` (one
 * process instead of one per rule; a table's batch commits at once). If a
 * batch fails, say because a rule went meanwhile, its commands run one by
 * one, each failure ignored: what is gone stays gone.
 */
function applyBatch(commands: Record<string, string[]>) {
  const tables = Object.entries(commands).filter(([, c]) => c.length);
  if (!tables.length) return;
  const input = tables.map(([t, c]) => `*${t}\n${c.join('\n')}\nCOMMIT\n`).join('');
  const r = spawnSync('iptables-restore', ['-w', '--noflush'], { input, encoding: 'utf8' });
  if (r.status === 0) return;
  for (const [t, c] of tables) for (const cmd of c) ipt(t, words(cmd));
}

/**
 * The rules a network's bridge has in the host's tables, all tsrun's to
 * undo when the network goes: the loopback guard, the firewall plugin's
 * same-bridge isolation (never removed by DEL: other containers share the
 * bridge), and the network's masquerade rule.
 */
function bridgeRules(bridge: string, filter: string[], nat: string[]) {
  const io = new RegExp(`(^| )-[io] ${bridge}( |$)`);
  return {
    filter: filter.filter((l) => (/^-A CNI-ISOLATION-STAGE-[12] /.test(l) && io.test(l)) || (l.startsWith('-A INPUT ') && l.includes(`"tsrun: no host loopback from ${bridge}"`))),
    nat: nat.filter((l) => l.startsWith('-A POSTROUTING ') && l.includes(`"tsrun: masquerade ${bridge}"`)),
  };
}

/**
 * The chains the CNI plugins share across networks (the firewall plugin's
 * CNI-FORWARD, CNI-ADMIN and isolation stages; portmap's CNI-HOSTPORT-*),
 * made on a first ADD and never removed by any DEL. When they hold nothing
 * but the plugins' own base rules, no container of anyone's uses them: the
 * commands that remove them, with the jumps to them (a later ADD makes them
 * again).
 */
const SHARED = {
  filter: { chains: ['CNI-ISOLATION-STAGE-1', 'CNI-ISOLATION-STAGE-2', 'CNI-FORWARD', 'CNI-ADMIN'], base: [/-j RETURN$/, /-j CNI-ADMIN$/] },
  nat: { chains: ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'], base: [/--mark 0x2000\/0x2000 -j MASQUERADE$/, /-j MARK --set-xmark 0x2000\/0x2000$/] },
};
function idleChains(table: keyof typeof SHARED, lines: string[]): string[] {
  const { chains, base } = SHARED[table];
  const present = chains.filter((c) => lines.includes(`-N ${c}`));
  if (!present.length) return [];
  const inside = lines.filter((l) => present.some((c) => l.startsWith(`-A ${c} `)));
  if (inside.some((l) => !base.some((b) => b.test(l)))) return []; // some container's rule is still there
  const jumps = lines.filter((l) => {
    const m = /^-A (\S+) .*-j (\S+)$/.exec(l);
    return !!m && !present.includes(m[1]) && present.includes(m[2]);
  });
  // The jumps from other chains first, then the chains' rules, then the chains.
  return [...jumps.map(deletion), ...present.map((c) => `-F ${c}`), ...present.map((c) => `-X ${c}`)];
}

/**
 * Everything a removed network leaves in the host's tables, in two
 * listings and one iptables-restore: the bridge's own rules, and then the
 * shared CNI chains if nothing uses them any more.
 */
export function removeNetworkRules(bridge: string) {
  const filter = list('filter') ?? [];
  const nat = list('nat') ?? [];
  const own = bridgeRules(bridge, filter, nat);
  applyBatch({
    filter: [...own.filter.map(deletion), ...idleChains('filter', filter.filter((l) => !own.filter.includes(l)))],
    nat: [...own.nat.map(deletion), ...idleChains('nat', nat.filter((l) => !own.nat.includes(l)))],
  });
}

/** The loopback guard's rule of a bridge (every copy). */
export function unguardLoopback(bridge: string) {
  const filter = list('filter') ?? [];
  applyBatch({ filter: bridgeRules(bridge, filter, []).filter.filter((l) => l.startsWith('-A INPUT ')).map(deletion) });
}

/** All of a bridge's own rules (see bridgeRules). */
export function removeBridgeRules(bridge: string) {
  const filter = list('filter') ?? [];
  const nat = list('nat') ?? [];
  const own = bridgeRules(bridge, filter, nat);
  applyBatch({ filter: own.filter.map(deletion), nat: own.nat.map(deletion) });
}

/** The shared CNI chains, if idle. */
export function removeIdleCniChains() {
  applyBatch({ filter: idleChains('filter', list('filter') ?? []), nat: idleChains('nat', list('nat') ?? []) });
}
