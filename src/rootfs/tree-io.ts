// Reading and writing a tree under a directory fd that another party may be
// changing: a running container's root (/proc/PID/root), or a host path.
// Every path is opened with openat2 beneath the fd and with no symlink on
// the way (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a symlink planted or
// swapped in meanwhile makes the copy fail, never leads it outside; the
// last component is acted on through /proc/self/fd/N/NAME with no-follow
// calls. cp uses both directions.
import fs = require('node:fs');
import type * as TarStream from 'tar-stream';
import { TsrunError } from '../errors';
import { native, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../native';
import { S_IFBLK, S_IFCHR } from './devices';
import type { TreeEntry } from '../image/unpack';
import { earlierLink, EMPTY, specialKind } from '../image/tree';

export const O_PATH = 0o10000000;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants;
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** Filesystems whose contents are the kernel's, not files: their mount point is copied, not what is in it. */
const PSEUDO_FS = new Set([0x9fa0 /* proc */, 0x62656572 /* sysfs */, 0x27e0eb /* cgroup */, 0x63677270 /* cgroup2 */, 0x1cd1 /* devpts */, 0x19800202 /* mqueue */, 0x64626720 /* debugfs */, 0x73636673 /* securityfs */, 0xcafe4a11 /* bpf */]);

export const fdPath = (fd: number, name?: string) => (name ? `/proc/self/fd/${fd}/${name}` : `/proc/self/fd/${fd}`);

/** Opens rel beneath dirfd, no symlink on the way ("" or "." is dirfd itself, reopened). */
export function openBeneath(dirfd: number, rel: string, flags: number): number {
  return native().openat2(dirfd, rel === '' ? '.' : rel, flags, BENEATH);
}


export interface Ids {
  uid: number;
  gid: number;
}

export interface ReadOptions {
  /** The first entry's name; its children are named under it. "." names the children alone (a directory's contents). */
  name: string;
  /** Owners as they should appear in the entries (container ids from host ids, or the caller's own). */
  owner: (st: fs.Stats) => Ids;
  /** Whether an entry below the top is copied (a directory left out is not walked); rel is relative to the top. */
  keep?: (rel: string, isDir: boolean) => boolean;
}

function entryHeader(name: string, st: fs.Stats, type: TarStream.Header['type'], owner: Ids, extra: Partial<TarStream.Header> = {}): TarStream.Header {
  return { name, type, mode: st.mode & 0o7777, uid: owner.uid, gid: owner.gid, mtime: st.mtime, size: 0, linkname: '', uname: '', gname: '', devmajor: 0, devminor: 0, ...extra };
}

async function* fdBody(fd: number, size: number): AsyncIterable<Buffer> {
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let left = size;
    while (left > 0) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
      if (n === 0) throw new TsrunError('a file shrank while it was read');
      left -= n;
      yield Buffer.from(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The tree at (parentFd, base) as entries, parents first; base "" is
 * parentFd itself. Directories are reopened from the top by their relative
 * path, so no more than a few fds are open however wide the tree.
 */
export async function* readTree(parentFd: number, base: string, opts: ReadOptions): AsyncGenerator<TreeEntry> {
  // /proc/self/fd/N is a link itself: the fd's own file is fstat's.
  const topSt = base ? fs.lstatSync(fdPath(parentFd, base)) : fs.fstatSync(parentFd);
  const named = (rel: string) => (opts.name === '.' ? rel : rel ? `${opts.name}/${rel}` : opts.name);
  const seen = new Map<string, string>();
  if (!topSt.isDirectory()) {
    const e = leaf(parentFd, base, topSt, opts.name, seen, opts);
    if (e) yield e;
    return;
  }
  const top = openBeneath(parentFd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    if (opts.name !== '.') yield { header: entryHeader(opts.name, topSt, 'directory', opts.owner(topSt)), body: EMPTY };
    const stack = [''];
    while (stack.length) {
      const rel = stack.pop()!;
      const dfd = rel ? openBeneath(top, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : top;
      try {
        if (rel && PSEUDO_FS.has(Number(fs.statfsSync(fdPath(dfd)).type))) continue;
        for (const name of fs.readdirSync(fdPath(dfd)).sort()) {
          let st: fs.Stats;
          try {
            st = fs.lstatSync(fdPath(dfd, name));
          } catch {
            continue; // gone meanwhile
          }
          const childRel = rel ? `${rel}/${name}` : name;
          if (opts.keep && !opts.keep(childRel, st.isDirectory())) continue;
          if (st.isDirectory()) {
            yield { header: entryHeader(named(childRel), st, 'directory', opts.owner(st)), body: EMPTY };
            stack.push(childRel);
            continue;
          }
          const e = leaf(dfd, name, st, named(childRel), seen, opts);
          if (e) yield e;
        }
      } finally {
        if (dfd !== top) fs.closeSync(dfd);
      }
    }
  } finally {
    fs.closeSync(top);
  }
}

function leaf(dirfd: number, name: string, st: fs.Stats, entryName: string, seen: Map<string, string>, opts: ReadOptions): TreeEntry | undefined {
  const owner = opts.owner(st);
  const first = earlierLink(st, entryName, seen);
  if (first !== undefined) return { header: entryHeader(entryName, st, 'link', owner, { linkname: first }), body: EMPTY };
  if (st.isFile()) {
    // No name: dirfd is the file itself (an O_PATH fd of a followed link), reopened for reading.
    const fd = name ? native().openat2(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, BENEATH) : fs.openSync(fdPath(dirfd), O_RDONLY | O_NONBLOCK);
    const now = fs.fstatSync(fd);
    if (!now.isFile()) {
      fs.closeSync(fd);
      return undefined;
    }
    return { header: entryHeader(entryName, now, 'file', owner, { size: now.size }), body: fdBody(fd, now.size) };
  }
  const kind = specialKind(st, () => fs.readlinkSync(fdPath(dirfd, name)));
  return kind && { header: entryHeader(entryName, st, kind.type, owner, kind.extra), body: EMPTY };
}

/**
 * Writes entries beneath a directory fd, merging into what is there as tar
 * does (Docker's cp rules): a directory merges into a directory; anything
 * else replaces what was at its path. Entry names must be clean relative
 * names; a symlink on any entry's way, made by an entry or found there,
 * refuses the entry.
 */
export class TreeWriter {
  private readonly dirs: [string, TarStream.Header][] = [];
  private cached: { rel: string; fd: number } | undefined;
  entries = 0;

  constructor(
    private readonly destFd: number,
    private readonly owner: (h: TarStream.Header) => Ids,
    /** Whether a "." entry may set the destination directory's own owner and mode. */
    private readonly ownRoot: boolean,
  ) {}

  private parentOf(rel: string): { fd: number; base: string } {
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    const base = slash < 0 ? rel : rel.slice(slash + 1);
    if (parent === '') return { fd: this.destFd, base };
    if (this.cached?.rel !== parent) {
      if (this.cached) fs.closeSync(this.cached.fd);
      this.cached = undefined;
      try {
        this.cached = { rel: parent, fd: openBeneath(this.destFd, parent, O_PATH | O_DIRECTORY) };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new TsrunError(`write ${rel}: ${parent} is ${code === 'ELOOP' || code === 'EXDEV' ? 'a symlink (not followed)' : code === 'ENOTDIR' ? 'not a directory' : `not reachable (${code})`}`);
      }
    }
    return { fd: this.cached.fd, base };
  }

  /**
   * Makes room at p for an entry: a file or link there goes; a directory
   * is never replaced by a non-directory nor the reverse (Docker's cp
   * refuses both, and removing a tree the user did not name is worse).
   */
  private clear(p: string, rel: string, isDir: boolean): boolean {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return false;
    }
    if (st.isDirectory() !== isDir) throw new TsrunError(`cannot overwrite ${st.isDirectory() ? 'directory' : 'non-directory'} ${rel} with ${isDir ? 'a directory' : 'a non-directory'}`);
    if (!isDir) fs.unlinkSync(p);
    return isDir;
  }

  async entry(header: TarStream.Header, body: AsyncIterable<Buffer>) {
    this.entries++;
    const rel = header.name.replace(/\/+$/, '');
    const ids = this.owner(header);
    if (rel === '.' || rel === '') {
      if (header.type === 'directory' && this.ownRoot) this.dirs.push(['', header]);
      for await (const _ of body) void _;
      return;
    }
    const { fd, base } = this.parentOf(rel);
    const p = fdPath(fd, base);
    const mtime = header.mtime ? header.mtime.getTime() / 1000 : Date.now() / 1000;
    switch (header.type) {
      case 'directory': {
        if (!this.clear(p, rel, true)) fs.mkdirSync(p, { mode: 0o700 });
        this.dirs.push([rel, header]);
        break;
      }
      case 'file':
      case 'contiguous-file': {
        this.clear(p, rel, false);
        const out = fs.openSync(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of body) fs.writeSync(out, chunk);
          fs.fchownSync(out, ids.uid, ids.gid);
          fs.fchmodSync(out, (header.mode ?? 0o644) & 0o7777);
          fs.futimesSync(out, mtime, mtime);
        } finally {
          fs.closeSync(out);
        }
        return;
      }
      case 'symlink':
        this.clear(p, rel, false);
        fs.symlinkSync(header.linkname ?? '', p);
        fs.lchownSync(p, ids.uid, ids.gid);
        fs.lutimesSync(p, mtime, mtime);
        break;
      case 'link': {
        const target = (header.linkname ?? '').replace(/\/+$/, '');
        if (!target || target.startsWith('/') || target.split('/').includes('..')) throw new TsrunError(`hardlink ${header.name} points at ${header.linkname}, outside what is copied`);
        // The target's parent, opened beneath the destination like any other.
        const slash = target.lastIndexOf('/');
        const tfd = slash < 0 ? this.destFd : openBeneath(this.destFd, target.slice(0, slash), O_PATH | O_DIRECTORY);
        try {
          this.clear(p, rel, false);
          fs.linkSync(fdPath(tfd, slash < 0 ? target : target.slice(slash + 1)), p);
        } finally {
          if (tfd !== this.destFd) fs.closeSync(tfd);
        }
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        this.clear(p, rel, false);
        if (header.type === 'fifo') native().mkfifo(p, 0o600);
        else native().mknod(p, (header.type === 'block-device' ? S_IFBLK : S_IFCHR) | 0o600, header.devmajor ?? 0, header.devminor ?? 0);
        fs.lchownSync(p, ids.uid, ids.gid);
        native().lchmod(p, (header.mode ?? 0o644) & 0o7777);
        fs.lutimesSync(p, mtime, mtime);
        break;
      default:
        throw new TsrunError(`${header.name}: entry type ${header.type} cannot be copied`);
    }
    for await (const _ of body) void _;
  }

  /** Directories' owners, modes and times last, children before parents. */
  finish() {
    if (this.cached) fs.closeSync(this.cached.fd);
    this.cached = undefined;
    for (const [rel, header] of this.dirs.reverse()) {
      const fd = openBeneath(this.destFd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      try {
        const ids = this.owner(header);
        fs.fchownSync(fd, ids.uid, ids.gid);
        fs.fchmodSync(fd, (header.mode ?? 0o755) & 0o7777);
        const t = header.mtime ? header.mtime.getTime() / 1000 : Date.now() / 1000;
        fs.futimesSync(fd, t, t);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
}

