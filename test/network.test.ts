// Networks through real CNI plugins (Debian's containernetworking-plugins):
// published ports answered on 127.0.0.1, names resolved between members
// of a user network, internal networks, a shared netns, live connect and
// disconnect, many containers at once, clean-up under faults, bad input.
// Traffic goes only to 127.0.0.1 and to the test's own containers.
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, busyboxRootfs, defaultBridgeUndo, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun, stateEntries } from './helpers';
import { makeLayout } from './images';
import { probeVolume, removeProbe } from './probe';
import { guardLoopback, removeBridgeRules, unguardLoopback } from '../src/network/guard';
import { netnsPath } from '../src/network/netns';

// Each container here makes and undoes real interfaces and rules: more than tap's default for a file.
t.setTimeout(600_000);
const root = stateRoot('network');
const storage = path.join(TEST_BASE, 'storage', `network-${process.pid}`);
const ts = (args: string[], timeout?: number) => tsrun(['--storage', storage, ...args], { root, timeout });
const haveCni = fs.existsSync('/usr/lib/cni/bridge') && spawnSync('sh', ['-c', 'command -v iptables']).status === 0;
const skip = needsRoot || (!haveCni && 'needs containernetworking-plugins and iptables');
// Subnets of this file's own, far from the default pools.
const SUBNET = (n: number) => `10.231.${n}.0/24`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 right now. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

/** GET from the host: the body, or "" when nothing answers within 2 s. */
const hostGet = async (url: string) => {
  try {
    return await (await fetch(url, { signal: AbortSignal.timeout(2000) })).text();
  } catch {
    return '';
  }
};

/** Retries a few times: a server in a container takes a moment to listen. */
async function eventually(fn: () => Promise<string>, want: RegExp, tries = 30): Promise<string> {
  let last = '';
  for (let i = 0; i < tries; i++) {
    last = await fn();
    if (want.test(last)) return last;
    await sleep(100);
  }
  return last;
}

/** What CNI and tsrun put on the host for containers: veths on test bridges, rules naming a container, leases, bound netns. */
function hostTraces() {
  const rules = spawnSync('iptables-save', [], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /id: \\?"[0-9a-f]{64}\\?"/.test(l) || /10\.231\./.test(l));
  const nat = spawnSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /id: \\?"[0-9a-f]{64}\\?"/.test(l) || /10\.231\./.test(l));
  const veths = spawnSync('ip', ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /master tsrun/.test(l));
  const leases = fs.existsSync('/var/lib/cni/networks') ? fs.readdirSync('/var/lib/cni/networks').filter((d) => d.startsWith('tsrun')).flatMap((d) => fs.readdirSync(path.join('/var/lib/cni/networks', d)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).map((f) => `${d}/${f}`)) : [];
  const netns = fs.existsSync(path.join(root, '.netns')) ? fs.readdirSync(path.join(root, '.netns')) : [];
  // A network's own masquerade rule stays while the network does: it is no container's trace.
  return { rules: [...new Set([...rules, ...nat])].filter((l) => !l.includes('tsrun: masquerade')), veths, leases, netns };
}

/** The nat rules and chains that name one container, as a reboot loses them. */
function dropRulesOf(id: string) {
  const lines = spawnSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(id));
  const chains = new Set<string>();
  for (const l of lines) {
    const args = (l.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1).replace(/\\"/g, '"') : a));
    args[0] = '-D';
    spawnSync('iptables', ['-t', 'nat', ...args]);
    if (args[1].startsWith('CNI-') && !args[1].startsWith('CNI-HOSTPORT')) chains.add(args[1]);
  }
  for (const c of chains) {
    spawnSync('iptables', ['-t', 'nat', '-F', c]);
    spawnSync('iptables', ['-t', 'nat', '-X', c]);
  }
}

function clean(t: Tap.Test, where: string) {
  for (const id of fs.existsSync(path.join(storage, 'containers')) ? fs.readdirSync(path.join(storage, 'containers')) : []) {
    const r = ts(['rm', '-f', id]);
    t.equal(r.status, 0, `${where}: rm -f ${id.slice(0, 12)} ${r.stderr.trim()}`);
  }
  t.same(hostTraces(), { rules: [], veths: [], leases: [], netns: [] }, `${where}: no veth, rule, lease or bound netns is left`);
  t.same(stateEntries(root), [], `${where}: no runtime state`);
}

// The default network's bridge and its rules are host-wide (as docker0's); made by this file, they go with it.
const undoDefaultBridge = defaultBridgeUndo();
t.before(() => {
  if (skip) return;
  busyboxImage(storage);
});
t.teardown(() => {
  if (skip) return;
  for (const id of fs.existsSync(path.join(storage, 'containers')) ? fs.readdirSync(path.join(storage, 'containers')) : []) ts(['rm', '-f', id]);
  for (const n of ts(['network', 'ls', '-q']).stdout.split('\n').filter((n) => n && n !== 'bridge')) ts(['network', 'rm', n]);
  fs.rmSync(storage, { recursive: true, force: true });
  undoDefaultBridge();
  removeProbe();
  removeRootfs();
});

