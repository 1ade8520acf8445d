// Runs last: the suite must leave the host as it found it. Every earlier
// test file keeps its mounts, state, bundles and processes under TEST_BASE.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { native } from '../src/native';
import { cgroupHierarchies, cniChains, HOST_BEFORE, isRoot, mountsUnder, processesRootedIn, TEST_BASE } from './helpers';

t.test('nothing leaked', { skip: !isRoot && 'needs root' }, async (t) => {
  t.same(mountsUnder(TEST_BASE), [], 'no mounts under the test base');
  t.same(processesRootedIn(TEST_BASE), [], 'no process runs in a test rootfs');
  const stateBase = path.join(TEST_BASE, 'state');
  const left = fs.existsSync(stateBase) ? fs.readdirSync(stateBase).flatMap((root) => fs.readdirSync(path.join(stateBase, root)).filter((id) => !id.startsWith('.')).map((id) => `${root}/${id}`)) : [];
  t.same(left, [], 'no container state directories');
  const bundles = path.join(TEST_BASE, 'bundles');
  t.same(fs.existsSync(bundles) ? fs.readdirSync(bundles) : [], [], 'no bundles');
  const rootfs = path.join(TEST_BASE, 'rootfs');
  t.same(fs.existsSync(rootfs) ? fs.readdirSync(rootfs) : [], [], 'no root filesystems');
  const netns = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns').filter((n) => n.startsWith('tsrun-test')) : [];
  t.same(netns, [], 'no network namespaces');
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  t.notMatch(links, /probe[01]/, 'no test network devices');
  // CNI's traces of containers: veths on tsrun bridges, bridges of user networks, rules naming a network of tsrun's, leases.
  t.same(links.split('\n').filter((l) => /master tsrun/.test(l) || /^\d+: tsrun-[0-9a-f]{8}[:@]/.test(l)), [], 'no veths on tsrun bridges, no user network bridges');
  const rules = ['filter', 'nat'].flatMap((table) => execFileSync('iptables-save', ['-t', table], { encoding: 'utf8' }).split('\n').filter((l) => /name: \\"tsrun[-0-9a-f]*\\"|10\.231\.|tsrun-[0-9a-f]{8}/.test(l)));
  t.same(rules, [], 'no firewall rules of a container or of a removed network');
  // The plugins' shared chains (CNI-FORWARD, CNI-HOSTPORT-DNAT, ...): those the suite made go with its last network.
  const before = fs.existsSync(HOST_BEFORE) ? (JSON.parse(fs.readFileSync(HOST_BEFORE, 'utf8')) as { cniChains: string[] }).cniChains : cniChains();
  t.same(cniChains().filter((c) => !before.includes(c)), [], 'no CNI chains the suite made');
  const ipam = '/var/lib/cni/networks';
  const leases = fs.existsSync(ipam) ? fs.readdirSync(ipam).filter((d) => d.startsWith('tsrun')).flatMap((d) => fs.readdirSync(path.join(ipam, d)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).map((f) => `${d}/${f}`)) : [];
  t.same(leases, [], 'no address leases');
  const cgroups: string[] = [];
  for (const base of cgroupHierarchies()) {
    for (const d of fs.readdirSync(base)) if (d.startsWith('tsrun-test')) cgroups.push(path.join(base, d));
    const parent = path.join(base, 'tsrun');
    // Test container ids are word-PID-N; image containers have 64-hex ids, and
    // one without state under the default root belongs to no container at all.
    for (const d of fs.existsSync(parent) ? fs.readdirSync(parent) : []) {
      if (/^[a-z]+-\d+-\d+$/.test(d) || (/^[0-9a-f]{64}$/.test(d) && !fs.existsSync(path.join('/run/tsrun', d)))) cgroups.push(path.join(parent, d));
    }
  }
  t.same(cgroups, [], 'no cgroup directories');
  // Processes of the suite's: their command lines name the test base.
  const running = (...names: string[]) =>
    fs.readdirSync('/proc').filter((p) => {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes(TEST_BASE) && names.some((n) => cmd.includes(n));
      } catch {
        return false;
      }
    });
  t.same(running('tsrun-monitor'), [], 'no container monitors');
  t.same(running('docker-registry', 'token-server.mjs', 'hostile-registry.mjs'), [], 'no registries or token servers');
  t.same(running('containerd', 'conmon'), [], 'no containerd, shim or conmon of a test');
  // Volumes live in each test store's volumes/ (their tmpfs mounts are among the mounts above).
  const volumes: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      if (!e.isDirectory() || e.name === 'containers' || e.name === 'layers' || e.name === 'blobs') continue;
      const p = path.join(dir, e.name);
      if (e.name === 'volumes') volumes.push(...fs.readdirSync(p).filter((n) => !n.startsWith('.lock')).map((n) => path.join(p, n)));
      else if (depth < 3) walk(p, depth + 1);
    }
  };
  walk(TEST_BASE, 0);
  t.same(volumes, [], 'no volumes');
  const probes = path.join(TEST_BASE, 'probe');
  t.same(fs.existsSync(probes) ? fs.readdirSync(probes) : [], [], 'no probe builds');
  // Without recursion: a test that failed may have left a tree deeper than the stack.
  native().removeTree(TEST_BASE);
});
