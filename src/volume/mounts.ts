// A container's mounts from Docker's flags: -v, --mount, --tmpfs,
// --volumes-from and the image's VOLUME paths, into records kept with the
// container (inspect's Mounts, rm -v, `volume rm`'s in-use check) and, once
// the volumes exist, into the bind and tmpfs mounts of its config.json.
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { ContainerInfo, Registry } from '../container/registry';
import type { Mount } from '../spec/types';
import { parseBytes } from '../cgroup/resources';
import { copyUp } from './copy-up';
import { toHostId, type IdMap } from '../spec/id-map';
import { ANONYMOUS_LABEL, checkVolumeName, Volumes } from './volumes';

export interface MountRecord {
  type: 'bind' | 'volume' | 'tmpfs';
  /** bind: the host path; volume: the volume's name; tmpfs: empty. */
  source: string;
  target: string;
  readonly: boolean;
  /** Docker's Mode in inspect: -v's options as given ("z" for a volume without any), else "". */
  mode: string;
  /** bind: rprivate unless asked. */
  propagation?: string;
  /** bind-nonrecursive: mounts under the source are not carried along. */
  nonRecursive?: boolean;
  /** -v of a missing host path makes it a directory (Docker's -v; --mount refuses). */
  createSource?: boolean;
  /** volume: no copy-up of the image's content. */
  nocopy?: boolean;
  /** volume: made for this container alone (VOLUME, -v /path); rm -v and --rm remove it. */
  anonymous?: boolean;
  /** volume: labels and driver options if it is made on first use (--mount volume-label, volume-opt). */
  volumeLabels?: Record<string, string>;
  volumeOptions?: Record<string, string>;
  /** tmpfs: mount options (size=, mode=, and --tmpfs's own). */
  tmpfsOptions?: string[];
}

/** A user namespace's maps (config.json's linux.uidMappings and gidMappings). */
export interface IdMaps {
  uidMappings?: IdMap;
  gidMappings?: IdMap;
}

export interface MountFlags {
  /** -v HOST:CTR[:opts], -v NAME:CTR[:opts], -v CTR */
  volumes?: string[];
  /** --mount type=bind|volume|tmpfs,... */
  mounts?: string[];
  /** --tmpfs PATH[:opts] */
  tmpfs?: string[];
  /** --volumes-from CONTAINER[:ro|rw] */
  volumesFrom?: string[];
  /** Anonymous volumes of a container this one replaces: each takes the place of a new anonymous volume at its path (Compose's recreate). */
  inherit?: MountRecord[];
}

const PROPAGATIONS = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];
const VOLUME_NAME_START = /^[a-zA-Z0-9]/;

const anonymousName = () => crypto.randomBytes(32).toString('hex');

function target(raw: string, what: string): string {
  if (!raw) throw new TsrunError(`${what}: no container path given`);
  if (!raw.startsWith('/')) throw new TsrunError(`${what}: the container path "${raw}" must be absolute`);
  const t = path.posix.normalize(raw).replace(/(.)\/$/, '$1');
  if (t === '/') throw new TsrunError(`${what}: the container path cannot be "/"`);
  return t;
}

