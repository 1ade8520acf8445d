// Directory trees as tar entries, and back: the merged view of layers (a
// volume's copy-up, export, cp out of a container), a container's writable
// layer turned back into an OCI layer (commit: overlay whiteouts and opaque
// directories become .wh. entries), its changes (diff), and a tar stream
// made of any of them.
import fs = require('node:fs');
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TsrunError } from '../errors';
import type * as TarStream from 'tar-stream';
import { native } from '../native';
import { lookupIn, listMerged, mergedRoot, type MergedDir } from './merged';
import type { TreeEntry } from './unpack';
import { tarStream } from '../lazy';

/** The body of an entry that has none. */
export const EMPTY: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) };

/** overlayfs's own attributes (opacity, redirects, origins) describe layers, not files: never carried. */
const OVERLAY_XATTR = /^trusted\.overlay\./;

const isWhiteout = (st: fs.Stats) => st.isCharacterDevice() && st.rdev === 0;
const isOpaque = (abs: string) => native().lgetxattr(abs, 'trusted.overlay.opaque')?.toString() === 'y';

function xattrPax(abs: string): Record<string, string> | undefined {
  const names = native().llistxattr(abs).filter((n) => !OVERLAY_XATTR.test(n));
  if (!names.length) return undefined;
  const pax: Record<string, string> = {};
  for (const n of names) {
    const v = native().lgetxattr(abs, n);
    if (v) pax[`SCHILY.xattr.${n}`] = v.toString('latin1');
  }
  return pax;
}

/** Linux's dev_t split (glibc's major()/minor()). */
export function devParts(rdev: number): { devmajor: number; devminor: number } {
  const big = BigInt(rdev);
  return { devmajor: Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn)), devminor: Number((big & 0xffn) | ((big >> 12n) & ~0xffn)) };
}

/** Who owns an entry in the tar: by default its ids on disk. */
export type Owner = (abs: string, st: fs.Stats) => { uid: number; gid: number };
const onDisk: Owner = (_abs, st) => ({ uid: st.uid, gid: st.gid });

function header(name: string, abs: string, st: fs.Stats, type: TarStream.Header['type'], extra: Partial<TarStream.Header> = {}, owner: Owner = onDisk): TarStream.Header {
  return { name, type, mode: st.mode & 0o7777, ...owner(abs, st), mtime: st.mtime, size: 0, linkname: '', uname: '', gname: '', devmajor: 0, devminor: 0, pax: xattrPax(abs), ...extra };
}

