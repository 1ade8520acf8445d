// The volumes of a store: each a directory <storage>/volumes/NAME holding
// _data (what containers see) and volume.json (its record). Docker's local
// driver: a plain directory; with --opt type=tmpfs a tmpfs mounted on _data
// at first use and unmounted when the volume is removed; with type=none,
// o=bind,device=PATH the host directory PATH itself.
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { native } from '../native';
import { withFileLock } from '../file-lock';
import { parseMountOptions } from '../rootfs/mount-options';

/** Docker's rule for volume names: two or more, a letter or digit first; so never "/" or "..". */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** The label Docker puts on the volumes it makes for VOLUME paths and `-v /path`. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';
const MNT_DETACH = 2;

export interface VolumeRecord {
  name: string;
  driver: 'local';
  created: string;
  labels: Record<string, string>;
  /** --opt type=..., device=..., o=... as given. */
  options: Record<string, string>;
}

export interface CreateVolumeOptions {
  labels?: Record<string, string>;
  options?: Record<string, string>;
  driver?: string;
}

export function checkVolumeName(name: string, what = 'volume name') {
  if (!NAME.test(name) || name.length > 255) throw new TsrunError(`invalid ${what} "${name}": use two or more letters, digits and _ . -, starting with a letter or digit`);
}

export const isAnonymous = (v: VolumeRecord) => ANONYMOUS_LABEL in v.labels;

/** The driver options the local driver takes, checked when the volume is made rather than at first use. */
function checkOptions(name: string, options: Record<string, string>) {
  for (const k of Object.keys(options)) if (!['type', 'device', 'o'].includes(k)) throw new TsrunError(`volume ${name}: unknown driver option "${k}" (the local driver takes type, device and o)`);
  const { type, device, o } = options;
  if (type === undefined) {
    if (device !== undefined || o !== undefined) throw new TsrunError(`volume ${name}: --opt device and o need --opt type (tmpfs, or none with o=bind)`);
    return;
  }
  if (type === 'tmpfs') {
    // Filesystem options only: flags that would make the mount something else are not the driver's to take.
    const bad = (o ?? '').split(',').filter((x) => ['bind', 'rbind', 'move', 'remount', 'shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate', 'unbindable', 'runbindable'].includes(x));
    if (bad.length) throw new TsrunError(`volume ${name}: --opt o=${bad.join(',')} is not an option for a tmpfs`);
    return;
  }
  if (type === 'none' && (o ?? '').split(',').some((x) => x === 'bind' || x === 'rbind')) {
    if (!device?.startsWith('/')) throw new TsrunError(`volume ${name}: type=none,o=bind needs device=ABSOLUTE-HOST-PATH`);
    return;
  }
  throw new TsrunError(`volume ${name}: --opt type=${type}${type === 'none' ? ' without o=bind' : ''} is not supported: the local driver here mounts type=tmpfs, or binds a host directory with type=none,o=bind,device=PATH`);
}

export class Volumes {
  readonly dir: string;
  constructor(storage: string) {
    this.dir = path.join(storage, 'volumes');
  }

