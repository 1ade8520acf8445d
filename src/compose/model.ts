// A Compose project's model, read as the Compose Specification defines it:
// each file parsed (YAML by the `yaml` package), interpolated, checked key by
// key and normalized (short syntaxes to long ones, lists to maps), then the
// files merged in order. Every error names the file, the line and the key.
// A key the specification has but tsrun cannot honour is refused by name.
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import YAML = require('yaml');
import { TsrunError } from '../errors';
import { interpolate } from './interpolate';
import { checkProjectName, findFiles, normalizeProjectName, readDotEnv } from './files';

export interface PortConfig {
  target: number;
  /** A host port or range ("8080", "8000-8005"); absent: any free one. */
  published?: string;
  host_ip?: string;
  protocol: 'tcp' | 'udp';
  /** Container port ranges keep their end here ("80-81" short syntax). */
  target_end?: number;
}

export interface VolumeConfig {
  type: 'volume' | 'bind' | 'tmpfs';
  /** The volume's key in the top-level volumes, a host path (absolute), or absent (anonymous, tmpfs). */
  source?: string;
  target: string;
  read_only?: boolean;
  bind?: { propagation?: string; create_host_path?: boolean };
  volume?: { nocopy?: boolean };
  tmpfs?: { size?: string; mode?: number };
}

export interface HealthcheckConfig {
  /** ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]. */
  test?: string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  start_interval?: string;
  disable?: boolean;
}

export interface DependsOn {
  condition: 'service_started' | 'service_healthy' | 'service_completed_successfully';
  required: boolean;
  restart: boolean;
}

export interface ServiceConfig {
  name: string;
  image?: string;
  build?: { context: string; dockerfile?: string; dockerfile_inline?: string; args: Record<string, string>; target?: string; labels: Record<string, string>; network?: string; no_cache?: boolean; pull?: boolean };
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment: Record<string, string | null>;
  ports: PortConfig[];
  expose: string[];
  volumes: VolumeConfig[];
  tmpfs: string[];
  networks: Record<string, { aliases: string[]; ipv4_address?: string } | null>;
  network_mode?: string;
  depends_on: Record<string, DependsOn>;
  healthcheck?: HealthcheckConfig;
  restart?: string;
  hostname?: string;
  container_name?: string;
  user?: string;
  working_dir?: string;
  labels: Record<string, string>;
  init?: boolean;
  tty?: boolean;
  stdin_open?: boolean;
  read_only?: boolean;
  privileged?: boolean;
  cap_add: string[];
  cap_drop: string[];
  security_opt: string[];
  devices: string[];
  group_add: string[];
  ulimits: Record<string, { soft: number; hard: number }>;
  sysctls: Record<string, string>;
  extra_hosts: string[];
  dns: string[];
  dns_search: string[];
  dns_opt: string[];
  mac_address?: string;
  mem_limit?: string;
  mem_reservation?: string;
  memswap_limit?: string;
  cpus?: string;
  cpu_shares?: string;
  cpuset?: string;
  pids_limit?: string;
  shm_size?: string;
  stop_signal?: string;
  stop_grace_period?: string;
  userns_mode?: string;
  pull_policy?: 'always' | 'missing' | 'never' | 'build' | 'if_not_present';
  deploy?: {
    replicas?: number;
    resources?: { limits?: { cpus?: string; memory?: string; pids?: number }; reservations?: { memory?: string } };
    restart_policy?: { condition?: 'none' | 'on-failure' | 'any'; max_attempts?: number };
    update_config?: { parallelism?: number; order?: 'stop-first' | 'start-first'; delay?: string };
    labels?: Record<string, string>;
  };
  scale?: number;
  profiles: string[];
  secrets: { source: string; target: string; mode?: number }[];
  configs: { source: string; target: string; mode?: number }[];
}

export interface NetworkConfig {
  /** The network's real name: PROJECT_KEY, its `name:`, or an external one's. */
  name: string;
  external: boolean;
  internal?: boolean;
  driver?: string;
  labels: Record<string, string>;
  ipam?: { subnet?: string; gateway?: string };
}

export interface VolumeDefinition {
  name: string;
  external: boolean;
  driver?: string;
  driver_opts: Record<string, string>;
  labels: Record<string, string>;
}

export interface SecretConfig {
  name: string;
  /** A host file (absolute), or the environment variable whose value it is. */
  file?: string;
  environment?: string;
  content?: string;
}

export interface Project {
  name: string;
  /** The project directory: relative paths in the files are resolved from it. */
  workingDir: string;
  files: string[];
  services: Record<string, ServiceConfig>;
  /** Services whose profiles are not enabled: known (for depends_on and rm), not run. */
  disabled: Record<string, ServiceConfig>;
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeDefinition>;
  secrets: Record<string, SecretConfig>;
  configs: Record<string, SecretConfig>;
}

