// linux.resources into cgroup files, for v1, v2 and hybrid layouts, without
// a kernel: the writes are computed, then checked against a fixture tree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { applyWrites, planWrites } from '../src/cgroup/placement';
import { blkioToIoWeight, parseBytes, resourcesFromFlags, sharesToWeight, v1Writes, v2Writes } from '../src/cgroup/resources';
import { parseCgroupMounts } from '../src/plan/host-facts';

const full = {
  memory: { limit: 33554432, reservation: 16777216, swap: 67108864, swappiness: 10, disableOOMKiller: false },
  cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0', idle: 0 },
  pids: { limit: 20 },
  blockIO: { weight: 500, weightDevice: [{ major: 8, minor: 0, weight: 200 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }] },
  hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
};

t.test('v1: a file per setting, in its controller\'s hierarchy', async (t) => {
  t.same(
    v1Writes(full).map((w) => `${w.controller}/${w.file}=${w.value}`),
    [
      'memory/memory.limit_in_bytes=33554432',
      'memory/memory.memsw.limit_in_bytes=67108864',
      'memory/memory.soft_limit_in_bytes=16777216',
      'memory/memory.swappiness=10',
      'cpu/cpu.shares=512',
      'cpu/cpu.cfs_period_us=100000',
      'cpu/cpu.cfs_quota_us=50000',
      'cpu/cpu.idle=0',
      'cpuset/cpuset.cpus=0-1',
      'cpuset/cpuset.mems=0',
      'pids/pids.max=20',
      'blkio/blkio.weight=500',
      'blkio/blkio.weight_device=8:0 200',
      'blkio/blkio.throttle.read_bps_device=8:0 1048576',
      'blkio/blkio.throttle.write_iops_device=8:0 100',
      'hugetlb/hugetlb.2MB.limit_in_bytes=4194304',
    ],
  );
  t.same(v1Writes({ pids: { limit: 0 }, memory: { disableOOMKiller: true } }).map((w) => `${w.file}=${w.value}`), ['memory.oom_control=1', 'pids.max=max']);
});

t.test('v2: the unified files, with runc\'s conversions', async (t) => {
  t.same(
    v2Writes(full).map((w) => `${w.controller}/${w.file}=${w.value}`),
    [
      'memory/memory.max=33554432',
      'memory/memory.low=16777216',
      'memory/memory.swap.max=33554432',
      `cpu/cpu.weight=${sharesToWeight(512)}`,
      'cpu/cpu.max=50000 100000',
      'cpu/cpu.idle=0',
      'cpuset/cpuset.cpus=0-1',
      'cpuset/cpuset.mems=0',
      'pids/pids.max=20',
      `io/io.weight=default ${blkioToIoWeight(500)}`,
      `io/io.weight=8:0 ${blkioToIoWeight(200)}`,
      'io/io.max=8:0 rbps=1048576',
      'io/io.max=8:0 wiops=100',
      'hugetlb/hugetlb.2MB.max=4194304',
    ],
  );
  t.equal(sharesToWeight(1024), 39, 'the default shares');
  t.equal(sharesToWeight(2), 1);
  t.equal(sharesToWeight(262144), 10000);
  t.same(v2Writes({ unified: { 'memory.high': '1000000', 'pids.max': '7' } }).map((w) => `${w.controller}/${w.file}=${w.value}`), ['memory/memory.high=1000000', 'pids/pids.max=7']);
  t.throws(() => v2Writes({ unified: { '../etc/passwd': 'x' } }), /not a cgroup file name/);
  t.throws(() => v2Writes({ memory: { disableOOMKiller: true } }), /not available on cgroup v2/);
  t.throws(() => v2Writes({ memory: { limit: 100, swap: 50 } }), /below the memory limit/);
  t.same(v2Writes({ cpu: { quota: -1, period: 20000 } }).map((w) => w.value), ['max 20000']);
});

t.test('hybrid: v1 controllers where they are, the rest in the unified tree', async (t) => {
  const hybrid = parseCgroupMounts(
    [
      '34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      '38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids',
      '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
      '40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    ].join('\n'),
  );
  const plan = planWrites({ memory: { limit: 1000 }, pids: { limit: 5 }, cpu: { shares: 100 }, hugepageLimits: [{ pageSize: '2MB', limit: 2097152 }] }, hybrid, () => ['hugetlb']);
  t.same(Object.fromEntries([...plan].map(([k, v]) => [k, v.map((w) => `${w.file}=${w.value}`)])), {
    '/sys/fs/cgroup/memory': ['memory.limit_in_bytes=1000'],
    '/sys/fs/cgroup/cpu,cpuacct': ['cpu.shares=100'],
    '/sys/fs/cgroup/pids': ['pids.max=5'],
    '/sys/fs/cgroup/unified': ['hugetlb.2MB.max=2097152'],
  });
  t.throws(() => planWrites({ blockIO: { weight: 100 } }, hybrid, () => ['hugetlb']), /linux\.resources: the blkio controller is not available on this host/);
  const v2 = parseCgroupMounts('30 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw');
  t.throws(() => planWrites({ pids: { limit: 3 } }, v2, () => ['memory']), /the pids controller is not available/);
  t.same([...planWrites({ pids: { limit: 3 } }, v2, () => ['memory', 'pids']).keys()], ['/sys/fs/cgroup']);
});

t.test('writes land in a fixture tree, and a refused write names file, value and dir', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-cg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  applyWrites(dir, v2Writes({ pids: { limit: 9 }, memory: { limit: 1 << 20 } }));
  t.equal(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8'), '9');
  t.equal(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8'), '1048576');
  t.throws(() => applyWrites(path.join(dir, 'missing'), [{ controller: 'pids', file: 'pids.max', value: '1' }]), /set pids\.max to 1 in \S+missing: ENOENT/);
});

t.test('Docker\'s flags and units', async (t) => {
  t.equal(parseBytes('512m', '--memory'), 512 * 1024 ** 2);
  t.equal(parseBytes('1g', '--memory'), 1024 ** 3);
  t.equal(parseBytes('100k', '--memory'), 102400);
  t.equal(parseBytes('1.5g', '--memory'), 1.5 * 1024 ** 3);
  t.equal(parseBytes('4096', '--memory'), 4096);
  t.throws(() => parseBytes('lots', '--memory'), /--memory "lots": expected a size such as 512m or 1g/);
  t.same(resourcesFromFlags({ memory: '32m', memorySwap: '64m', cpus: '0.5', pidsLimit: '20', cpuShares: '512', cpusetCpus: '0', blkioWeight: '300' }), {
    memory: { limit: 32 * 1024 ** 2, swap: 64 * 1024 ** 2 },
    cpu: { period: 100000, quota: 50000, shares: 512, cpus: '0' },
    pids: { limit: 20 },
    blockIO: { weight: 300 },
  });
  t.throws(() => resourcesFromFlags({ memory: '64m', memorySwap: '32m' }), /--memory-swap must be at least --memory/);
  t.throws(() => resourcesFromFlags({ cpus: '-1' }), /--cpus "-1"/);
  t.throws(() => resourcesFromFlags({ blkioWeight: '5' }), /--blkio-weight "5": expected an integer from 10 to 1000/);
});