/** A file's bytes, exactly as many as its header said: a file that changed meanwhile fails the stream. */
async function* fileBody(abs: string, size: number): AsyncIterable<Buffer> {
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let left = size; left > 0; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
      if (n === 0) throw new TsrunError(`${abs} shrank while it was read`);
      left -= n;
      yield Buffer.from(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** One non-directory as an entry; hardlinked files once, then links to the first name. */
/** The name an earlier entry gave this file if it is a second hardlink to it (then a link entry), else undefined. */
export function earlierLink(st: fs.Stats, name: string, seen: Map<string, string>): string | undefined {
  if (st.nlink < 2 || st.isDirectory()) return undefined;
  const key = `${st.dev}:${st.ino}`;
  const first = seen.get(key);
  if (first === undefined) seen.set(key, name);
  return first;
}

/** A non-directory other than a regular file as its entry type and fields; undefined for a socket (no tar holds one). */
export function specialKind(st: fs.Stats, readlink: () => string): { type: TarStream.Header['type']; extra: Partial<TarStream.Header> } | undefined {
  if (st.isSymbolicLink()) return { type: 'symlink', extra: { linkname: readlink() } };
  if (st.isCharacterDevice()) return { type: 'character-device', extra: devParts(st.rdev) };
  if (st.isBlockDevice()) return { type: 'block-device', extra: devParts(st.rdev) };
  if (st.isFIFO()) return { type: 'fifo', extra: {} };
  return undefined;
}

function leafEntry(name: string, abs: string, st: fs.Stats, seen: Map<string, string>, owner: Owner = onDisk): TreeEntry | undefined {
  const first = earlierLink(st, name, seen);
  if (first !== undefined) return { header: header(name, abs, st, 'link', { linkname: first }, owner), body: EMPTY };
  if (st.isFile()) return { header: header(name, abs, st, 'file', { size: st.size }, owner), body: fileBody(abs, st.size) };
  const kind = specialKind(st, () => fs.readlinkSync(abs));
  return kind && { header: header(name, abs, st, kind.type, kind.extra, owner), body: EMPTY };
}

const join = (prefix: string, name: string) => (prefix ? `${prefix}/${name}` : name);

/**
 * A merged directory's tree as entries, parents first, named under prefix
 * (the root itself is "." without one). skip(rel) leaves a subtree out.
 */
export async function* mergedEntries(rootAbs: string, rootSt: fs.Stats, root: MergedDir, opts: { prefix?: string; skip?: (rel: string) => boolean; owner?: Owner } = {}): AsyncGenerator<TreeEntry> {
  const prefix = opts.prefix ?? '';
  const owner = opts.owner ?? onDisk;
  yield { header: header(prefix || '.', rootAbs, rootSt, 'directory', {}, owner), body: EMPTY };
  const seen = new Map<string, string>();
  const stack: [string, MergedDir][] = [['', root]];
  while (stack.length) {
    const [rel, dir] = stack.pop()!;
    for (const name of listMerged(dir)) {
      const hit = lookupIn(dir, name);
      if (!hit) continue; // whited out
      const child = join(rel, name);
      if (opts.skip?.(child)) continue;
      if (hit.st.isDirectory()) {
        yield { header: header(join(prefix, child), hit.abs, hit.st, 'directory', {}, owner), body: EMPTY };
        stack.push([child, hit.dir!]);
        continue;
      }
      const e = leafEntry(join(prefix, child), hit.abs, hit.st, seen, owner);
      if (e) yield e;
    }
  }
}

/** One path of a container's writable layer, beside what the image's layers have there. */
interface UpperNode {
  rel: string;
  abs: string;
  st: fs.Stats;
  /** The image's own entry at this path, if any (a directory also as a merged directory). */
  lower: { st: fs.Stats; dir?: MergedDir } | null;
  whiteout: boolean;
  opaque: boolean;
  parent: number;
  /** Part of the change; false for the runtime's empty mount points and directories only they touched. */
  keep: boolean;
}

/**
 * The writable layer's entries, parents first, each beside the image's
 * entry at its path. Mount points the runtime made (empty, and absent from
 * the image) are not changes, nor are the directories copied up only to
 * hold them.
 */
function scanUpper(upper: string, lowersTopFirst: string[], mountPoints: Set<string>): UpperNode[] {
  const rootSt = fs.lstatSync(upper);
  const nodes: UpperNode[] = [{ rel: '', abs: upper, st: rootSt, lower: { st: rootSt, dir: mergedRoot(lowersTopFirst) }, whiteout: false, opaque: false, parent: -1, keep: false }];
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    if (!n.st.isDirectory()) continue;
    for (const name of fs.readdirSync(n.abs).sort()) {
      const abs = `${n.abs}/${name}`;
      const st = fs.lstatSync(abs);
      const hit = n.lower?.dir && !n.opaque ? lookupIn(n.lower.dir, name) : null;
      const opaque = st.isDirectory() && isOpaque(abs);
      nodes.push({ rel: join(n.rel, name), abs, st, lower: hit ? { st: hit.st, dir: hit.dir } : null, whiteout: isWhiteout(st), opaque, parent: i, keep: false });
    }
  }
  // Children come after their parents: one pass from the end settles what is kept.
  const keptChild = new Set<number>();
  for (let i = nodes.length - 1; i > 0; i--) {
    const n = nodes[i];
    const emptyStub = mountPoints.has(n.rel) && !n.lower && ((n.st.isDirectory() && !keptChild.has(i)) || (n.st.isFile() && n.st.size === 0));
    if (n.st.isDirectory() && !n.whiteout && !n.opaque && !keptChild.has(i)) {
      // A directory nothing kept is in: new ones only made to hold mount points, and copied-up ones as the image has them.
      const onlyHolds = !n.lower ? [...mountPoints].some((m) => m.startsWith(`${n.rel}/`)) : n.lower.st.isDirectory() && n.lower.st.mode === n.st.mode && n.lower.st.uid === n.st.uid && n.lower.st.gid === n.st.gid;
      n.keep = !(emptyStub || onlyHolds);
    } else {
      n.keep = !emptyStub;
    }
    if (n.keep) keptChild.add(n.parent);
  }
  return nodes;
}

export interface Change {
  kind: 'A' | 'C' | 'D';
  path: string;
}

/** Docker's diff: A added, C changed, D deleted, from the writable layer; sorted by path. */
export function upperChanges(upper: string, lowersTopFirst: string[], mountPoints: Set<string>): Change[] {
  const out: Change[] = [];
  for (const n of scanUpper(upper, lowersTopFirst, mountPoints).slice(1)) {
    if (!n.keep) continue;
    if (n.whiteout) {
      out.push({ kind: 'D', path: `/${n.rel}` });
      continue;
    }
    out.push({ kind: n.lower ? 'C' : 'A', path: `/${n.rel}` });
    if (n.opaque && n.lower?.dir) {
      // An opaque directory hides all the image had in it: what the container did not make again is deleted.
      const mine = new Set(fs.readdirSync(n.abs));
      for (const name of listMerged(n.lower.dir)) if (!mine.has(name) && lookupIn(n.lower.dir, name)) out.push({ kind: 'D', path: `/${n.rel}/${name}` });
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The writable layer as an OCI layer's entries: whiteouts to .wh.NAME, opaque directories with .wh..wh..opq. */
export async function* upperEntries(upper: string, lowersTopFirst: string[], mountPoints: Set<string>, owner: Owner = onDisk): AsyncGenerator<TreeEntry> {
  const nodes = scanUpper(upper, lowersTopFirst, mountPoints);
  const seen = new Map<string, string>();
  const zero = { mode: 0, uid: 0, gid: 0, mtime: new Date(0), size: 0, linkname: '', uname: '', gname: '', devmajor: 0, devminor: 0 };
  for (const n of nodes.slice(1)) {
    if (!n.keep) continue;
    if (n.whiteout) {
      const slash = n.rel.lastIndexOf('/');
      yield { header: { ...zero, name: `${n.rel.slice(0, slash + 1)}.wh.${n.rel.slice(slash + 1)}`, type: 'file' }, body: EMPTY };
      continue;
    }
    if (n.st.isDirectory()) {
      yield { header: header(n.rel, n.abs, n.st, 'directory', {}, owner), body: EMPTY };
      if (n.opaque) yield { header: { ...zero, name: `${n.rel}/.wh..wh..opq`, type: 'file' }, body: EMPTY };
      continue;
    }
    const e = leafEntry(n.rel, n.abs, n.st, seen, owner);
    if (e) yield e;
  }
}

/** A tar stream of the entries, written as it is read. */
export function packTar(entries: AsyncIterable<TreeEntry>): Readable {
  const pack = tarStream().pack();
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // pipeline, not pipe: an error on either side reaches the reader instead of the process.
  pipeline(pack, out).catch((err) => out.destroy(err));
  (async () => {
    for await (const e of entries) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error | null) => (err ? reject(err) : resolve());
        // An empty file still takes a (zero-length) body: without one tar-stream waits for its end.
        if (e.header.type === 'file' && !e.header.size) return void pack.entry({ ...e.header, size: 0 }, Buffer.alloc(0), done);
        if (e.header.type !== 'file') return void pack.entry({ ...e.header, size: 0 }, done);
        const w = pack.entry(e.header, done);
        (async () => {
          for await (const chunk of e.body) if (!w.write(chunk)) await once(w, 'drain');
          w.end(null);
        })().catch(reject);
      });
    }
    pack.finalize();
  })().catch((err) => out.destroy(err));
  return out;
}