export interface LoadOptions {
  files?: string[];
  projectName?: string;
  projectDirectory?: string;
  envFiles?: string[];
  profiles?: string[];
  /** Variables for interpolation (default process.env); the .env file fills what they lack. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** The text of -f -. */
  stdin?: () => string;
  warn?: (line: string) => void;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
type Where = (at: string) => string;

/** An error about the value at `at` (a dotted key path), placed by file and line. */
class ModelError extends TsrunError {}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys of the specification that tsrun does not carry out, and why it refuses them. */
const REFUSED_SERVICE_KEYS: Record<string, string> = {
  extends: 'extends is not supported; copy the keys, or use YAML anchors',
  links: 'links are legacy: services on one network reach each other by service name already',
  external_links: 'links are legacy: join the other container\'s network instead',
  logging: 'tsrun keeps each container\'s log itself (json lines); logging drivers are not supported',
  blkio_config: 'block I/O limits other than weight are not supported',
  cgroup_parent: 'tsrun places each container\'s cgroup itself',
  cgroup: 'cgroup namespaces are always private',
  cpu_count: 'not supported (Windows)',
  cpu_percent: 'not supported (Windows)',
  cpu_period: 'use cpus',
  cpu_quota: 'use cpus',
  cpu_rt_period: 'real-time scheduling is not supported',
  cpu_rt_runtime: 'real-time scheduling is not supported',
  credential_spec: 'not supported (Windows)',
  device_cgroup_rules: 'use devices',
  domainname: 'not supported',
  gpus: 'GPUs are not supported',
  isolation: 'not supported (Windows)',
  ipc: 'IPC namespaces are always private',
  pid: 'PID namespaces are always private',
  uts: 'UTS namespaces are always private',
  oom_kill_disable: 'not supported',
  oom_score_adj: 'not supported',
  mem_swappiness: 'not supported',
  platform: 'images are run for this host\'s platform only',
  runtime: 'tsrun is the runtime',
  storage_opt: 'not supported',
  volumes_from: 'not supported in compose files; share a named volume instead',
  annotations: 'not supported',
  attach: 'not supported',
  develop: 'compose watch is not supported',
  post_start: 'lifecycle hooks are not supported',
  pre_stop: 'lifecycle hooks are not supported',
  label_file: 'not supported; use labels',
  models: 'not supported',
  provider: 'not supported',
  use_api_socket: 'there is no daemon socket',
};

const SERVICE_KEYS = new Set([
  'image', 'build', 'command', 'entrypoint', 'environment', 'env_file', 'ports', 'expose', 'volumes', 'tmpfs', 'networks', 'network_mode', 'depends_on',
  'healthcheck', 'restart', 'hostname', 'container_name', 'user', 'working_dir', 'labels', 'init', 'tty', 'stdin_open', 'read_only', 'privileged',
  'cap_add', 'cap_drop', 'security_opt', 'devices', 'group_add', 'ulimits', 'sysctls', 'extra_hosts', 'dns', 'dns_search', 'dns_opt', 'mac_address',
  'mem_limit', 'mem_reservation', 'memswap_limit', 'cpus', 'cpu_shares', 'cpuset', 'pids_limit', 'shm_size', 'stop_signal', 'stop_grace_period',
  'userns_mode', 'pull_policy', 'deploy', 'scale', 'profiles', 'secrets', 'configs',
]);

/** One file's tree of key positions, for errors after interpolation and merging. */
function keyLines(doc: YAML.Document, lc: YAML.LineCounter, file: string): Map<string, string> {
  const lines = new Map<string, string>();
  const walk = (node: unknown, at: string) => {
    if (YAML.isMap(node)) {
      for (const pair of node.items) {
        const key = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const here = at ? `${at}.${key}` : key;
        const range = (pair.key as YAML.Scalar | undefined)?.range;
        if (range) lines.set(here, `${file}:${lc.linePos(range[0]).line}`);
        walk(pair.value, here);
      }
    } else if (YAML.isSeq(node)) {
      node.items.forEach((item, i) => {
        const here = `${at}[${i}]`;
        const range = (item as YAML.Node | undefined)?.range;
        if (range) lines.set(here, `${file}:${lc.linePos(range[0]).line}`);
        walk(item, here);
      });
    }
  };
  walk(doc.contents, '');
  return lines;
}

/** file:line of the key at `at`, or of the nearest enclosing key the file has. */
function placer(lines: Map<string, string>, file: string): Where {
  return (at) => {
    for (let p = at; p; p = p.replace(/(\.[^.[\]]*|\[\d+\])$/, '')) {
      const l = lines.get(p);
      if (l) return l;
      if (!/(\.[^.[\]]*|\[\d+\])$/.test(p)) break;
    }
    return file;
  };
}

function fail(where: Where, at: string, msg: string): never {
  throw new ModelError(`${where(at)}: ${at}: ${msg}`);
}

/** Every string of the tree interpolated; errors carry the key. */
function interpolateTree(v: Json, at: string, lookup: (n: string) => string | undefined, where: Where, unset: (n: string) => void): Json {
  if (typeof v === 'string') {
    try {
      return interpolate(v, lookup, unset);
    } catch (e) {
      fail(where, at, (e as Error).message);
    }
  }
  if (Array.isArray(v)) return v.map((x, i) => interpolateTree(x, `${at}[${i}]`, lookup, where, unset));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateTree(x, at ? `${at}.${k}` : k, lookup, where, unset)]));
  return v;
}

// --- checks of one value -----------------------------------------------------

class Reader {
  constructor(readonly where: Where, readonly dir: string) {}

  fail(at: string, msg: string): never {
    fail(this.where, at, msg);
  }

  str(v: Json | undefined, at: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    this.fail(at, `expected a string, found ${describe(v)}`);
  }

  bool(v: Json | undefined, at: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    this.fail(at, `expected true or false, found ${describe(v)}`);
  }

  int(v: Json | undefined, at: string, min = 0): number | undefined {
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min) this.fail(at, `expected a whole number of at least ${min}, found ${describe(v)}`);
    return n;
  }

  strings(v: Json | undefined, at: string): string[] {
    if (v === undefined || v === null) return [];
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v)) this.fail(at, `expected a list of strings, found ${describe(v)}`);
    return v.map((x, i) => this.str(x, `${at}[${i}]`) ?? this.fail(`${at}[${i}]`, 'expected a string, found null'));
  }

  obj(v: Json | undefined, at: string): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) this.fail(at, `expected a mapping, found ${describe(v)}`);
    return v;
  }

  keys(o: Obj, at: string, allowed: string[], refused: Record<string, string> = {}) {
    for (const k of Object.keys(o)) {
      if (k.startsWith('x-')) continue;
      const here = at ? `${at}.${k}` : k;
      if (refused[k]) this.fail(here, `not supported by tsrun: ${refused[k]}`);
      if (!allowed.includes(k)) this.fail(here, allowed.length > 12 ? 'unknown key' : `unknown key (expected one of ${allowed.join(', ')})`);
    }
  }

  /** A list of NAME=VALUE (or NAME) or a mapping, as a mapping; null keeps "take it from the environment". */
  map(v: Json | undefined, at: string, sep = '='): Record<string, string | null> {
    if (v === undefined || v === null) return {};
    const out: Record<string, string | null> = {};
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        const s = this.str(x, `${at}[${i}]`) ?? '';
        const eq = s.indexOf(sep);
        if (eq === 0 || s === '') this.fail(`${at}[${i}]`, `expected NAME${sep}VALUE, found ${JSON.stringify(s)}`);
        if (eq < 0) out[s] = null;
        else out[s.slice(0, eq)] = s.slice(eq + 1);
      });
      return out;
    }
    if (!isObj(v)) this.fail(at, `expected a mapping or a list of NAME${sep}VALUE, found ${describe(v)}`);
    for (const [k, x] of Object.entries(v)) out[k] = x === null ? null : (this.str(x, `${at}.${k}`) as string);
    return out;
  }

  labels(v: Json | undefined, at: string): Record<string, string> {
    return Object.fromEntries(Object.entries(this.map(v, at)).map(([k, x]) => [k, x ?? '']));
  }

  /** A command as Compose takes it: a list as it is, a string split as a shell would split words (no expansion). */
  command(v: Json | undefined, at: string): string[] | null | undefined {
    if (v === undefined) return undefined;
    if (v === null) return null;
    if (typeof v === 'string') return splitWords(v, () => this.fail(at, `unbalanced quotes in ${JSON.stringify(v)}`));
    return this.strings(v, at);
  }

  duration(v: Json | undefined, at: string): string | undefined {
    const s = this.str(v, at);
    if (s === undefined) return undefined;
    if (parseDuration(s) === undefined) this.fail(at, `expected a duration such as 10s, 1m30s or 500ms, found ${JSON.stringify(s)}`);
    return s;
  }

  path(p: string): string {
    if (p === '~' || p.startsWith('~/')) return path.join(os.homedir(), p.slice(1));
    return path.resolve(this.dir, p);
  }
}

