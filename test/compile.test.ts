// The plan compiler is a pure function: config in, steps out. No root needed.
import t from 'tap';
import { compilePlan, type HostFacts } from '../src/plan/compile';
import { parseCgroupMounts } from '../src/plan/host-facts';
import { Op } from '../src/plan/ops';
import { defaultSpec } from '../src/spec/default';
import type { Spec } from '../src/spec/types';
import { MS, parseMountOptions } from '../src/rootfs/mount-options';
import { makedev } from '../src/rootfs/devices';

const v1Host: HostFacts = {
  lastCap: 40,
  cgroups: parseCgroupMounts(
    [
      '31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
      '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
      '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n'),
  ),
  statSource: (f) => (f.endsWith('.txt') ? 'file' : f.includes('missing') ? 'missing' : 'dir'),
};
const v2Host: HostFacts = { ...v1Host, cgroups: parseCgroupMounts('30 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate') };
const opts = { rootfs: '/b/rootfs', bundle: '/b' };

function spec(edit?: (s: Spec) => void): Spec {
  const s = defaultSpec({ args: ['sh', '-c', 'true'], terminal: false });
  edit?.(s);
  return s;
}
const ops = (p: { steps: { op: number }[] }) => p.steps.map((s) => s.op);

t.test('new namespaces become clone flags, and the plan is one process', async (t) => {
  const p = compilePlan(spec(), v1Host, opts);
  // pid, net, ipc, uts, mount; the cgroup namespace comes after placement
  t.equal(p.cloneFlags, 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000 | 0x00020000);
  t.equal(p.twoStage, false);
  t.notOk(ops(p).includes(Op.FORK));
  t.equal(p.steps[0].op, Op.SYNC_WAIT, 'the child waits for the runtime before anything else');
  t.same([p.steps[1].op, p.steps[1].n], [Op.UNSHARE, [0x02000000]], 'then makes its cgroup namespace, rooted at the cgroup it was placed in');
});

t.test('setup order: rslave, rootfs bind, mounts, devices, pivot, then credentials, ready, start, exec', async (t) => {
  const p = compilePlan(spec(), v1Host, opts);
  const o = ops(p);
  const at = (op: number) => o.indexOf(op);
  t.ok(at(Op.PROPAGATION) < at(Op.MOUNT));
  t.ok(o.lastIndexOf(Op.MKNOD) < at(Op.PIVOT_ROOT), 'device nodes before pivot_root');
  t.ok(at(Op.PIVOT_ROOT) < at(Op.READONLY_PATH) && at(Op.READONLY_PATH) < at(Op.MASK_PATH));
  t.ok(o.lastIndexOf(Op.MASK_PATH) < o.lastIndexOf(Op.REMOUNT_RO), 'root made read-only last among mounts');
  t.ok(at(Op.CAPBSET) < at(Op.SETRESUID) && at(Op.SETRESUID) < at(Op.CAPSET));
  t.same(o.slice(-4), [Op.LOOKUP_EXEC, Op.READY, Op.WAIT_START, Op.EXEC]);
  const exec = p.steps[p.steps.length - 1];
  t.same(exec.argv, ['sh', '-c', 'true']);
  t.ok(p.steps.every((s) => s.title.length > 0 && s.why.length > 0), 'every step explains itself for --trace');
});