/** Docker's -v: HOST:CTR[:opts] binds a host path, NAME:CTR[:opts] a named volume, CTR alone an anonymous one. */
export function parseVolumeFlag(v: string): MountRecord {
  const what = `-v ${v}`;
  const parts = v.split(':');
  if (parts.length > 3 || parts.some((p, i) => p === '' && i < 2)) throw new TsrunError(`${what}: expected [HOST-PATH|NAME:]CONTAINER-PATH[:OPTIONS]`);
  if (parts.length === 1) return { type: 'volume', source: anonymousName(), target: target(parts[0], what), readonly: false, mode: '', anonymous: true };
  const [src, ctr, optText = ''] = parts;
  const opts = optText.split(',').filter(Boolean);
  const isBind = src.startsWith('/') || src.startsWith('./') || src.startsWith('../') || src === '.' || src === '..';
  if (!isBind) {
    if (!VOLUME_NAME_START.test(src) || src.includes('/')) throw new TsrunError(`${what}: "${src}" is neither an absolute host path nor a volume name (letters, digits and _ . -, starting with a letter or digit)`);
    checkVolumeName(src, `${what}: volume name`);
  }
  let readonly = false;
  let propagation: string | undefined;
  let nocopy = false;
  for (const o of opts) {
    if (o === 'ro' || o === 'rw') readonly = o === 'ro';
    else if (o === 'z' || o === 'Z') continue; // SELinux relabelling: there is no SELinux here
    else if (PROPAGATIONS.includes(o) && isBind) propagation = o;
    else if (o === 'nocopy' && !isBind) nocopy = true;
    else throw new TsrunError(`${what}: unknown option "${o}" (${isBind ? 'ro, rw, z, Z, or a propagation: ' + PROPAGATIONS.join(', ') : 'ro, rw, z, Z, nocopy'})`);
  }
  if (isBind) return { type: 'bind', source: path.resolve(src), target: target(ctr, what), readonly, mode: optText, propagation, createSource: true };
  return { type: 'volume', source: src, target: target(ctr, what), readonly, mode: optText || 'z', nocopy };
}

/** Docker's --mount: comma-separated key=value fields, a field quoted in "" when it holds a comma. */
function csvFields(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new TsrunError(`--mount ${text}: an unclosed quote`);
  out.push(cur);
  return out.filter((f) => f !== '');
}

function bool(value: string | undefined, what: string): boolean {
  if (value === undefined || ['true', '1'].includes(value)) return true;
  if (['false', '0'].includes(value)) return false;
  throw new TsrunError(`${what}: "${value}" is not true or false`);
}