function describe(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Words of a string as a POSIX shell splits them: quotes and backslashes, nothing expanded. */
export function splitWords(s: string, unbalanced: () => never): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) unbalanced();
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      i++;
      for (; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) i++;
        cur += s[i];
      }
      if (i >= s.length) unbalanced();
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Compose's durations (Go's): 1h2m3s, 1.5s, 500ms, 10us; a bare number is seconds. In milliseconds. */
export function parseDuration(s: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  if (!/^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$/.test(s)) return undefined;
  const unit: Record<string, number> = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) ms += Number(m[1]) * unit[m[2]];
  return ms;
}

// --- one service ---------------------------------------------------------------

function readPorts(r: Reader, v: Json | undefined, at: string): PortConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) r.fail(at, `expected a list, found ${describe(v)}`);
  return v.flatMap((p, i): PortConfig[] => {
    const here = `${at}[${i}]`;
    if (isObj(p)) {
      r.keys(p, here, ['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol']);
      const target = r.int(p.target, `${here}.target`, 1) ?? r.fail(here, 'a port needs its target');
      if (target > 65535) r.fail(`${here}.target`, `port ${target} is above 65535`);
      const protocol = (r.str(p.protocol, `${here}.protocol`) ?? 'tcp') as PortConfig['protocol'];
      if (!['tcp', 'udp'].includes(protocol)) r.fail(`${here}.protocol`, `expected tcp or udp, found ${protocol}`);
      const mode = r.str(p.mode, `${here}.mode`);
      if (mode && mode !== 'ingress' && mode !== 'host') r.fail(`${here}.mode`, `expected ingress or host, found ${mode}`);
      const published = r.str(p.published, `${here}.published`);
      if (published !== undefined && (!/^\d+(-\d+)?$/.test(published) || published.split('-').some((x) => Number(x) < 1 || Number(x) > 65535))) r.fail(`${here}.published`, `expected a port or a range, found ${published}`);
      return [{ target, protocol, ...(published ? { published } : {}), ...(p.host_ip ? { host_ip: r.str(p.host_ip, `${here}.host_ip`) } : {}) }];
    }
    const s = r.str(p, here) ?? '';
    // [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], each port maybe a range.
    const m = /^(?:(?:(\[[0-9a-fA-F:]+\]|[0-9.]+):)?(\d+(?:-\d+)?)?:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/.exec(s);
    if (!m) r.fail(here, `expected [HOST_IP:][HOST_PORT:]PORT[/tcp|udp], found ${JSON.stringify(s)}`);
    if (m[2] && m[2].split('-').some((x) => Number(x) < 1 || Number(x) > 65535)) r.fail(here, `${JSON.stringify(s)}: host ports run from 1 to 65535`);
    const target = Number(m[3]);
    const end = m[4] ? Number(m[4]) : undefined;
    if (target < 1 || target > 65535 || (end !== undefined && (end < target || end > 65535))) r.fail(here, `${JSON.stringify(s)}: ports run from 1 to 65535, a range from low to high`);
    return [{ target, ...(end !== undefined && end !== target ? { target_end: end } : {}), protocol: (m[5] ?? 'tcp') as PortConfig['protocol'], ...(m[2] ? { published: m[2] } : {}), ...(m[1] ? { host_ip: m[1].replace(/^\[|\]$/g, '') } : {}) }];
  });
}

function readVolumes(r: Reader, v: Json | undefined, at: string, declared: (name: string) => boolean): VolumeConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) r.fail(at, `expected a list, found ${describe(v)}`);
  return v.map((item, i): VolumeConfig => {
    const here = `${at}[${i}]`;
    let out: VolumeConfig;
    if (isObj(item)) {
      r.keys(item, here, ['type', 'source', 'target', 'read_only', 'bind', 'volume', 'tmpfs', 'consistency'], { image: 'image mounts are not supported', npipe: 'not supported (Windows)', cluster: 'not supported' });
      const type = r.str(item.type, `${here}.type`) as VolumeConfig['type'] | undefined;
      if (!type || !['volume', 'bind', 'tmpfs'].includes(type)) r.fail(`${here}.type`, `expected volume, bind or tmpfs, found ${type ?? 'nothing'}`);
      const target = r.str(item.target, `${here}.target`) ?? r.fail(here, 'a mount needs its target');
      const source = r.str(item.source, `${here}.source`);
      out = { type, target, ...(source ? { source } : {}), ...(r.bool(item.read_only, `${here}.read_only`) ? { read_only: true } : {}) };
      if (item.bind !== undefined) {
        const b = r.obj(item.bind, `${here}.bind`);
        r.keys(b, `${here}.bind`, ['propagation', 'create_host_path'], { selinux: 'SELinux labels are not supported here' });
        out.bind = { ...(b.propagation ? { propagation: r.str(b.propagation, `${here}.bind.propagation`) } : {}), ...(b.create_host_path !== undefined ? { create_host_path: r.bool(b.create_host_path, `${here}.bind.create_host_path`) } : {}) };
      }
      if (item.volume !== undefined) {
        const b = r.obj(item.volume, `${here}.volume`);
        r.keys(b, `${here}.volume`, ['nocopy'], { subpath: 'volume subpaths are not supported' });
        out.volume = { nocopy: !!r.bool(b.nocopy, `${here}.volume.nocopy`) };
      }
      if (item.tmpfs !== undefined) {
        const b = r.obj(item.tmpfs, `${here}.tmpfs`);
        r.keys(b, `${here}.tmpfs`, ['size', 'mode']);
        out.tmpfs = { ...(b.size !== undefined ? { size: r.str(b.size, `${here}.tmpfs.size`) } : {}), ...(b.mode !== undefined ? { mode: typeof b.mode === 'number' ? b.mode : parseInt(r.str(b.mode, `${here}.tmpfs.mode`)!, 8) } : {}) };
      }
    } else {
      // SOURCE:TARGET[:MODE], or TARGET alone (an anonymous volume).
      const s = r.str(item, here) ?? '';
      const parts = s.split(':');
      if (parts.length > 3 || parts.some((p) => p === '')) r.fail(here, `expected [SOURCE:]TARGET[:MODE], found ${JSON.stringify(s)}`);
      if (parts.length === 1) out = { type: 'volume', target: parts[0] };
      else {
        const [source, target, mode = ''] = parts;
        const modes = mode ? mode.split(',') : [];
        for (const m of modes) if (!['ro', 'rw', 'z', 'Z', 'nocopy', 'rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave'].includes(m)) r.fail(here, `unknown volume mode ${m}`);
        const isPath = /^[./~]/.test(source);
        out = { type: isPath ? 'bind' : 'volume', source, target, ...(modes.includes('ro') ? { read_only: true } : {}) };
        if (isPath) out.bind = { create_host_path: true, ...(modes.find((m) => /shared|slave|private/.test(m)) ? { propagation: modes.find((m) => /shared|slave|private/.test(m)) } : {}) };
        if (modes.includes('nocopy')) out.volume = { nocopy: true };
      }
    }
    if (!out.target.startsWith('/')) r.fail(here, `the target ${out.target} must be an absolute path`);
    if (out.type === 'bind') {
      if (!out.source) r.fail(here, 'a bind mount needs its source');
      out.source = r.path(out.source);
    }
    if (out.type === 'volume' && out.source && !declared(out.source)) r.fail(here, `volume ${out.source} is not declared in the top-level volumes`);
    if (out.type === 'tmpfs' && out.source) r.fail(here, 'a tmpfs has no source');
    return out;
  });
}

