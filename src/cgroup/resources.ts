// OCI linux.resources into the files each cgroup driver writes. Pure
// functions: the writes are computed here and tested without a kernel; the
// placement code performs them in order.
import { TsrunError } from '../errors';

export interface Resources {
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean; kernel?: number; kernelTCP?: number };
  cpu?: { shares?: number; quota?: number; period?: number; realtimeRuntime?: number; realtimePeriod?: number; cpus?: string; mems?: string; idle?: number };
  pids?: { limit?: number };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice?: { major: number; minor: number; weight?: number; leafWeight?: number }[];
    throttleReadBpsDevice?: ThrottleDevice[];
    throttleWriteBpsDevice?: ThrottleDevice[];
    throttleReadIOPSDevice?: ThrottleDevice[];
    throttleWriteIOPSDevice?: ThrottleDevice[];
  };
  hugepageLimits?: { pageSize: string; limit: number }[];
  devices?: unknown[];
  unified?: Record<string, string>;
}

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

/** One write: controller (v1 hierarchy, or the v2 controller to enable), file, value. */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
}

const DEFAULT_PERIOD = 100000;

/** Docker/runc's conversion of cpu shares (2..262144) to a v2 weight (1..10000). */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** blkio weight (10..1000) to a v2 io weight (1..10000). */
export function blkioToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return Math.floor(1 + ((weight - 10) * 9999) / 990);
}

/** "2MB" -> "2MB" for v1 file names; v2 uses the same suffix. */
function hugepageName(size: string): string {
  if (!/^\d+[KMG]B$/.test(size)) throw new TsrunError(`invalid config: linux.resources.hugepageLimits: page size "${size}" is not like 2MB or 1GB`);
  return size;
}

/** Writes for a cgroup v1 host (a hierarchy per controller). */
export function v1Writes(r: Resources): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const add = (controller: string, file: string, value: string | number | undefined) => {
    if (value !== undefined) w.push({ controller, file, value: String(value) });
  };
  const m = r.memory;
  if (m) {
    // memsw must stay >= the limit; applyWrites swaps the two when the limit
    // would rise above the current memsw.
    add('memory', 'memory.limit_in_bytes', m.limit);
    if (m.swap !== undefined) add('memory', 'memory.memsw.limit_in_bytes', m.swap);
    add('memory', 'memory.soft_limit_in_bytes', m.reservation);
    add('memory', 'memory.swappiness', m.swappiness);
    if (m.disableOOMKiller) add('memory', 'memory.oom_control', 1);
  }
  const c = r.cpu;
  if (c) {
    add('cpu', 'cpu.shares', c.shares);
    add('cpu', 'cpu.cfs_period_us', c.period);
    add('cpu', 'cpu.cfs_quota_us', c.quota);
    add('cpu', 'cpu.rt_period_us', c.realtimePeriod);
    add('cpu', 'cpu.rt_runtime_us', c.realtimeRuntime);
    add('cpu', 'cpu.idle', c.idle);
    add('cpuset', 'cpuset.cpus', c.cpus);
    add('cpuset', 'cpuset.mems', c.mems);
  }
  if (r.pids?.limit !== undefined) add('pids', 'pids.max', r.pids.limit > 0 ? r.pids.limit : 'max');
  const b = r.blockIO;
  if (b) {
    add('blkio', 'blkio.weight', b.weight);
    add('blkio', 'blkio.leaf_weight', b.leafWeight);
    for (const d of b.weightDevice ?? []) {
      if (d.weight !== undefined) add('blkio', 'blkio.weight_device', `${d.major}:${d.minor} ${d.weight}`);
      if (d.leafWeight !== undefined) add('blkio', 'blkio.leaf_weight_device', `${d.major}:${d.minor} ${d.leafWeight}`);
    }
    for (const [list, file] of [
      [b.throttleReadBpsDevice, 'blkio.throttle.read_bps_device'],
      [b.throttleWriteBpsDevice, 'blkio.throttle.write_bps_device'],
      [b.throttleReadIOPSDevice, 'blkio.throttle.read_iops_device'],
      [b.throttleWriteIOPSDevice, 'blkio.throttle.write_iops_device'],
    ] as const)
      for (const d of list ?? []) add('blkio', file, `${d.major}:${d.minor} ${d.rate}`);
  }
  for (const h of r.hugepageLimits ?? []) add('hugetlb', `hugetlb.${hugepageName(h.pageSize)}.limit_in_bytes`, h.limit);
  if (r.unified && Object.keys(r.unified).length) throw new TsrunError('invalid config: linux.resources.unified needs a cgroup v2 host');
  return w;
}

