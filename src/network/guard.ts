// With a port published, portmap's SNAT sets route_localnet on the bridge,
// so that 127.0.0.1 on the host reaches containers; it also lets a
// container send to the host's own 127.0.0.0/8 through its gateway, where
// services that trust loopback listen (CVE-2020-8558). One rule per bridge
// drops such packets, the rule kube-proxy adds for the same reason.
import { spawnSync } from 'node:child_process';
import { TsrunError } from '../errors';

const rule = (bridge: string) => ['INPUT', '-i', bridge, '-d', '127.0.0.0/8', '!', '-s', '127.0.0.0/8', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-m', 'comment', '--comment', `tsrun: no host loopback from ${bridge}`, '-j', 'DROP'];

const iptables = (args: string[]) => spawnSync('iptables', ['-w', '-t', 'filter', ...args], { encoding: 'utf8' });

/** Adds the rule for this bridge unless it is there. */
export function guardLoopback(bridge: string) {
  if (iptables(['-C', ...rule(bridge)]).status === 0) return;
  const r = iptables(['-I', ...rule(bridge)]);
  if (r.status !== 0) throw new TsrunError(`add the rule that keeps containers on ${bridge} from the host's 127.0.0.0/8 (iptables -I INPUT): ${(r.stderr || r.error?.message || '').trim()}`);
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
    // Shell-like words: the comment is quoted.
    const args = (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
    args[0] = '-D';
    iptables(args);
  }
}