function readHealthcheck(r: Reader, v: Json | undefined, at: string): HealthcheckConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const h = r.obj(v, at);
  r.keys(h, at, ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable']);
  const out: HealthcheckConfig = {};
  if (h.test !== undefined) {
    const test = typeof h.test === 'string' ? ['CMD-SHELL', h.test] : r.strings(h.test, `${at}.test`);
    if (!['CMD', 'CMD-SHELL', 'NONE'].includes(test[0]) || (test[0] !== 'NONE' && test.length < 2)) r.fail(`${at}.test`, 'expected a string, or a list beginning with CMD, CMD-SHELL or NONE');
    out.test = test;
  }
  for (const k of ['interval', 'timeout', 'start_period', 'start_interval'] as const) if (h[k] !== undefined) out[k] = r.duration(h[k], `${at}.${k}`);
  if (h.retries !== undefined) out.retries = r.int(h.retries, `${at}.retries`, 0);
  if (h.disable !== undefined) out.disable = r.bool(h.disable, `${at}.disable`);
  return out;
}

function readBuild(r: Reader, v: Json, at: string): ServiceConfig['build'] {
  if (typeof v === 'string') return { context: r.path(v), args: {}, labels: {} };
  const b = r.obj(v, at);
  r.keys(b, at, ['context', 'dockerfile', 'dockerfile_inline', 'args', 'target', 'labels', 'network', 'no_cache', 'pull'], {
    cache_from: 'build caches from elsewhere are not supported',
    cache_to: 'build caches to elsewhere are not supported',
    secrets: 'build secrets are not supported',
    ssh: 'build SSH agents are not supported',
    platforms: 'images are built for this host only',
    additional_contexts: 'not supported',
    extra_hosts: 'not supported for builds',
    isolation: 'not supported',
    privileged: 'privileged builds are not supported',
    shm_size: 'not supported for builds',
    ulimits: 'not supported for builds',
    tags: 'not supported; name the image with image:',
    entitlements: 'not supported',
    provenance: 'not supported',
    sbom: 'not supported',
  });
  const context = r.str(b.context, `${at}.context`) ?? '.';
  if (/^[a-z]+:\/\//.test(context) || context.startsWith('git@')) r.fail(`${at}.context`, `a remote build context (${context}) is not supported`);
  const args = r.map(b.args, `${at}.args`);
  return {
    context: r.path(context),
    ...(b.dockerfile !== undefined ? { dockerfile: r.str(b.dockerfile, `${at}.dockerfile`) } : {}),
    ...(b.dockerfile_inline !== undefined ? { dockerfile_inline: r.str(b.dockerfile_inline, `${at}.dockerfile_inline`) } : {}),
    args: Object.fromEntries(Object.entries(args).flatMap(([k, x]) => (x === null ? (process.env[k] !== undefined ? [[k, process.env[k]!]] : []) : [[k, x]]))),
    ...(b.target !== undefined ? { target: r.str(b.target, `${at}.target`) } : {}),
    labels: r.labels(b.labels, `${at}.labels`),
    ...(b.network !== undefined ? { network: r.str(b.network, `${at}.network`) } : {}),
    ...(b.no_cache !== undefined ? { no_cache: r.bool(b.no_cache, `${at}.no_cache`) } : {}),
    ...(b.pull !== undefined ? { pull: r.bool(b.pull, `${at}.pull`) } : {}),
  };
}

function readDeploy(r: Reader, v: Json | undefined, at: string): ServiceConfig['deploy'] {
  if (v === undefined || v === null) return undefined;
  const d = r.obj(v, at);
  r.keys(d, at, ['replicas', 'resources', 'restart_policy', 'update_config', 'labels', 'mode'], { placement: 'placement needs a cluster', endpoint_mode: 'not supported', rollback_config: 'not supported' });
  const mode = r.str(d.mode, `${at}.mode`);
  if (mode && mode !== 'replicated') r.fail(`${at}.mode`, `only replicated services are supported, not ${mode}`);
  const out: NonNullable<ServiceConfig['deploy']> = {};
  if (d.replicas !== undefined) out.replicas = r.int(d.replicas, `${at}.replicas`, 0);
  if (d.resources !== undefined) {
    const res = r.obj(d.resources, `${at}.resources`);
    r.keys(res, `${at}.resources`, ['limits', 'reservations']);
    out.resources = {};
    if (res.limits !== undefined) {
      const l = r.obj(res.limits, `${at}.resources.limits`);
      r.keys(l, `${at}.resources.limits`, ['cpus', 'memory', 'pids']);
      out.resources.limits = { ...(l.cpus !== undefined ? { cpus: r.str(l.cpus, `${at}.resources.limits.cpus`) } : {}), ...(l.memory !== undefined ? { memory: r.str(l.memory, `${at}.resources.limits.memory`) } : {}), ...(l.pids !== undefined ? { pids: r.int(l.pids, `${at}.resources.limits.pids`, 1) } : {}) };
    }
    if (res.reservations !== undefined) {
      const l = r.obj(res.reservations, `${at}.resources.reservations`);
      r.keys(l, `${at}.resources.reservations`, ['memory'], { cpus: 'CPU reservations are not supported (use cpu_shares)', devices: 'device reservations are not supported', generic_resources: 'not supported' });
      out.resources.reservations = { ...(l.memory !== undefined ? { memory: r.str(l.memory, `${at}.resources.reservations.memory`) } : {}) };
    }
  }
  if (d.restart_policy !== undefined) {
    const p = r.obj(d.restart_policy, `${at}.restart_policy`);
    r.keys(p, `${at}.restart_policy`, ['condition', 'max_attempts'], { delay: 'restart delays are tsrun\'s own back-off', window: 'not supported' });
    const condition = r.str(p.condition, `${at}.restart_policy.condition`) as 'none' | 'on-failure' | 'any' | undefined;
    if (condition && !['none', 'on-failure', 'any'].includes(condition)) r.fail(`${at}.restart_policy.condition`, `expected none, on-failure or any, found ${condition}`);
    out.restart_policy = { ...(condition ? { condition } : {}), ...(p.max_attempts !== undefined ? { max_attempts: r.int(p.max_attempts, `${at}.restart_policy.max_attempts`) } : {}) };
  }
  if (d.update_config !== undefined) {
    const u = r.obj(d.update_config, `${at}.update_config`);
    r.keys(u, `${at}.update_config`, ['parallelism', 'order', 'delay'], { failure_action: 'not supported', monitor: 'not supported', max_failure_ratio: 'not supported' });
    const order = r.str(u.order, `${at}.update_config.order`) as 'stop-first' | 'start-first' | undefined;
    if (order && !['stop-first', 'start-first'].includes(order)) r.fail(`${at}.update_config.order`, `expected stop-first or start-first, found ${order}`);
    out.update_config = { ...(u.parallelism !== undefined ? { parallelism: r.int(u.parallelism, `${at}.update_config.parallelism`, 1) } : {}), ...(order ? { order } : {}), ...(u.delay !== undefined ? { delay: r.duration(u.delay, `${at}.update_config.delay`) } : {}) };
  }
  if (d.labels !== undefined) out.labels = r.labels(d.labels, `${at}.labels`);
  return out;
}

function readRefs(r: Reader, v: Json | undefined, at: string, kind: 'secrets' | 'configs'): ServiceConfig['secrets'] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) r.fail(at, `expected a list, found ${describe(v)}`);
  return v.map((s, i) => {
    const here = `${at}[${i}]`;
    if (typeof s === 'string') return { source: s, target: kind === 'secrets' ? `/run/secrets/${s}` : `/${s}` };
    const o = r.obj(s, here);
    r.keys(o, here, ['source', 'target', 'mode', 'uid', 'gid']);
    if (o.uid !== undefined || o.gid !== undefined) r.fail(here, `${kind}' uid and gid are not supported (the file is owned by root, mode 0444)`);
    const source = r.str(o.source, `${here}.source`) ?? r.fail(here, 'needs its source');
    let target = r.str(o.target, `${here}.target`) ?? source;
    if (!target.startsWith('/')) target = kind === 'secrets' ? `/run/secrets/${target}` : `/${target}`;
    return { source, target, ...(o.mode !== undefined ? { mode: typeof o.mode === 'number' ? o.mode : parseInt(r.str(o.mode, `${here}.mode`)!, 8) } : {}) };
  });
}