t.test('published ports: tcp on 127.0.0.1, udp, a random port, -P; port, ps and inspect say where', { skip }, async (t) => {
  const hp = await freePort();
  let r = ts(['run', '-d', '--name', 'web', '-p', `127.0.0.1:${hp}:80`, '-p', '127.0.0.1::81', 'busybox', 'sh', '-c', 'echo served by $(hostname) > /tmp/index.html; httpd -p 80 -h /tmp; httpd -f -p 81 -h /tmp']);
  t.equal(r.status, 0, r.stderr);
  t.match(await eventually(() => hostGet(`http://127.0.0.1:${hp}/`), /served by/), /^served by [0-9a-f]{12}$/m, 'the container answers on 127.0.0.1:HOSTPORT');
  const port = ts(['port', 'web']).stdout;
  t.match(port, new RegExp(`^80/tcp -> 127\\.0\\.0\\.1:${hp}$`, 'm'), 'port lists the fixed one');
  const random = Number(/^81\/tcp -> 127\.0\.0\.1:(\d+)$/m.exec(port)?.[1]);
  t.ok(random > 0 && random !== hp, `a random host port was chosen for 81 (${random})`);
  t.match(await eventually(() => hostGet(`http://127.0.0.1:${random}/`), /served by/), /served by/, 'and answers');
  t.equal(ts(['port', 'web', '80']).stdout, `127.0.0.1:${hp}\n`);
  t.match(ts(['ps']).stdout, new RegExp(`127\\.0\\.0\\.1:${hp}->80/tcp, 127\\.0\\.0\\.1:${random}->81/tcp\\s+web`), 'ps shows the ports as Docker does');
  const ins = JSON.parse(ts(['inspect', 'web']).stdout)[0];
  t.same(ins.NetworkSettings.Ports['80/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(hp) }]);
  t.equal(ins.HostConfig.NetworkMode, 'bridge', 'with -p and no --network: the default bridge network');
  t.match(ins.NetworkSettings.Networks.bridge.IPAddress, /^\d+\.\d+\.\d+\.\d+$/);

  // Another container reaches the published port through the host's address on the bridge (hairpin).
  const gw = ins.NetworkSettings.Gateway;
  r = ts(['run', '--rm', '--network', 'bridge', 'busybox', 'wget', '-q', '-O', '-', `http://${ins.NetworkSettings.IPAddress}:80/`]);
  t.match(r.stdout, /served by/, `another container on the bridge reaches it by address (gateway ${gw})`);

  // UDP: the probe echoes datagrams.
  const up = await freePort();
  r = ts(['run', '-d', '--name', 'udp', '-p', `127.0.0.1:${up}:5353/udp`, ...probeVolume(), 'busybox', '/probe', 'udp-echo', '5353']);
  t.equal(r.status, 0, r.stderr);
  const sock = dgram.createSocket('udp4');
  const answer = await new Promise<string>((resolve) => {
    let n = 0;
    const timer = setInterval(() => (n++ > 50 ? resolve('') : sock.send('ping', up, '127.0.0.1')), 100);
    sock.on('message', (m) => {
      clearInterval(timer);
      resolve(m.toString());
    });
  });
  sock.close();
  t.equal(answer, 'echo: ping', 'a UDP datagram to 127.0.0.1:HOSTPORT is answered from the container');

  // -P: what the image EXPOSEs.
  const layer = spawnSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 }).stdout;
  const layout = makeLayout('exposing', 'v1', [layer], { Cmd: ['httpd', '-f', '-p', '8080', '-h', '/etc'], ExposedPorts: { '8080/tcp': {} } });
  t.teardown(() => fs.rmSync(layout, { recursive: true, force: true }));
  r = ts(['run', '-d', '--name', 'exposed', '-P', `oci:${layout}:v1`]);
  t.equal(r.status, 0, r.stderr);
  const ep = Number(/^8080\/tcp -> 0\.0\.0\.0:(\d+)$/m.exec(ts(['port', 'exposed']).stdout)?.[1]);
  t.ok(ep > 0, `-P published the exposed 8080 on ${ep}`);
  t.match(await eventually(() => hostGet(`http://127.0.0.1:${ep}/hostname`), /[0-9a-f]{12}/), /^[0-9a-f]{12}$/m, 'reachable on 127.0.0.1 too (all addresses)');
  clean(t, 'ports');
});

