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

/** Removes it (every copy), when the network goes. */
export function unguardLoopback(bridge: string) {
  for (let i = 0; i < 10 && iptables(['-C', ...rule(bridge)]).status === 0; i++) iptables(['-D', ...rule(bridge)]);
}

/**
 * The rules the firewall plugin keeps per bridge (its same-bridge isolation,
 * never removed by DEL: other containers share the bridge) go when the
 * network goes: tsrun owns the network, so it undoes them.
 */
export function removeBridgeRules(bridge: string) {
  const listed = iptables(['-S']).stdout.split('\n');
  for (const line of listed) {
    if (!/^-A CNI-ISOLATION-STAGE-[12] /.test(line) || !new RegExp(`(^| )-[io] ${bridge}( |$)`).test(line)) continue;
    const args = words(line);
    args[0] = '-D';
    iptables(args);
  }
  // The network's masquerade rule, tsrun's own.
  for (const line of ipt('nat', ['-S', 'POSTROUTING']).stdout.split('\n')) {
    if (!line.includes(`"tsrun: masquerade ${bridge}"`)) continue;
    const args = words(line);
    args[0] = '-D';
    ipt('nat', args);
  }
}

/**
 * The chains the CNI plugins share across networks (the firewall plugin's
 * CNI-FORWARD, CNI-ADMIN and isolation stages; portmap's CNI-HOSTPORT-*),
 * made on a first ADD and never removed by any DEL. When they hold nothing
 * but the plugins' own base rules, no container of anyone's uses them:
 * they go, with the jumps to them. A later ADD makes them again.
 */
export function removeIdleCniChains() {
  const tables = {
    filter: { chains: ['CNI-ISOLATION-STAGE-1', 'CNI-ISOLATION-STAGE-2', 'CNI-FORWARD', 'CNI-ADMIN'], base: [/-j RETURN$/, /-j CNI-ADMIN$/] },
    nat: { chains: ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'], base: [/--mark 0x2000\/0x2000 -j MASQUERADE$/, /-j MARK --set-xmark 0x2000\/0x2000$/] },
  };
  for (const [table, { chains, base }] of Object.entries(tables)) {
    const saved = ipt(table, ['-S']);
    if (saved.status !== 0) continue;
    const lines = saved.stdout.split('\n');
    const present = chains.filter((c) => lines.includes(`-N ${c}`));
    if (!present.length) continue;
    const inside = lines.filter((l) => present.some((c) => l.startsWith(`-A ${c} `)));
    if (inside.some((l) => !base.some((b) => b.test(l)))) continue; // some container's rule is still there
    // The jumps from the built-in chains first, then the chains themselves.
    for (const l of lines) {
      const m = /^-A (\S+) (.*)-j (\S+)$/.exec(l);
      if (!m || present.includes(m[1]) || !present.includes(m[3])) continue;
      const args = words(l);
      args[0] = '-D';
      ipt(table, args);
    }
    for (const c of present) ipt(table, ['-F', c]);
    for (const c of present) ipt(table, ['-X', c]);
  }
}