function readService(r: Reader, name: string, v: Json, declaredVolume: (n: string) => boolean, env: (n: string) => string | undefined): ServiceConfig {
  const at = `services.${name}`;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) r.fail(at, `invalid service name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-", beginning with a letter or digit`);
  const s = r.obj(v, at);
  r.keys(s, at, [...SERVICE_KEYS], REFUSED_SERVICE_KEYS);
  const str = (k: string) => r.str(s[k], `${at}.${k}`);
  const out: ServiceConfig = {
    name,
    environment: {},
    ports: readPorts(r, s.ports, `${at}.ports`),
    expose: r.strings(s.expose, `${at}.expose`),
    volumes: readVolumes(r, s.volumes, `${at}.volumes`, declaredVolume),
    tmpfs: r.strings(s.tmpfs, `${at}.tmpfs`),
    networks: {},
    depends_on: {},
    labels: r.labels(s.labels, `${at}.labels`),
    cap_add: r.strings(s.cap_add, `${at}.cap_add`),
    cap_drop: r.strings(s.cap_drop, `${at}.cap_drop`),
    security_opt: r.strings(s.security_opt, `${at}.security_opt`),
    devices: r.strings(s.devices, `${at}.devices`),
    group_add: r.strings(s.group_add, `${at}.group_add`),
    ulimits: {},
    sysctls: r.labels(s.sysctls, `${at}.sysctls`),
    extra_hosts: [],
    dns: r.strings(s.dns, `${at}.dns`),
    dns_search: r.strings(s.dns_search, `${at}.dns_search`),
    dns_opt: r.strings(s.dns_opt, `${at}.dns_opt`),
    profiles: r.strings(s.profiles, `${at}.profiles`),
    secrets: readRefs(r, s.secrets, `${at}.secrets`, 'secrets'),
    configs: readRefs(r, s.configs, `${at}.configs`, 'configs'),
  };
  for (const k of ['image', 'restart', 'hostname', 'container_name', 'user', 'working_dir', 'mac_address', 'mem_limit', 'mem_reservation', 'memswap_limit', 'cpus', 'cpu_shares', 'cpuset', 'pids_limit', 'shm_size', 'stop_signal', 'userns_mode', 'network_mode'] as const) {
    const x = str(k);
    if (x !== undefined) out[k] = x;
  }
  for (const k of ['init', 'tty', 'stdin_open', 'read_only', 'privileged'] as const) {
    const x = r.bool(s[k], `${at}.${k}`);
    if (x !== undefined) out[k] = x;
  }
  if (s.build !== undefined && s.build !== null) out.build = readBuild(r, s.build, `${at}.build`);
  if (s.command !== undefined) out.command = r.command(s.command, `${at}.command`);
  if (s.entrypoint !== undefined) out.entrypoint = r.command(s.entrypoint, `${at}.entrypoint`);
  if (s.stop_grace_period !== undefined) out.stop_grace_period = r.duration(s.stop_grace_period, `${at}.stop_grace_period`);
  if (out.restart && !/^(no|always|unless-stopped|on-failure(:\d+)?)$/.test(out.restart)) r.fail(`${at}.restart`, `expected no, always, on-failure[:N] or unless-stopped, found ${out.restart}`);
  if (s.scale !== undefined) out.scale = r.int(s.scale, `${at}.scale`);
  if (s.pull_policy !== undefined) {
    const p = str('pull_policy') as ServiceConfig['pull_policy'];
    if (!['always', 'missing', 'never', 'build', 'if_not_present'].includes(p!)) r.fail(`${at}.pull_policy`, `expected always, missing, never or build, found ${p}`);
    out.pull_policy = p;
  }
  out.healthcheck = readHealthcheck(r, s.healthcheck, `${at}.healthcheck`);
  if (!out.healthcheck) delete out.healthcheck;
  out.deploy = readDeploy(r, s.deploy, `${at}.deploy`);
  if (!out.deploy) delete out.deploy;

  // env_file first, environment over it, as Compose merges them.
  const envFiles: { path: string; required: boolean }[] = [];
  if (s.env_file !== undefined && s.env_file !== null) {
    const list = Array.isArray(s.env_file) ? s.env_file : [s.env_file];
    list.forEach((f, i) => {
      const here = `${at}.env_file[${i}]`;
      if (isObj(f)) {
        r.keys(f, here, ['path', 'required', 'format']);
        if (f.format !== undefined && f.format !== 'raw') r.fail(`${here}.format`, `only the default format (or raw) is supported`);
        envFiles.push({ path: r.path(r.str(f.path, `${here}.path`) ?? r.fail(here, 'needs its path')), required: r.bool(f.required, `${here}.required`) ?? true });
      } else envFiles.push({ path: r.path(r.str(f, here) ?? ''), required: true });
    });
  }
  for (const f of envFiles) {
    try {
      for (const [k, x] of readDotEnv(f.path, f.required)) out.environment[k] = x;
    } catch (e) {
      r.fail(`${at}.env_file`, (e as Error).message);
    }
  }
  for (const [k, x] of Object.entries(r.map(s.environment, `${at}.environment`))) {
    // NAME alone takes the value from the environment tsrun runs in, or is left out.
    if (x === null) {
      const e = env(k);
      if (e !== undefined) out.environment[k] = e;
      else delete out.environment[k];
    } else out.environment[k] = x;
  }

  if (Array.isArray(s.networks)) {
    for (const [i, n] of s.networks.entries()) out.networks[r.str(n, `${at}.networks[${i}]`)!] = null;
  } else if (s.networks !== undefined && s.networks !== null) {
    for (const [n, x] of Object.entries(r.obj(s.networks, `${at}.networks`))) {
      const here = `${at}.networks.${n}`;
      if (x === null) {
        out.networks[n] = null;
        continue;
      }
      const o = r.obj(x, here);
      r.keys(o, here, ['aliases', 'ipv4_address'], { ipv6_address: 'IPv6 is not supported', link_local_ips: 'not supported', priority: 'not supported', mac_address: 'use the service\'s mac_address', driver_opts: 'not supported', gw_priority: 'not supported', interface_name: 'not supported' });
      out.networks[n] = { aliases: r.strings(o.aliases, `${here}.aliases`), ...(o.ipv4_address !== undefined ? { ipv4_address: r.str(o.ipv4_address, `${here}.ipv4_address`) } : {}) };
    }
  }

  if (Array.isArray(s.depends_on)) {
    for (const [i, d] of s.depends_on.entries()) out.depends_on[r.str(d, `${at}.depends_on[${i}]`)!] = { condition: 'service_started', required: true, restart: false };
  } else if (s.depends_on !== undefined && s.depends_on !== null) {
    for (const [d, x] of Object.entries(r.obj(s.depends_on, `${at}.depends_on`))) {
      const here = `${at}.depends_on.${d}`;
      const o = r.obj(x, here);
      r.keys(o, here, ['condition', 'required', 'restart']);
      const condition = (r.str(o.condition, `${here}.condition`) ?? 'service_started') as DependsOn['condition'];
      if (!['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition)) r.fail(`${here}.condition`, `expected service_started, service_healthy or service_completed_successfully, found ${condition}`);
      out.depends_on[d] = { condition, required: r.bool(o.required, `${here}.required`) ?? true, restart: r.bool(o.restart, `${here}.restart`) ?? false };
    }
  }

  if (s.ulimits !== undefined && s.ulimits !== null) {
    for (const [k, x] of Object.entries(r.obj(s.ulimits, `${at}.ulimits`))) {
      const here = `${at}.ulimits.${k}`;
      if (isObj(x)) {
        r.keys(x, here, ['soft', 'hard']);
        const soft = r.int(x.soft, `${here}.soft`) ?? r.fail(here, 'needs soft and hard');
        const hard = r.int(x.hard, `${here}.hard`) ?? r.fail(here, 'needs soft and hard');
        out.ulimits[k] = { soft, hard };
      } else {
        const n = r.int(x, here) ?? r.fail(here, 'expected a number or soft and hard');
        out.ulimits[k] = { soft: n, hard: n };
      }
    }
  }
  // extra_hosts: "name:ip", "name=ip" or a mapping.
  if (isObj(s.extra_hosts)) out.extra_hosts = Object.entries(s.extra_hosts).map(([h, ip]) => `${h}:${r.str(ip, `${at}.extra_hosts.${h}`)}`);
  else out.extra_hosts = r.strings(s.extra_hosts, `${at}.extra_hosts`).map((h) => (/^[^:=]+=/.test(h) ? h.replace('=', ':') : h));

  if (out.network_mode && !/^(none|host|bridge|service:.+|container:.+)$/.test(out.network_mode)) r.fail(`${at}.network_mode`, `expected none, host, bridge, service:NAME or container:NAME, found ${out.network_mode}`);
  if (out.network_mode && Object.keys(out.networks).length) r.fail(`${at}.network_mode`, 'network_mode and networks cannot be used together');
  return out;
}

// --- merging ---------------------------------------------------------------------

const REPLACED = new Set(['command', 'entrypoint', 'test', 'profiles']);

/** The Compose merge rules: mappings merged, a few lists replaced, ports and mounts merged by what they bind, other lists appended without repeats. */
function merge(base: unknown, over: unknown, key = ''): unknown {
  if (over === undefined) return base;
  if (isObj(base as Json) && isObj(over as Json)) {
    const out: Record<string, unknown> = { ...(base as object) };
    for (const [k, v] of Object.entries(over as object)) out[k] = k in out ? merge(out[k], v, k) : v;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over) && !REPLACED.has(key)) {
    if (key === 'volumes') {
      const byTarget = new Map((base as VolumeConfig[]).map((v) => [v.target, v]));
      for (const v of over as VolumeConfig[]) byTarget.set(v.target, v);
      return [...byTarget.values()];
    }
    const seen = new Set(base.map((v) => JSON.stringify(v)));
    return [...base, ...over.filter((v) => !seen.has(JSON.stringify(v)))];
  }
  return over;
}