t.test('mounts: in-root targets, flags, data and propagation', async (t) => {
  const p = compilePlan(
    spec((s) => {
      s.mounts = [
        { destination: '/data', type: 'bind', source: 'host-dir', options: ['rbind', 'ro', 'nosuid', 'rprivate'] },
        { destination: '/etc/x.txt', source: '/host/x.txt', options: ['bind'] },
        { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nodev', 'mode=755', 'size=1m'] },
      ];
    }),
    v1Host,
    opts,
  );
  const mounts = p.steps.filter((s) => s.op === Op.MOUNT).slice(1);
  t.same(mounts[0].s, ['/b/host-dir', '/data', null, null], 'relative bind sources are relative to the bundle');
  t.same(mounts[0].n, [MS.BIND | MS.REC, 1, 1, MS.RDONLY | MS.NOSUID, MS.PRIVATE | MS.REC]);
  t.equal(mounts[1].n![2], 2, 'a file source gets a file mount point');
  t.same(mounts[2].s, ['tmpfs', '/run', 'tmpfs', 'mode=755,size=1m']);
  t.equal(mounts[2].n![0], MS.NODEV);
});

t.test('a missing bind source is a config error naming the mount', async (t) => {
  t.throws(() => compilePlan(spec((s) => s.mounts!.push({ destination: '/x', type: 'bind', source: '/missing' })), v1Host, opts), /mounts\[7\]\.source: \/missing: ENOENT/);
});

t.test('cgroup mount: per-controller on v1/hybrid, cgroup2 on a pure v2 host', async (t) => {
  const v1 = compilePlan(spec(), v1Host, opts).steps.filter((s) => s.op === Op.MOUNT && s.s?.[1]?.startsWith('/sys/fs/cgroup'));
  t.same(
    v1.map((s) => [s.s![1], s.s![2], s.s![3]]),
    [
      ['/sys/fs/cgroup', 'tmpfs', 'mode=755'],
      ['/sys/fs/cgroup/cpu', 'cgroup', 'cpu'],
      ['/sys/fs/cgroup/memory', 'cgroup', 'memory'],
      ['/sys/fs/cgroup/systemd', 'cgroup', 'name=systemd'],
      ['/sys/fs/cgroup/unified', 'cgroup2', null],
    ],
  );
  const v2 = compilePlan(spec(), v2Host, opts).steps.filter((s) => s.op === Op.MOUNT && s.s?.[1] === '/sys/fs/cgroup');
  t.same(v2.map((s) => s.s![2]), ['cgroup2']);
  t.equal(v2[0].n![0] & MS.RDONLY, MS.RDONLY);
});

t.test('a user namespace: maps for the parent, devices bound instead of mknod', async (t) => {
  const p = compilePlan(
    spec((s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    }),
    v1Host,
    opts,
  );
  t.equal(p.newUserNamespace, true);
  t.equal(p.uidMap, '0 100000 65536\n');
  t.notOk(ops(p).includes(Op.MKNOD));
  t.ok(p.steps.some((s) => s.op === Op.MOUNT && s.s?.[0] === '/dev/null' && s.n?.[2] === 2));
});

t.test('joining a namespace by path takes two stages: setns, unshare, fork', async (t) => {
  const p = compilePlan(
    spec((s) => {
      s.linux!.namespaces = s.linux!.namespaces!.map((n) => (n.type === 'network' ? { type: 'network', path: '/run/netns/x' } : n));
      s.linux!.namespaces.push({ type: 'user' });
      s.linux!.uidMappings = s.linux!.gidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
    }),
    v1Host,
    opts,
  );
  t.equal(p.twoStage, true);
  t.equal(p.cloneFlags, 0);
  t.same(ops(p).slice(0, 7), [Op.SETNS, Op.UNSHARE, Op.SYNC_USERNS, Op.UNSHARE, Op.FORK, Op.SYNC_WAIT, Op.UNSHARE]);
  t.same(p.steps[0].s, ['/run/netns/x']);
  t.equal(p.steps[1].n![0], 0x10000000, 'the user namespace is made first, so it owns the rest');
  t.equal(p.steps[3].n![0] & 0x40000000, 0, 'the joined network namespace is not also made new');
});

t.test('capabilities become masks; ambient only where permitted and inheritable', async (t) => {
  const p = compilePlan(
    spec((s) => {
      s.process!.capabilities = { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL', 'CAP_CHOWN'], inheritable: ['CAP_CHOWN'], ambient: ['CAP_CHOWN', 'CAP_KILL'] };
    }),
    v1Host,
    opts,
  );
  const find = (op: number) => p.steps.find((s) => s.op === op)!;
  t.same(find(Op.CAPBSET).n, [2 ** 5 + 2 ** 0, 40]);
  t.same(find(Op.CAPSET).n, [2 ** 5, 2 ** 5 + 1, 1]);
  t.same(find(Op.AMBIENT).n, [1]);
});

t.test('process fields: user, groups, rlimits, umask, no_new_privs, oom score, cwd', async (t) => {
  const p = compilePlan(
    spec((s) => {
      s.process!.user = { uid: 1000, gid: 100, umask: 0o027, additionalGids: [10, 20] };
      s.process!.rlimits = [{ type: 'RLIMIT_NPROC', soft: 10, hard: 18446744073709551615 }];
      s.process!.oomScoreAdj = 500;
      s.process!.cwd = '/work/dir';
    }),
    v1Host,
    opts,
  );
  const find = (op: number) => p.steps.find((s) => s.op === op)!;
  t.same(find(Op.SETRESUID).n, [1000]);
  t.same(find(Op.SETRESGID).n, [100]);
  t.same(find(Op.SETGROUPS).ints, [10, 20]);
  t.same(find(Op.RLIMIT).n, [6, 10, -1], 'RLIM_INFINITY passes as -1');
  t.same(find(Op.UMASK).n, [0o027]);
  t.ok(find(Op.NO_NEW_PRIVS));
  t.notOk(p.steps.some((s) => s.op === Op.WRITE_FILE), 'oom_score_adj is written by the runtime, from outside');
  t.same(find(Op.MKDIR).s, ['/work/dir'], 'a missing cwd is created');
  t.same(find(Op.CHDIR).s, ['/work/dir']);
});

t.test('a capability named twice is one capability', async (t) => {
  const p = compilePlan(spec((s) => (s.process!.capabilities = { bounding: ['CAP_KILL', 'cap_kill'], effective: [], permitted: [] })), v1Host, opts);
  t.same(p.steps.find((s) => s.op === Op.CAPBSET)!.n, [2 ** 5, 40], 'CAP_KILL alone, not CAP_SETGID');
});

t.test('a foreground container gets its parent-death signal again after the uid change', async (t) => {
  const p = compilePlan(spec(), v1Host, { ...opts, parentDeathSignal: 9 });
  const o = ops(p);
  t.ok(o.lastIndexOf(Op.PDEATHSIG) > o.indexOf(Op.SETRESUID));
});

t.test('hostname, domainname and sysctls', async (t) => {
  const p = compilePlan(spec((s) => Object.assign(s, { hostname: 'h1', domainname: 'd1', linux: { ...s.linux, sysctl: { 'net.ipv4.ip_forward': '1' } } })), v1Host, opts);
  t.same(p.steps.find((s) => s.op === Op.SETHOSTNAME)!.s, ['h1']);
  t.same(p.steps.find((s) => s.op === Op.SETDOMAINNAME)!.s, ['d1']);
  t.same(p.steps.filter((s) => s.op === Op.WRITE_FILE).map((s) => s.s), [['/proc/sys/net/ipv4/ip_forward', '1']]);
});

t.test('the exec fifo or the sync socket holds the container', async (t) => {
  const fifo = compilePlan(spec(), v1Host, { ...opts, execFifoFd: 7 });
  t.same(fifo.steps.find((s) => s.op === Op.WAIT_START)!.n, [7]);
  const sock = compilePlan(spec(), v1Host, { ...opts, parentDeathSignal: 9 });
  t.same(sock.steps.find((s) => s.op === Op.WAIT_START)!.n, [-1]);
  t.equal(sock.steps[0].op, Op.PDEATHSIG);
});

t.test('mount options and device numbers', async (t) => {
  t.same(parseMountOptions(['ro', 'rw', 'nosuid', 'mode=755', 'rshared', 'tmpcopyup']), { flags: MS.NOSUID, propagation: MS.SHARED | MS.REC, data: 'mode=755', copyUp: true });
  t.same(parseMountOptions(['tmpcopyup', 'notmpcopyup']), { flags: 0, propagation: 0, data: '' }, 'the last word wins');
  t.equal(makedev(1, 3), 0x103);
  t.equal(makedev(136, 300), 0x10882c, 'as glibc makedev(3)');
});