function keyValue(text: string, what: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new TsrunError(`${what}: "${text}" is not KEY=VALUE`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export function parseMountFlag(text: string): MountRecord {
  const what = `--mount ${text}`;
  const f: Record<string, string | undefined> = {};
  const labels: Record<string, string> = {};
  const volumeOptions: Record<string, string> = {};
  for (const field of csvFields(text)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    const canon = ({ src: 'source', destination: 'target', dst: 'target', ro: 'readonly' } as Record<string, string>)[key] ?? key;
    if (canon === 'volume-label' || canon === 'volume-opt') {
      const [k, v] = keyValue(value ?? '', `${what}: ${key}`);
      (canon === 'volume-label' ? labels : volumeOptions)[k] = v;
      continue;
    }
    if (!['type', 'source', 'target', 'readonly', 'bind-propagation', 'bind-nonrecursive', 'volume-nocopy', 'volume-driver', 'tmpfs-size', 'tmpfs-mode', 'consistency'].includes(canon)) throw new TsrunError(`${what}: unknown field "${key}"`);
    if (canon in f) throw new TsrunError(`${what}: "${key}" is given twice`);
    f[canon] = value;
  }
  const type = f.type ?? 'volume';
  const dest = target(f.target ?? '', what);
  // A field given alone (readonly, volume-nocopy) means true.
  const flag = (k: string) => k in f && bool(f[k], `${what}: ${k}`);
  const readonly = flag('readonly');
  const only = (keys: string[], forType: string) => {
    for (const k of keys) if (k in f || (k === 'volume-opt' && Object.keys(volumeOptions).length) || (k === 'volume-label' && Object.keys(labels).length)) throw new TsrunError(`${what}: ${k} is for type=${forType}, not type=${type}`);
  };
  switch (type) {
    case 'bind': {
      only(['volume-nocopy', 'volume-driver', 'volume-opt', 'volume-label'], 'volume');
      only(['tmpfs-size', 'tmpfs-mode'], 'tmpfs');
      const src = f.source;
      if (!src) throw new TsrunError(`${what}: type=bind needs source=HOST-PATH`);
      const abs = path.resolve(src);
      if (!fs.existsSync(abs)) throw new TsrunError(`${what}: bind source path does not exist: ${abs}`);
      const prop = f['bind-propagation'];
      if (prop !== undefined && !PROPAGATIONS.includes(prop)) throw new TsrunError(`${what}: bind-propagation "${prop}": use one of ${PROPAGATIONS.join(', ')}`);
      return { type: 'bind', source: abs, target: dest, readonly, mode: '', propagation: prop, nonRecursive: flag('bind-nonrecursive') };
    }
    case 'volume': {
      only(['bind-propagation', 'bind-nonrecursive'], 'bind');
      only(['tmpfs-size', 'tmpfs-mode'], 'tmpfs');
      if (f['volume-driver'] !== undefined && f['volume-driver'] !== 'local') throw new TsrunError(`${what}: volume driver "${f['volume-driver']}" is not available: tsrun has the local driver only`);
      const nocopy = flag('volume-nocopy');
      if (f.source) checkVolumeName(f.source, `${what}: volume name`);
      const extra = { ...(Object.keys(labels).length ? { volumeLabels: labels } : {}), ...(Object.keys(volumeOptions).length ? { volumeOptions } : {}) };
      if (!f.source) return { type: 'volume', source: anonymousName(), target: dest, readonly, mode: '', nocopy, anonymous: true, ...extra };
      return { type: 'volume', source: f.source, target: dest, readonly, mode: '', nocopy, ...extra };
    }
    case 'tmpfs': {
      only(['bind-propagation', 'bind-nonrecursive'], 'bind');
      only(['volume-nocopy', 'volume-driver', 'volume-opt', 'volume-label'], 'volume');
      if (f.source) throw new TsrunError(`${what}: type=tmpfs takes no source`);
      const opts = ['nosuid', 'nodev', 'noexec'];
      if (f['tmpfs-size'] !== undefined) opts.push(`size=${parseBytes(f['tmpfs-size'], `${what}: tmpfs-size`)}`);
      if (f['tmpfs-mode'] !== undefined) {
        if (!/^0?[0-7]{1,4}$/.test(f['tmpfs-mode'])) throw new TsrunError(`${what}: tmpfs-mode "${f['tmpfs-mode']}" is not an octal mode (1777, 0700)`);
        opts.push(`mode=${Number.parseInt(f['tmpfs-mode'], 8).toString(8).padStart(4, '0')}`);
      }
      return { type: 'tmpfs', source: '', target: dest, readonly, mode: '', tmpfsOptions: opts };
    }
    default:
      throw new TsrunError(`${what}: type "${type}": use bind, volume or tmpfs`);
  }
}

/** --tmpfs PATH[:opts]: Docker's defaults (noexec, nosuid, nodev), which the options given override. */
export function parseTmpfsFlag(t: string): MountRecord {
  const colon = t.indexOf(':');
  const extra = colon < 0 ? [] : t.slice(colon + 1).split(',').filter(Boolean);
  const defaults = ['noexec', 'nosuid', 'nodev'].filter((d) => !extra.includes(d.slice(2)) && !extra.includes(d));
  return { type: 'tmpfs', source: '', target: target(colon < 0 ? t : t.slice(0, colon), `--tmpfs ${t}`), readonly: extra.includes('ro'), mode: '', tmpfsOptions: [...defaults, ...extra] };
}

/** The mounts a container's record holds (records made before volumes existed had only -v binds). */
export function mountsOf(info: ContainerInfo): MountRecord[] {
  return info.hostConfig.mounts ?? [];
}

/** --volumes-from X[:ro|rw]: X's volumes and binds, at the same paths; ro or rw overrides their modes. */
function volumesFrom(registry: Registry, ref: string): MountRecord[] {
  const m = /^(.*?)(?::(ro|rw))?$/.exec(ref)!;
  const info = registry.read(registry.resolve(m[1]));
  return mountsOf(info)
    .filter((x) => x.type !== 'tmpfs')
    // An anonymous volume goes with the last container that mounts it (rm -v, --rm), as Docker's does.
    .map((x) => ({ ...x, createSource: false, ...(m[2] ? { readonly: m[2] === 'ro' } : {}) }));
}

/**
 * Every mount a new container gets, checked before anything is made: the
 * flags' own, then --volumes-from's and the image's VOLUME paths where no
 * flag mounts something at that path already.
 */
export function planMounts(registry: Registry, flags: MountFlags, imageVolumes: string[]): MountRecord[] {
  const inherited = new Map((flags.inherit ?? []).filter((m) => m.type === 'volume' && m.anonymous).map((m) => [m.target, m]));
  const fresh = (m: MountRecord) => (m.anonymous && inherited.get(m.target)) || m;
  const own = [...(flags.volumes ?? []).map(parseVolumeFlag), ...(flags.mounts ?? []).map(parseMountFlag), ...(flags.tmpfs ?? []).map(parseTmpfsFlag)].map(fresh);
  const seen = new Set<string>();
  for (const m of own) {
    if (seen.has(m.target)) throw new TsrunError(`duplicate mount point: ${m.target} is mounted twice`);
    seen.add(m.target);
  }
  const out = [...own];
  for (const ref of flags.volumesFrom ?? []) {
    for (const m of volumesFrom(registry, ref)) {
      if (seen.has(m.target)) continue;
      seen.add(m.target);
      out.push(m);
    }
  }
  for (const v of imageVolumes) {
    if (!v.startsWith('/')) continue; // Docker ignores a relative VOLUME path too
    const t = path.posix.normalize(v).replace(/(.)\/$/, '$1');
    if (t === '/' || seen.has(t)) continue;
    seen.add(t);
    out.push(fresh({ type: 'volume', source: anonymousName(), target: t, readonly: false, mode: '', anonymous: true }));
  }
  return out;
}

const depth = (p: string) => p.split('/').filter(Boolean).length;

/** Parents before children, as Docker mounts them (/etc before /etc/hosts, /data before /data/logs); a stable sort. */
export function orderMounts(mounts: Mount[]): Mount[] {
  return [...mounts].sort((a, b) => depth(a.destination) - depth(b.destination));
}

/** The containers whose records mount the volume, but for one. */
export function volumeUsers(registry: Registry, name: string, except?: string): ContainerInfo[] {
  return registry.records().filter((info) => info.id !== except && mountsOf(info).some((m) => m.type === 'volume' && m.source === name));
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

/**
 * Makes what a new container's mounts need, under the volumes lock: volumes
 * it names that do not exist yet, a tmpfs volume's mount, the copy-up into
 * an empty volume no other container uses, -v's missing host directories.
 * Returns the config.json mounts and the volumes made (for an undo).
 */
export async function prepareMounts(registry: Registry, id: string, records: MountRecord[], layerDirsTopFirst: string[], userns?: IdMaps): Promise<{ mounts: Mount[]; made: string[] }> {
  // Most containers have no mounts of their own: no volume lock, no sweep.
  if (!records.length) return { mounts: [], made: [] };
  const volumes = new Volumes(registry.images.root);
  // A user namespace's root is an unprivileged host id: it must pass through volumes/ to reach its volumes.
  const hostIds = userns?.uidMappings?.length ? (uid: number, gid: number) => ({ uid: toHostId(userns.uidMappings, uid), gid: toHostId(userns.gidMappings, gid) }) : undefined;
  const made: string[] = [];
  try {
    return await volumes.locked(async () => {
      volumes.sweep();
      const mounts: Mount[] = [];
      for (const m of records) {
        const rw = m.readonly ? 'ro' : 'rw';
        if (m.type === 'tmpfs') {
          mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: [...(m.tmpfsOptions ?? []), ...(m.readonly ? ['ro'] : [])] });
          continue;
        }
        if (m.type === 'bind') {
          if (m.createSource) makeBindSource(m);
          mounts.push({ destination: m.target, type: 'bind', source: m.source, options: [m.nonRecursive ? 'bind' : 'rbind', rw, m.propagation ?? 'rprivate'] });
          continue;
        }
        let v = volumes.find(m.source);
        if (!v) {
          const labels = { ...m.volumeLabels, ...(m.anonymous ? { [ANONYMOUS_LABEL]: '' } : {}) };
          v = volumes.create(m.source, { labels, options: m.volumeOptions });
          made.push(v.name);
          if (hostIds) {
            fs.chmodSync(volumes.dir, 0o711);
            const root = hostIds(0, 0);
            fs.chownSync(volumes.dataDir(v.name), root.uid, root.gid);
          }
        } else if (m.volumeOptions && JSON.stringify(m.volumeOptions) !== JSON.stringify(v.options)) {
          throw new TsrunError(`--mount ${m.target}: volume ${v.name} exists already with other options (${JSON.stringify(v.options)})`);
        }
        volumes.ensureMounted(v);
        const source = volumes.source(v);
        // Docker's copy-up: only into an empty volume, and never into one another container has.
        if (!m.nocopy && isEmptyDir(source) && !volumeUsers(registry, v.name, id).length) await copyUp(layerDirsTopFirst, m.target, source, hostIds);
        mounts.push({ destination: m.target, type: 'bind', source, options: ['rbind', rw, 'rprivate'] });
      }
      return { mounts, made };
    });
  } catch (e) {
    await removeVolumes(registry, made).catch(() => undefined);
    throw e;
  }
}

/**
 * Docker's -v makes a missing host path as a directory, one level at a time
 * (a recursive mkdir spins on /proc, where mkdir says ENOENT for ever); a
 * dangling symlink there is refused.
 */
function makeBindSource(m: MountRecord) {
  if (fs.existsSync(m.source)) return;
  const what = `-v ${m.source}:${m.target}`;
  let dangling = false;
  try {
    dangling = fs.lstatSync(m.source).isSymbolicLink();
  } catch {
    /* missing: made below */
  }
  if (dangling) throw new TsrunError(`${what}: ${m.source} is a symlink to ${fs.readlinkSync(m.source)}, which does not exist`);
  let dir = '/';
  for (const part of m.source.split('/').filter(Boolean)) {
    dir = path.join(dir, part);
    if (fs.existsSync(dir)) continue;
    try {
      fs.mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new TsrunError(`${what}: make the missing host directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

/** Before each start: what a volume needs mounted on the host (a tmpfs volume's tmpfs, gone after a reboot) is mounted again. */
export async function mountVolumes(registry: Registry, info: ContainerInfo) {
  const names = mountsOf(info).filter((m) => m.type === 'volume').map((m) => m.source);
  if (!names.length) return;
  const volumes = new Volumes(registry.images.root);
  await volumes.locked(() => {
    for (const n of names) {
      const v = volumes.find(n);
      if (!v) throw new TsrunError(`container ${info.name} mounts volume ${n}, which was removed: remove the container, or make the volume again (volume create ${n})`);
      volumes.ensureMounted(v);
    }
  });
}

/** Removes these volumes (each if it still exists). */
export async function removeVolumes(registry: Registry, names: string[]) {
  if (!names.length) return;
  const volumes = new Volumes(registry.images.root);
  await volumes.locked(() => {
    for (const n of names) if (volumes.find(n)) volumes.remove(n);
  });
}

/** A removed container's anonymous volumes that no other container mounts (rm -v, --rm). */
export async function removeAnonymousVolumes(registry: Registry, info: ContainerInfo) {
  const names = mountsOf(info).filter((m) => m.type === 'volume' && m.anonymous).map((m) => m.source);
  if (!names.length) return;
  const volumes = new Volumes(registry.images.root);
  await volumes.locked(() => {
    for (const n of names) if (volumes.find(n) && !volumeUsers(registry, n, info.id).length) volumes.remove(n);
  });
}

/** inspect's Mounts, in Docker's shape; records older than volumes show their spec's binds. */
export function inspectMounts(registry: Registry, info: ContainerInfo, specMounts: Mount[]) {
  if (!info.hostConfig.mounts) {
    return specMounts.filter((m) => m.type === 'bind' && !['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/init'].includes(m.destination)).map((m) => ({ Type: 'bind', Source: m.source, Destination: m.destination, Mode: '', RW: !(m.options ?? []).includes('ro'), Propagation: 'rprivate' }));
  }
  const volumes = new Volumes(registry.images.root);
  return info.hostConfig.mounts.map((m) => {
    const base = { Type: m.type, Source: m.source, Destination: m.target, Mode: m.mode, RW: !m.readonly, Propagation: m.type === 'bind' ? (m.propagation ?? 'rprivate') : '' };
    if (m.type !== 'volume') return base;
    const v = volumes.find(m.source);
    return { ...base, Name: m.source, Source: v ? volumes.source(v) : volumes.dataDir(m.source), Driver: 'local' };
  });
}