// --- the whole project -------------------------------------------------------------

interface FileModel {
  name?: string;
  services: Record<string, ServiceConfig>;
  networks: Record<string, Omit<NetworkConfig, 'name'> & { name?: string }>;
  volumes: Record<string, Omit<VolumeDefinition, 'name'> & { name?: string }>;
  secrets: Record<string, SecretConfig>;
  configs: Record<string, SecretConfig>;
}

function readTop(r: Reader, doc: Obj, dir: string, env: (n: string) => string | undefined, warn: (l: string) => void, file: string): FileModel {
  r.keys(doc, '', ['version', 'name', 'services', 'networks', 'volumes', 'secrets', 'configs'], { include: 'include is not supported; pass each file with -f', models: 'not supported' });
  if (doc.version !== undefined) warn(`${file}: the top-level version is obsolete and ignored`);
  const out: FileModel = { services: {}, networks: {}, volumes: {}, secrets: {}, configs: {} };
  if (doc.name !== undefined) out.name = r.str(doc.name, 'name');
  for (const [n, v] of Object.entries(r.obj(doc.volumes, 'volumes'))) {
    const at = `volumes.${n}`;
    const o = r.obj(v, at);
    r.keys(o, at, ['name', 'external', 'driver', 'driver_opts', 'labels']);
    const driver = r.str(o.driver, `${at}.driver`);
    if (driver && driver !== 'local') r.fail(`${at}.driver`, `only the local driver is supported, not ${driver}`);
    out.volumes[n] = { ...(o.name !== undefined ? { name: r.str(o.name, `${at}.name`) } : {}), external: externalOf(r, o.external, `${at}.external`), driver_opts: r.labels(o.driver_opts, `${at}.driver_opts`), labels: r.labels(o.labels, `${at}.labels`) };
  }
  for (const [n, v] of Object.entries(r.obj(doc.networks, 'networks'))) {
    const at = `networks.${n}`;
    const o = r.obj(v, at);
    r.keys(o, at, ['name', 'external', 'driver', 'internal', 'labels', 'ipam', 'attachable'], { enable_ipv6: 'IPv6 is not supported', driver_opts: 'network driver options are not supported' });
    const driver = r.str(o.driver, `${at}.driver`);
    if (driver && driver !== 'bridge') r.fail(`${at}.driver`, `only the bridge driver is supported, not ${driver}`);
    let ipam: NetworkConfig['ipam'];
    if (o.ipam !== undefined) {
      const i = r.obj(o.ipam, `${at}.ipam`);
      r.keys(i, `${at}.ipam`, ['driver', 'config'], { options: 'IPAM options are not supported' });
      if (i.driver !== undefined && i.driver !== 'default') r.fail(`${at}.ipam.driver`, 'only the default IPAM driver is supported');
      const configs = Array.isArray(i.config) ? i.config : i.config === undefined ? [] : r.fail(`${at}.ipam.config`, 'expected a list');
      if (configs.length > 1) r.fail(`${at}.ipam.config`, 'a network has one IPv4 subnet in tsrun');
      if (configs.length) {
        const c = r.obj(configs[0], `${at}.ipam.config[0]`);
        r.keys(c, `${at}.ipam.config[0]`, ['subnet', 'gateway'], { ip_range: 'not supported', aux_addresses: 'not supported' });
        ipam = { ...(c.subnet !== undefined ? { subnet: r.str(c.subnet, `${at}.ipam.config[0].subnet`) } : {}), ...(c.gateway !== undefined ? { gateway: r.str(c.gateway, `${at}.ipam.config[0].gateway`) } : {}) };
      }
    }
    out.networks[n] = { ...(o.name !== undefined ? { name: r.str(o.name, `${at}.name`) } : {}), external: externalOf(r, o.external, `${at}.external`), ...(r.bool(o.internal, `${at}.internal`) ? { internal: true } : {}), labels: r.labels(o.labels, `${at}.labels`), ...(ipam ? { ipam } : {}) };
  }
  for (const kind of ['secrets', 'configs'] as const) {
    for (const [n, v] of Object.entries(r.obj(doc[kind], kind))) {
      const at = `${kind}.${n}`;
      const o = r.obj(v, at);
      r.keys(o, at, ['file', 'environment', ...(kind === 'configs' ? ['content'] : []), 'name'], { external: `external ${kind} need a cluster`, driver: 'not supported', template_driver: 'not supported' });
      const sources = ['file', 'environment', 'content'].filter((k) => o[k] !== undefined);
      if (sources.length !== 1) r.fail(at, `expected exactly one of file, environment${kind === 'configs' ? ' or content' : ''}`);
      const file = r.str(o.file, `${at}.file`);
      const environment = r.str(o.environment, `${at}.environment`);
      if (environment !== undefined && env(environment) === undefined) r.fail(`${at}.environment`, `variable ${environment} is not set`);
      out[kind][n] = { name: r.str(o.name, `${at}.name`) ?? n, ...(file !== undefined ? { file: r.path(file) } : {}), ...(environment !== undefined ? { environment } : {}), ...(o.content !== undefined ? { content: r.str(o.content, `${at}.content`) } : {}) };
    }
  }
  const services = doc.services === undefined ? {} : r.obj(doc.services, 'services');
  for (const [n, v] of Object.entries(services)) out.services[n] = readService(r, n, v, (vol) => vol in out.volumes, env);
  return out;
}