t.test('no --network: the default bridge network, as Docker; TSRUN_DEFAULT_NETWORK chooses another', { skip }, async (t) => {
  // The suite's helper sets TSRUN_DEFAULT_NETWORK=none for every other test; here it is unset.
  const as = (value: string, args: string[]) => tsrun(['--storage', storage, ...args], { root, env: { TSRUN_DEFAULT_NETWORK: value } });
  let r = as('', ['run', '-d', '--name', 'plain', 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  const ins = JSON.parse(ts(['inspect', 'plain']).stdout)[0];
  t.equal(ins.HostConfig.NetworkMode, 'bridge', 'NetworkMode bridge');
  const ip = ins.NetworkSettings.Networks.bridge.IPAddress;
  t.match(ts(['exec', 'plain', 'ip', '-o', '-4', 'addr', 'show', 'eth0']).stdout, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`), `eth0 has the bridge's address ${ip}`);
  t.match(ts(['exec', 'plain', 'ip', 'addr', 'show', 'lo']).stdout, /inet 127\.0\.0\.1\/8/, 'lo is up, with its address');
  r = as('', ['run', '--rm', 'busybox', 'ping', '-c', '1', '-W', '2', ip]);
  t.equal(r.status, 0, `another default container reaches it: ${r.stdout}${r.stderr}`);
  t.match(ts(['network', 'ls']).stdout, /^[0-9a-f]{12}\s+bridge\s+bridge\s+/m, 'network ls lists bridge');

  t.equal(ts(['network', 'create', '--subnet', SUBNET(9), 'chosen']).status, 0);
  t.equal(ts(['network', 'connect', 'chosen', 'plain']).status, 0);
  r = as('chosen', ['run', '--rm', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; ping -c 1 -W 2 plain >/dev/null && echo reached plain']);
  t.match(r.stdout, /inet 10\.231\.9\.\d+\/24[\s\S]*reached plain/, 'TSRUN_DEFAULT_NETWORK=chosen: on that network, finding its members by name');
  r = as('none', ['run', '--rm', 'busybox', 'ls', '/sys/class/net']);
  t.equal(r.stdout, 'lo\n', 'TSRUN_DEFAULT_NETWORK=none: lo only');
  r = as('none', ['run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'ls', '/sys/class/net']);
  t.equal(r.stdout, 'eth0\nlo\n', 'publishing a port still takes the bridge');
  for (const [value, err] of [['nosuch', /^tsrun: network nosuch not found \(tsrun network ls lists them\): TSRUN_DEFAULT_NETWORK names it\n$/], ['container:plain', /^tsrun: TSRUN_DEFAULT_NETWORK=container:plain: the default network may be none, host, bridge or a network's name, not another container's\n$/]] as const) {
    r = as(value, ['run', '--rm', 'busybox', 'true']);
    t.equal(r.status, 125, value);
    t.match(r.stderr, err);
  }
  t.equal(ts(['rm', '-f', 'plain']).status, 0);
  t.equal(ts(['network', 'rm', 'chosen']).status, 0);
  clean(t, 'default network');
});

t.test('outbound NAT: a server outside the host\'s bridges sees the host\'s address, one rule per network', { skip }, async (t) => {
  // "Outside": a network namespace of the test's own, on a veth from the host (10.231.60.1 <-> 10.231.60.2).
  const outside = `tsrun-test-out-${process.pid}`;
  const dev = `tso${process.pid % 100000}`;
  const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  t.teardown(() => {
    sh(`ip link del ${dev} 2>/dev/null; ip netns del ${outside} 2>/dev/null`);
  });
  const made = sh(`ip netns add ${outside} && ip link add ${dev} type veth peer name ${dev}p && ip link set ${dev}p netns ${outside} && ip addr add 10.231.60.1/24 dev ${dev} && ip link set ${dev} up && ip netns exec ${outside} sh -c 'ip addr add 10.231.60.2/24 dev ${dev}p && ip link set ${dev}p up && ip link set lo up'`);
  t.equal(made.status, 0, made.stderr);
  const server = spawn('ip', ['netns', 'exec', outside, process.execPath, '-e', "require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(9000, '10.231.60.2', () => console.log('listening'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => server.kill('SIGKILL'));
  await new Promise((r) => server.stdout!.once('data', r));
  t.equal(ts(['network', 'create', '--subnet', SUBNET(11), 'natted']).status, 0);
  const seen = () => ts(['run', '--rm', '--network', 'natted', 'busybox', 'sh', '-c', 'timeout 3 nc 10.231.60.2 9000 </dev/null']).stdout.trim();
  t.equal(seen(), '10.231.60.1', 'the server sees the host\'s address, not the container\'s');
  const rules = () => sh('iptables -t nat -S POSTROUTING').stdout.split('\n').filter((l) => l.includes('10.231.11.0/24'));
  t.equal(rules().length, 1, 'one masquerade rule for the network');
  t.equal(ts(['run', '--rm', '--network', 'natted', 'busybox', 'true']).status, 0);
  t.equal(rules().length, 1, 'still one after another container');
  // Without it the container's own address goes out (and nothing routes the answer back): the check above can fail.
  t.equal(ts(['run', '-d', '--name', 'natter', '--network', 'natted', 'busybox', 'sleep', '60']).status, 0);
  const fromRunning = () => ts(['exec', 'natter', 'sh', '-c', 'timeout 3 nc 10.231.60.2 9000 </dev/null']).stdout.trim();
  t.equal(fromRunning(), '10.231.60.1');
  removeBridgeRules(JSON.parse(ts(['network', 'inspect', 'natted']).stdout)[0].Options['com.docker.network.bridge.name']);
  t.equal(rules().length, 0);
  t.not(fromRunning(), '10.231.60.1', 'without the rule the server does not see the host\'s address');
  t.equal(ts(['rm', '-f', 'natter']).status, 0);
  t.equal(seen(), '10.231.60.1', 'the next start puts the rule back');
  t.equal(rules().length, 1);
  t.equal(ts(['network', 'rm', 'natted']).status, 0);
  t.equal(rules().length, 0, 'and network rm takes it');
  clean(t, 'outbound NAT');
});

t.test('a container cannot reach the host\'s 127.0.0.0/8 through its gateway (CVE-2020-8558)', { skip }, async (t) => {
  t.equal(ts(['network', 'create', '--subnet', SUBNET(10), 'guarded']).status, 0);
  // A published port makes portmap set route_localnet on the bridge: what opens the hole.
  const r = ts(['run', '-d', '--name', 'prober', '--network', 'guarded', '-p', '127.0.0.1::80', 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  const ins = JSON.parse(ts(['inspect', 'prober']).stdout)[0];
  const bridge = JSON.parse(ts(['network', 'inspect', 'guarded']).stdout)[0].Options['com.docker.network.bridge.name'];
  t.equal(fs.readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim(), '1', 'route_localnet is on for the bridge');
  // What a container with CAP_NET_RAW can put on the wire, made here with routes in its namespace:
  // a datagram to 127.0.0.1 sent to the gateway's MAC.
  const netns = netnsPath(root, ins.Id);
  const setup = spawnSync('nsenter', [`--net=${netns}`, 'sh', '-c', `ip route del local 127.0.0.0/8 dev lo table local; ip route del local 127.0.0.1 dev lo table local; sysctl -qw net.ipv4.conf.eth0.route_localnet=1; ip route add 127.0.0.1/32 via ${ins.NetworkSettings.Networks.guarded.Gateway} dev eth0`], { encoding: 'utf8' });
  t.equal(setup.status, 0, setup.stderr);
  const reaches = async () => {
    const listener = dgram.createSocket('udp4');
    await new Promise<void>((res) => listener.bind(0, '127.0.0.1', () => res()));
    const port = (listener.address() as net.AddressInfo).port;
    const got = new Promise<string>((res) => {
      listener.on('message', (m, from) => res(`${m} from ${from.address}`));
      setTimeout(() => res(''), 1500);
    });
    spawnSync('nsenter', [`--net=${netns}`, process.execPath, '-e', `const s = require('dgram').createSocket('udp4'); s.send('probe', ${port}, '127.0.0.1', () => s.close())`]);
    const text = await got;
    listener.close();
    return text;
  };
  t.equal(await reaches(), '', 'the datagram is dropped before the host\'s loopback service sees it');
  // The same without the rule: the hole is real on this host, so the check above can fail.
  unguardLoopback(bridge);
  try {
    t.match(await reaches(), /^probe from 10\.231\.10\.\d+$/, 'without the rule, it arrives');
  } finally {
    guardLoopback(bridge);
  }
  t.equal(ts(['rm', '-f', 'prober']).status, 0);
  t.equal(ts(['network', 'rm', 'guarded']).status, 0);
  t.notMatch(spawnSync('iptables', ['-S', 'INPUT'], { encoding: 'utf8' }).stdout, new RegExp(bridge), 'the network\'s rule goes with it');
  t.notMatch(spawnSync('iptables', ['-t', 'nat', '-S', 'POSTROUTING'], { encoding: 'utf8' }).stdout, new RegExp(bridge), 'and its masquerade rule');
  clean(t, 'loopback guard');
});

t.test('a user network: members reach each other by name and alias; another network\'s container does not', { skip }, async (t) => {
  t.match(ts(['network', 'create', '--subnet', SUBNET(1), '--label', 'team=db', 'app']).stdout, /^[0-9a-f]{64}$/m);
  t.equal(ts(['network', 'create', '--subnet', SUBNET(2), 'elsewhere']).status, 0);
  t.match(ts(['network', 'ls']).stdout, new RegExp(`app\\s+bridge\\s+${SUBNET(1).replace(/\./g, '\\.')}`));
  let r = ts(['run', '-d', '--name', 'db', '--network', 'app', '--network-alias', 'database', 'busybox', 'sh', '-c', 'echo i am the db > /tmp/index.html; httpd -f -p 80 -h /tmp']);
  t.equal(r.status, 0, r.stderr);
  r = ts(['run', '--rm', '--network', 'app', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://db/ && break; sleep 0.2; done; wget -q -O - http://database/']);
  t.equal(r.stdout, 'i am the db\ni am the db\n', 'by name and by alias');
  r = ts(['run', '--rm', '--network', 'elsewhere', 'busybox', 'wget', '-q', '-O', '-', 'http://db/']);
  t.not(r.status, 0, 'a container on another network cannot resolve it');
  t.match(r.stderr, /bad address 'db'/);
  const dbIp = JSON.parse(ts(['inspect', 'db']).stdout)[0].NetworkSettings.Networks.app.IPAddress;
  // --init: as pid 1 wget would ignore timeout's SIGTERM and wait out TCP's retries (some 130 s).
  r = ts(['run', '--rm', '--init', '--network', 'elsewhere', 'busybox', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${dbIp}/`]);
  t.not(r.stdout, 'i am the db\n', `nor reach it by its address ${dbIp}: user networks are kept apart`);
  // A member that comes later is named in the hosts of those already there.
  t.equal(ts(['run', '-d', '--name', 'late', '--network', 'app', 'busybox', 'sleep', '60']).status, 0);
  t.match(ts(['exec', 'db', 'cat', '/etc/hosts']).stdout, /^10\.231\.1\.\d+\tlate [0-9a-f]{12}$/m, 'the db\'s /etc/hosts now names the late one');
  t.equal(ts(['rename', 'late', 'later']).status, 0);
  t.match(ts(['exec', 'db', 'cat', '/etc/hosts']).stdout, /^10\.231\.1\.\d+\tlater [0-9a-f]{12}$/m, 'a rename reaches the others\' /etc/hosts');
  t.notMatch(ts(['exec', 'db', 'cat', '/etc/hosts']).stdout, /\blate\b/);
  t.equal(ts(['rm', '-f', 'later']).status, 0);
  t.notMatch(ts(['exec', 'db', 'cat', '/etc/hosts']).stdout, /\blater?\b/, 'and forgets it when it goes');
  const ins = JSON.parse(ts(['network', 'inspect', 'app']).stdout)[0];
  t.match(ins, { Name: 'app', Driver: 'bridge', Labels: { team: 'db' }, IPAM: { Config: [{ Subnet: SUBNET(1), Gateway: '10.231.1.1' }] } });
  t.equal(Object.values(ins.Containers as Record<string, { Name: string }>).map((c) => c.Name).join(), 'db', 'inspect lists its member');
  r = ts(['network', 'rm', 'app']);
  t.equal(r.status, 125);
  t.match(r.stderr, /network app is in use by container db/, 'rm refuses a network in use');
  clean(t, 'user network');
  t.equal(ts(['network', 'rm', 'app', 'elsewhere']).status, 0);
  t.notMatch(ts(['network', 'ls', '-q']).stdout, /app|elsewhere/, 'gone from ls');
});

t.test('--internal: no route out; --ip and --mac-address; container: shares one netns', { skip }, async (t) => {
  t.equal(ts(['network', 'create', '--internal', '--subnet', SUBNET(3), 'inner']).status, 0);
  let r = ts(['run', '-d', '--name', 'fixed', '--network', 'inner', '--ip', '10.231.3.77', '--mac-address', '02:42:0a:e7:03:4d', 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  t.match(ts(['exec', 'fixed', 'ip', 'addr', 'show', 'lo']).stdout, /inet 127\.0\.0\.1\/8/, 'lo is up, with its address');
  r = ts(['exec', 'fixed', 'ip', 'route']);
  t.notMatch(r.stdout, /default/, 'no default route');
  t.match(r.stdout, /10\.231\.3\.0\/24 dev eth0/);
  const addr = ts(['exec', 'fixed', 'ip', 'addr', 'show', 'eth0']).stdout;
  t.match(addr, /inet 10\.231\.3\.77\/24/, 'the address asked for');
  t.match(addr, /link\/ether 02:42:0a:e7:03:4d/, 'the MAC asked for');
  r = ts(['run', '--rm', '--network', 'container:fixed', 'busybox', 'ip', 'addr', 'show', 'eth0']);
  t.equal(r.stdout.replace(/^\d+: /, ''), addr.replace(/^\d+: /, ''), 'container:fixed sees the same interface and address');
  clean(t, 'internal');
  t.equal(ts(['network', 'rm', 'inner']).status, 0);
});

t.test('connect and disconnect a running container; 20 at once get distinct addresses', { skip }, async (t) => {
  t.equal(ts(['network', 'create', '--subnet', SUBNET(4), 'front']).status, 0);
  t.equal(ts(['network', 'create', '--subnet', SUBNET(5), 'back']).status, 0);
  t.equal(ts(['run', '-d', '--name', 'multi', '--network', 'front', 'busybox', 'sleep', '60']).status, 0);
  t.equal(ts(['network', 'connect', '--alias', 'm2', 'back', 'multi']).status, 0);
  t.match(ts(['exec', 'multi', 'ip', 'addr']).stdout, /inet 10\.231\.5\.\d+\/24 .*eth1/, 'a second interface on back');
  let r = ts(['run', '--rm', '--network', 'back', 'busybox', 'ping', '-c', '1', '-W', '2', 'm2']);
  t.equal(r.status, 0, `a member of back reaches it by its alias there: ${r.stdout}${r.stderr}`);
  t.equal(ts(['network', 'disconnect', 'back', 'multi']).status, 0);
  t.notMatch(ts(['exec', 'multi', 'ip', 'addr']).stdout, /eth1/, 'gone after disconnect');
  r = ts(['network', 'disconnect', 'back', 'multi']);
  t.match(r.stderr, /is not connected to network back/);
  t.equal(ts(['rm', '-f', 'multi']).status, 0);

  const { CLI } = await import('./helpers');
  const runs = Array.from({ length: 20 }, (_, i) => new Promise<number | null>((resolve) => spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '-d', '--name', `n${i}`, '--network', 'front', 'busybox', 'sleep', '60'], { stdio: 'ignore' }).on('exit', resolve)));
  t.same(await Promise.all(runs), Array(20).fill(0), '20 run -d at once on one network');
  const ips = Array.from({ length: 20 }, (_, i) => JSON.parse(ts(['inspect', `n${i}`]).stdout)[0].NetworkSettings.Networks.front.IPAddress as string);
  t.equal(new Set(ips).size, 20, `20 distinct addresses (${ips.join(' ')})`);
  t.ok(ips.every((ip) => ip.startsWith('10.231.4.')));
  r = ts(['exec', 'n0', 'ping', '-c', '1', '-W', '2', 'n19']);
  t.equal(r.status, 0, 'the first reaches the last by name');
  clean(t, '20 at once');
  t.equal(ts(['network', 'rm', 'front', 'back']).status, 0);
});

t.test('faults: a killed run, a dead monitor, state after a reboot; stop and restart; all end in CNI DEL', { skip }, async (t) => {
  t.equal(ts(['network', 'create', '--subnet', SUBNET(6), 'faulty']).status, 0);
  // stop then start: the network is undone at the stop and made again at the start.
  t.equal(ts(['run', '-d', '--name', 'cycle', '--network', 'faulty', '-p', '127.0.0.1::80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']).status, 0);
  t.equal(ts(['stop', '-t', '1', 'cycle']).status, 0);
  t.same(hostTraces(), { rules: [], veths: [], leases: [], netns: [] }, 'stopped: nothing of its network is left');
  t.equal(ts(['start', 'cycle']).status, 0);
  const p = Number(/:(\d+)$/m.exec(ts(['port', 'cycle', '80']).stdout)?.[1]);
  t.match(await eventually(() => hostGet(`http://127.0.0.1:${p}/hostname`), /[0-9a-f]{12}/), /[0-9a-f]{12}/, 'started again: published again');
  t.equal(ts(['rm', '-f', 'cycle']).status, 0);

  // A foreground run killed: its network stays until rm -f.
  const { CLI } = await import('./helpers');
  const child = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--name', 'killed', '--network', 'faulty', 'busybox', 'sleep', '60'], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !/Up/.test(ts(['ps', '-a']).stdout); i++) await sleep(50);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  t.ok(hostTraces().veths.length > 0, 'the killed run left its veth');
  clean(t, 'killed run');

  // rm -f of a foreground run --rm: the run ends as killed and its clean-up waits for rm's, saying nothing.
  const fg = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', '--name', 'fg', '--network', 'faulty', 'busybox', 'sleep', '60'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let fgErr = '';
  fg.stderr!.on('data', (d) => (fgErr += d));
  const fgExit = new Promise<number | null>((r) => fg.on('exit', (code) => r(code)));
  for (let i = 0; i < 100 && !/Up.*\bfg$/m.test(ts(['ps']).stdout); i++) await sleep(50);
  t.equal(ts(['rm', '-f', 'fg']).status, 0);
  t.equal(await fgExit, 137, 'the foreground run ends as killed');
  t.equal(fgErr, '', 'and says nothing of the rm');
  t.same(hostTraces(), { rules: [], veths: [], leases: [], netns: [] }, 'nothing of its network is left');
  t.notMatch(ts(['ps', '-a']).stdout, /\bfg$/m, 'nor the container');

  // A dead monitor: rm -f still undoes the network.
  t.equal(ts(['run', '-d', '--name', 'orphan', '--network', 'faulty', 'busybox', 'sleep', '60']).status, 0);
  process.kill(JSON.parse(ts(['inspect', 'orphan']).stdout)[0].State.MonitorPid, 'SIGKILL');
  clean(t, 'dead monitor');

  // After a "reboot": the processes and the netns mount are gone, the records remain.
  t.equal(ts(['run', '-d', '--name', 'rebooted', '--network', 'faulty', 'busybox', 'sleep', '60']).status, 0);
  const st = JSON.parse(ts(['inspect', 'rebooted']).stdout)[0];
  process.kill(st.State.MonitorPid, 'SIGKILL');
  process.kill(st.State.Pid, 'SIGKILL');
  await sleep(200);
  spawnSync('umount', ['-l', st.NetworkSettings.SandboxKey]);
  // A reboot also loses the firewall rules (they live in the kernel); the leases live on disk.
  dropRulesOf(st.Id);
  t.match(JSON.parse(ts(['inspect', 'rebooted']).stdout)[0].State, { Running: false });
  t.ok(hostTraces().leases.length > 0, 'its lease survived the "reboot"');
  clean(t, 'rebooted');
  t.equal(ts(['network', 'rm', 'faulty']).status, 0);
});

t.test('/etc/resolv.conf: --dns, --dns-search, --dns-option; Docker\'s fallback when the host has only loopback resolvers', { skip }, async (t) => {
  let r = ts(['run', '--rm', '--dns', '10.231.9.9', '--dns-search', 'example.test', '--dns-option', 'ndots:2', 'busybox', 'cat', '/etc/resolv.conf']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^nameserver 10\.231\.9\.9$/m);
  t.notMatch(r.stdout.replace(/^nameserver 10\.231\.9\.9$/m, ''), /^nameserver /m, '--dns replaces the host\'s');
  t.match(r.stdout, /^search example\.test$/m);
  t.match(r.stdout, /^options ndots:2$/m);
  // A host that resolves through a local stub (systemd-resolved's 127.0.0.53): seen only by this tsrun, in a mount namespace of its own.
  const stub = path.join(TEST_BASE, `resolv-${process.pid}.conf`);
  fs.writeFileSync(stub, 'nameserver 127.0.0.53\nsearch lan\n');
  const cli = path.join(__dirname, '..', 'dist', 'tsrun.js');
  const u = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${stub} /etc/resolv.conf && exec ${process.execPath} ${cli} --root ${root} --storage ${storage} run --rm busybox cat /etc/resolv.conf`], { encoding: 'utf8' });
  fs.rmSync(stub);
  t.equal(u.status, 0, u.stderr);
  t.equal(u.stdout, 'search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n', 'the loopback resolver dropped, Docker\'s public ones instead');
});

t.test('bad input: one line, exit 125, nothing left behind', { skip }, async (t) => {
  const one = (r: { status: number | null; stderr: string }, re: RegExp, what: string) => {
    t.equal(r.status, 125, `${what}: exit 125`);
    t.match(r.stderr, re, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
  };
  t.equal(ts(['network', 'create', '--subnet', SUBNET(7), 'taken']).status, 0);
  one(ts(['network', 'create', '--subnet', '10.231.7.128/25', 'overlap']), /subnet 10\.231\.7\.128\/25 overlaps network taken \(10\.231\.7\.0\/24\)/, 'an overlapping subnet');
  one(ts(['network', 'create', '--subnet', '10.231.8.1/24', 'hostbits']), /host bits are set/, 'a subnet with host bits');
  one(ts(['network', 'create', 'taken']), /network taken already exists/, 'a name taken');
  one(ts(['network', 'create', 'host']), /reserved/, 'a reserved name');
  one(ts(['run', '--rm', '--network', 'nosuch', 'busybox', 'true']), /network nosuch not found/, 'an unknown network');
  for (const bad of ['80:80:80:80', 'x:80', '70000', '80/sctp', '8000-8002:80-81', '[::1]:80:80']) one(ts(['run', '--rm', '-p', bad, 'busybox', 'true']), /^tsrun: -p /, `-p ${bad}`);
  one(ts(['run', '--rm', '--network', 'none', '-p', '80', 'busybox', 'true']), /cannot be used with --network none/, '-p with --network none');
  one(ts(['run', '--rm', '--ip', '10.231.7.9', '--network', 'bridge', 'busybox', 'true']), /--ip needs a user network/, '--ip on the default network');
  one(ts(['run', '--rm', '--network', 'taken', '--ip', '10.9.9.9', 'busybox', 'true']), /--ip 10\.9\.9\.9: not an address of network taken/, '--ip outside the subnet');
  // A port a host process holds.
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const held = (server.address() as net.AddressInfo).port;
  one(ts(['run', '-d', '--network', 'taken', '-p', `127.0.0.1:${held}:80`, 'busybox', 'sleep', '5']), new RegExp(`publish 127\\.0\\.0\\.1:${held}/tcp -> 80: cannot bind host port: it is in use on the host`), 'a port already bound');
  server.close();
  one(ts(['--cni-path', path.join(TEST_BASE, 'no-plugins-here'), 'run', '--rm', '--network', 'taken', 'busybox', 'true']), /CNI plugin "bridge" not found in .*no-plugins-here \(install containernetworking-plugins/, 'missing CNI plugins');
  // A plugin that hangs at ADD is killed after TSRUN_CNI_TIMEOUT seconds, and the run fails saying so.
  const realDir = ['/usr/lib/cni', '/opt/cni/bin'].find((d) => fs.existsSync(path.join(d, 'bridge')))!;
  const slowDir = path.join(TEST_BASE, `slow-cni-${process.pid}`);
  fs.mkdirSync(slowDir, { recursive: true });
  fs.writeFileSync(path.join(slowDir, 'bridge'), `#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] && exec sleep 30\nexec ${realDir}/bridge\n`, { mode: 0o755 });
  process.env.TSRUN_CNI_TIMEOUT = '1';
  const started = Date.now();
  try {
    one(ts(['--cni-path', `${slowDir}:${realDir}`, 'run', '--rm', '--network', 'taken', 'busybox', 'true']), /CNI ADD bridge .*did not answer within 1 s and was killed/, 'a plugin that hangs');
  } finally {
    delete process.env.TSRUN_CNI_TIMEOUT;
    fs.rmSync(slowDir, { recursive: true, force: true });
  }
  t.ok(Date.now() - started < 20_000, 'the run ended soon after the limit');
  // Without iptables (not on PATH): the loopback guard for a published port, the bridge plugin's NAT otherwise.
  const noSbin = { PATH: '/usr/local/bin:/usr/bin:/bin' };
  one(tsrun(['--storage', storage, 'run', '--rm', '--network', 'taken', '-p', '127.0.0.1::80', 'busybox', 'true'], { root, env: noSbin }), /iptables -I INPUT\): iptables is not installed \(Debian package iptables\)/, 'no iptables, a port published');
  one(tsrun(['--storage', storage, 'run', '--rm', '--network', 'taken', 'busybox', 'true'], { root, env: noSbin }), /iptables -t nat -A POSTROUTING\): iptables is not installed \(Debian package iptables\)/, 'no iptables');
  one(ts(['network', 'rm', 'nosuch']), /network nosuch not found/, 'rm of an unknown network');
  one(ts(['run', '--rm', '--network', 'taken', '--network-alias', 'localhost', 'busybox', 'true']), /--network-alias localhost: a name every \/etc\/hosts already has/, 'an alias that would take over localhost');
  one(ts(['run', '--rm', '--network', 'taken', '--mac-address', '01:00:5e:00:00:01', 'busybox', 'true']), /a multicast address/, 'a multicast MAC');
  t.equal(ts(['run', '-d', '--name', 'lonely', '--network', 'none', 'busybox', 'sleep', '30']).status, 0);
  one(ts(['run', '--rm', '--network', 'container:lonely', 'busybox', 'true']), /container lonely has --network none, whose namespace is not bound/, 'container: of a container without a network of tsrun\'s');
  one(ts(['run', '--rm', '--network', 'container:lonely', '--hostname', 'x', 'busybox', 'true']), /--hostname cannot be used with --network container:/, '--hostname with container:');
  t.equal(ts(['rm', '-f', 'lonely']).status, 0);
  // Names other members' /etc/hosts carry: a newline would write lines of its own there.
  one(ts(['run', '--rm', '--network', 'taken', '--network-alias', 'ok\n10.231.7.66 victim', 'busybox', 'true']), /--network-alias "ok\\n10\.231\.7\.66 victim": use letters/, 'an alias with a newline');
  one(ts(['run', '--rm', '--network', 'taken', '--hostname', 'h\n10.231.7.66 victim', 'busybox', 'true']), /--hostname .*: use letters/, 'a hostname with a newline');
  one(ts(['run', '--rm', '--dns-search', 'a\nnameserver 10.231.7.66', 'busybox', 'true']), /--dns-search\/--dns-option .*: one word/, 'a search domain with a newline');
  clean(t, 'bad input');
  t.same(fs.readdirSync(path.join(storage, 'containers')), [], 'no container kept');
  t.equal(ts(['network', 'rm', 'taken']).status, 0);
});