/** Writes for a cgroup v2 (unified) hierarchy. */
export function v2Writes(r: Resources): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const add = (controller: string, file: string, value: string | number | undefined) => {
    if (value !== undefined) w.push({ controller, file, value: String(value) });
  };
  const m = r.memory;
  if (m) {
    add('memory', 'memory.max', m.limit === undefined ? undefined : m.limit === -1 ? 'max' : m.limit);
    add('memory', 'memory.low', m.reservation);
    if (m.swap !== undefined) {
      // v1's swap is memory+swap; v2 limits swap alone.
      if (m.swap === -1) add('memory', 'memory.swap.max', 'max');
      else if (m.limit === undefined || m.limit === -1) throw new TsrunError('invalid config: linux.resources.memory.swap needs a memory limit on cgroup v2');
      else if (m.swap < m.limit) throw new TsrunError(`invalid config: linux.resources.memory.swap (${m.swap}) is below the memory limit (${m.limit})`);
      else add('memory', 'memory.swap.max', m.swap - m.limit);
    }
    if (m.disableOOMKiller) throw new TsrunError('invalid config: linux.resources.memory.disableOOMKiller is not available on cgroup v2');
  }
  const c = r.cpu;
  if (c) {
    if (c.shares !== undefined) add('cpu', 'cpu.weight', sharesToWeight(c.shares));
    if (c.quota !== undefined || c.period !== undefined) add('cpu', 'cpu.max', `${c.quota === undefined || c.quota < 0 ? 'max' : c.quota} ${c.period ?? DEFAULT_PERIOD}`);
    add('cpu', 'cpu.idle', c.idle);
    add('cpuset', 'cpuset.cpus', c.cpus);
    add('cpuset', 'cpuset.mems', c.mems);
    if (c.realtimeRuntime !== undefined || c.realtimePeriod !== undefined) throw new TsrunError('invalid config: linux.resources.cpu realtime settings are not available on cgroup v2');
  }
  if (r.pids?.limit !== undefined) add('pids', 'pids.max', r.pids.limit > 0 ? r.pids.limit : 'max');
  const b = r.blockIO;
  if (b) {
    if (b.weight !== undefined) add('io', 'io.weight', `default ${blkioToIoWeight(b.weight)}`);
    for (const d of b.weightDevice ?? []) if (d.weight !== undefined) add('io', 'io.weight', `${d.major}:${d.minor} ${blkioToIoWeight(d.weight)}`);
    for (const [list, key] of [
      [b.throttleReadBpsDevice, 'rbps'],
      [b.throttleWriteBpsDevice, 'wbps'],
      [b.throttleReadIOPSDevice, 'riops'],
      [b.throttleWriteIOPSDevice, 'wiops'],
    ] as const)
      for (const d of list ?? []) add('io', 'io.max', `${d.major}:${d.minor} ${key}=${d.rate}`);
  }
  for (const h of r.hugepageLimits ?? []) add('hugetlb', `hugetlb.${hugepageName(h.pageSize)}.max`, h.limit);
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (file.includes('/') || file.startsWith('.') || !file.includes('.')) throw new TsrunError(`invalid config: linux.resources.unified: "${file}" is not a cgroup file name`);
    add(file.slice(0, file.indexOf('.')), file, value);
  }
  return w;
}

/** Docker's units: 512m, 1g, 100k, plain bytes; b k m g t, either case. */
export function parseBytes(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(text.trim());
  if (!m) throw new TsrunError(`${flag} "${text}": expected a size such as 512m or 1g`);
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

export interface ResourceFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  blkioWeight?: string;
}

/** Docker's resource flags into linux.resources (merged over base). */
export function resourcesFromFlags(f: ResourceFlags, base: Resources = {}): Resources {
  const r: Resources = structuredClone(base);
  const int = (v: string, flag: string, min: number, max: number) => {
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new TsrunError(`${flag} "${v}": expected an integer from ${min} to ${max}`);
    return Number(v);
  };
  if (f.memory !== undefined) (r.memory ??= {}).limit = parseBytes(f.memory, '--memory');
  if (f.memorySwap !== undefined) (r.memory ??= {}).swap = f.memorySwap === '-1' ? -1 : parseBytes(f.memorySwap, '--memory-swap');
  if (f.memoryReservation !== undefined) (r.memory ??= {}).reservation = parseBytes(f.memoryReservation, '--memory-reservation');
  if (r.memory?.swap !== undefined && r.memory.swap !== -1 && r.memory.limit !== undefined && r.memory.swap < r.memory.limit) throw new TsrunError('--memory-swap must be at least --memory (it is memory plus swap)');
  if (f.cpus !== undefined) {
    const n = Number(f.cpus);
    if (!/^\d+(\.\d+)?$/.test(f.cpus) || n <= 0) throw new TsrunError(`--cpus "${f.cpus}": expected a positive number such as 0.5 or 2`);
    r.cpu = { ...r.cpu, period: DEFAULT_PERIOD, quota: Math.round(n * DEFAULT_PERIOD) };
  }
  if (f.cpuShares !== undefined) r.cpu = { ...r.cpu, shares: int(f.cpuShares, '--cpu-shares', 2, 262144) };
  if (f.cpusetCpus !== undefined) r.cpu = { ...r.cpu, cpus: f.cpusetCpus };
  if (f.cpusetMems !== undefined) r.cpu = { ...r.cpu, mems: f.cpusetMems };
  if (f.pidsLimit !== undefined) r.pids = { limit: int(f.pidsLimit, '--pids-limit', -1, 2 ** 31) };
  if (f.blkioWeight !== undefined) r.blockIO = { ...r.blockIO, weight: int(f.blkioWeight, '--blkio-weight', 10, 1000) };
  return r;
}