function externalOf(r: Reader, v: Json | undefined, at: string): boolean {
  if (isObj(v)) r.fail(at, 'external: {name: ...} is obsolete; use external: true with name:');
  return !!r.bool(v, at);
}

/** Reads, checks and merges a project's files. */
export function loadProject(opts: LoadOptions = {}): Project {
  const cwd = opts.cwd ?? process.cwd();
  const warn = opts.warn ?? ((l: string) => process.stderr.write(`WARN: ${l}\n`));
  const sources = findFiles(opts.files ?? [], cwd, opts.stdin ?? (() => fs.readFileSync(0, 'utf8')));
  const first = sources[0].file === '-' ? path.join(cwd, '-') : sources[0].file;
  const workingDir = path.resolve(cwd, opts.projectDirectory ?? path.dirname(first));
  const shell = opts.env ?? process.env;
  // The shell's variables win over the .env file's, as in Docker Compose.
  const dotEnv = new Map<string, string>();
  const envFiles = opts.envFiles?.length ? opts.envFiles.map((f) => ({ f: path.resolve(cwd, f), required: true })) : [{ f: path.join(workingDir, '.env'), required: false }];
  for (const { f, required } of envFiles) for (const [k, v] of readDotEnv(f, required)) dotEnv.set(k, v);
  const lookup = (n: string) => shell[n] ?? dotEnv.get(n);

  const unset = new Set<string>();
  let merged: FileModel | undefined;
  const origin = new Map<string, Where>();
  for (const src of sources) {
    const lc = new YAML.LineCounter();
    const doc = YAML.parseDocument(src.text, { lineCounter: lc, merge: true, uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length) {
      const e = doc.errors[0];
      throw new ModelError(`${src.file}:${e.linePos?.[0].line ?? '?'}: invalid YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
    }
    const where = placer(keyLines(doc, lc, src.file), src.file);
    let js: Json;
    try {
      js = doc.toJS({ maxAliasCount: 1000 }) as Json;
    } catch (e) {
      throw new ModelError(`${src.file}: ${(e as Error).message}`);
    }
    if (js === null || js === undefined) js = {};
    if (!isObj(js)) throw new ModelError(`${src.file}:1: expected a mapping at the top (services:, networks:, ...), found ${describe(js)}`);
    js = interpolateTree(js, '', lookup, where, (n) => unset.add(n));
    const r = new Reader(where, workingDir);
    const model = readTop(r, js as Obj, workingDir, lookup, warn, src.file);
    for (const n of Object.keys(model.services)) origin.set(n, where);
    merged = merged ? (merge(merged, model) as FileModel) : model;
  }
  for (const n of unset) warn(`the "${n}" variable is not set; defaulting to a blank string`);
  const model = merged!;
  const whereOf = (service: string): Where => origin.get(service) ?? (() => sources[0].file);

  const fromName = opts.projectName ? 'from -p' : shell.COMPOSE_PROJECT_NAME ? 'from COMPOSE_PROJECT_NAME' : model.name ? 'from the name key' : undefined;
  const name = opts.projectName ?? shell.COMPOSE_PROJECT_NAME ?? model.name ?? normalizeProjectName(path.basename(workingDir));
  checkProjectName(name, fromName ?? `the directory ${workingDir}`);

  const networks: Record<string, NetworkConfig> = {};
  for (const [k, n] of Object.entries(model.networks)) networks[k] = { ...n, name: n.name ?? (n.external ? k : `${name}_${k}`) };
  const volumes: Record<string, VolumeDefinition> = {};
  for (const [k, v] of Object.entries(model.volumes)) volumes[k] = { ...v, name: v.name ?? (v.external ? k : `${name}_${k}`) };

  // Profiles: a service with none always runs; one with profiles only when one is enabled.
  const profiles = new Set(opts.profiles?.length ? opts.profiles : (shell.COMPOSE_PROFILES ?? '').split(',').filter(Boolean));
  const services: Record<string, ServiceConfig> = {};
  const disabled: Record<string, ServiceConfig> = {};
  for (const [k, s] of Object.entries(model.services)) {
    if (!s.profiles.length || s.profiles.some((p) => profiles.has(p) || p === '*') || profiles.has('*')) services[k] = s;
    else disabled[k] = s;
  }

  for (const s of Object.values(services)) {
    const where = whereOf(s.name);
    const at = `services.${s.name}`;
    if (!s.image && !s.build) fail(where, at, 'a service needs an image or a build');
    if (!Object.keys(s.networks).length && !s.network_mode) s.networks = { default: null };
    for (const n of Object.keys(s.networks)) {
      if (n === 'default' && !networks.default) networks.default = { name: `${name}_default`, external: false, labels: {} };
      if (!networks[n]) fail(where, `${at}.networks.${n}`, `network ${n} is not declared in the top-level networks`);
    }
    for (const [d, dep] of Object.entries(s.depends_on)) {
      if (d === s.name) fail(where, `${at}.depends_on.${d}`, 'a service cannot depend on itself');
      if (!services[d] && dep.required) fail(where, `${at}.depends_on.${d}`, disabled[d] ? `service ${d} is in profiles that are not enabled (${disabled[d].profiles.join(', ')})` : `depends on undefined service ${d}`);
    }
    const shared = /^service:(.+)$/.exec(s.network_mode ?? '')?.[1];
    if (shared && !services[shared]) fail(where, `${at}.network_mode`, `undefined service ${shared}`);
    for (const kind of ['secrets', 'configs'] as const) for (const ref of s[kind]) if (!model[kind][ref.source]) fail(where, `${at}.${kind}`, `${kind.slice(0, -1)} ${ref.source} is not declared in the top-level ${kind}`);
    const replicas = replicasOf(s);
    if (s.container_name && replicas > 1) fail(where, `${at}.container_name`, `a service with container_name cannot have ${replicas} replicas: container names are unique`);
  }
  // A cycle is named as a path through it.
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, trail: string[]) => {
    if (state.get(n) === 'done' || !services[n]) return;
    if (state.get(n) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(n)), n];
      fail(whereOf(n), `services.${n}.depends_on`, `dependency cycle: ${cycle.join(' -> ')}`);
    }
    state.set(n, 'visiting');
    for (const d of dependencies(services[n])) visit(d, [...trail, n]);
    state.set(n, 'done');
  };
  for (const n of Object.keys(services)) visit(n, []);

  return { name, workingDir, files: sources.map((s) => s.file), services, disabled, networks, volumes, secrets: model.secrets, configs: model.configs };
}

/** What a service must wait for: depends_on, and a service whose network it joins. */
export function dependencies(s: ServiceConfig): string[] {
  const shared = /^service:(.+)$/.exec(s.network_mode ?? '')?.[1];
  return [...Object.keys(s.depends_on), ...(shared && !(shared in s.depends_on) ? [shared] : [])];
}

export function replicasOf(s: ServiceConfig): number {
  return s.deploy?.replicas ?? s.scale ?? 1;
}

/** Services in an order that starts each after what it depends on. */
export function startOrder(project: Project, names: string[] = Object.keys(project.services)): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n) || !project.services[n]) return;
    seen.add(n);
    for (const d of dependencies(project.services[n])) visit(d);
    out.push(n);
  };
  for (const n of names) visit(n);
  return out;
}