  /** One lock for a store's volume changes: create, remove, first use (mount, copy-up). */
  locked<T>(fn: () => Promise<T> | T): Promise<T> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withFileLock(path.join(this.dir, '.lock'), fn);
  }

  dataDir(name: string) {
    return path.join(this.dir, name, '_data');
  }

  find(name: string): VolumeRecord | undefined {
    if (!NAME.test(name)) return undefined;
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, name, 'volume.json'), 'utf8')) as VolumeRecord;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new TsrunError(`read volume ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw new TsrunError(`no such volume: ${name}`);
    return v;
  }

  list(): VolumeRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((n) => NAME.test(n));
    } catch {
      return [];
    }
    return names.flatMap((n) => this.find(n) ?? []).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Makes a volume (call under the lock). Docker's rule: a volume that
   * exists already is returned as it is, unless it was asked for with other
   * options. No name: an anonymous volume's 64 hex digits.
   */
  create(name: string | undefined, opts: CreateVolumeOptions = {}): VolumeRecord {
    if ((opts.driver ?? 'local') !== 'local') throw new TsrunError(`volume driver "${opts.driver}" is not available: tsrun has the local driver only`);
    const vname = name ?? crypto.randomBytes(32).toString('hex');
    checkVolumeName(vname);
    const options = opts.options ?? {};
    checkOptions(vname, options);
    const old = this.find(vname);
    if (old) {
      if (Object.keys(options).length && JSON.stringify(old.options) !== JSON.stringify(options)) throw new TsrunError(`volume ${vname} exists already with other options (${JSON.stringify(old.options)}): remove it first or choose another name`);
      return old;
    }
    const rec: VolumeRecord = { name: vname, driver: 'local', created: new Date().toISOString(), labels: opts.labels ?? {}, options };
    // Made aside and renamed into place: a volume is whole or absent.
    const tmp = path.join(this.dir, `.new-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    fs.mkdirSync(path.join(tmp, '_data'), { recursive: true, mode: 0o755 });
    fs.chmodSync(tmp, 0o701);
    fs.writeFileSync(path.join(tmp, 'volume.json'), JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
    try {
      fs.renameSync(tmp, path.join(this.dir, vname));
    } catch (e) {
      native().removeTree(tmp);
      throw new TsrunError(`create volume ${vname}: rename ${tmp}: ${(e as NodeJS.ErrnoException).code}`);
    }
    return rec;
  }

  /** What a container's bind mount of the volume takes as its source. */
  source(v: VolumeRecord): string {
    return v.options.type === 'none' ? v.options.device! : this.dataDir(v.name);
  }

  /** Whether _data has a filesystem of its own mounted on it now. */
  isMounted(name: string): boolean {
    const data = this.dataDir(name);
    // mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    const decode = (p: string | undefined) => p?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => decode(l.split(' ')[4]) === data);
  }

  /** A tmpfs volume's filesystem, mounted on _data if it is not yet (call under the lock). */
  ensureMounted(v: VolumeRecord) {
    if (v.options.type !== 'tmpfs' || this.isMounted(v.name)) return;
    const data = this.dataDir(v.name);
    // nosuid and nodev unless o= says otherwise: the tmpfs is on the host too.
    const parsed = parseMountOptions(['nosuid', 'nodev', ...(v.options.o ?? '').split(',').filter(Boolean)]);
    try {
      native().mount(v.options.device ?? 'tmpfs', data, 'tmpfs', parsed.flags, parsed.data || null);
    } catch (e) {
      throw new TsrunError(`mount volume ${v.name} (tmpfs) on ${data}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  /** Removes a volume, unmounting its filesystem first (call under the lock). */
  remove(name: string) {
    const dir = path.join(this.dir, name);
    if (this.isMounted(name)) {
      try {
        native().umount2(this.dataDir(name), MNT_DETACH);
      } catch (e) {
        throw new TsrunError(`remove volume ${name}: unmount ${this.dataDir(name)}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
    // Renamed aside first: the name is free at once, and a removal cut short leaves no half volume.
    const gone = path.join(this.dir, `.gone-${name.slice(0, 64)}-${crypto.randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(dir, gone);
    } catch (e) {
      throw new TsrunError(`remove volume ${name}: rename ${dir}: ${(e as NodeJS.ErrnoException).code}`);
    }
    native().removeTree(gone);
  }

  /** Leftovers of makes and removals a kill cut short. */
  sweep() {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.dir).filter((n) => n.startsWith('.new-') || n.startsWith('.gone-'));
    } catch {
      return;
    }
    for (const n of names) {
      const dir = path.join(this.dir, n);
      try {
        native().removeTree(dir);
      } catch {
        // A filesystem still mounted in it (a removal cut short after its rename): detached, then removed.
        try {
          native().umount2(path.join(dir, '_data'), MNT_DETACH);
          native().removeTree(dir);
        } catch {
          /* left for the next sweep: it must not stop this container's start */
        }
      }
    }
  }
}
