// A layer tarball into a directory, as hostile input: no entry may land
// outside the directory, and both digests are checked while streaming.
//
// The directory is new and private to this unpack, so every path in it was
// made by an earlier entry of the same tarball: the unpacker keeps a map of
// what it made and refuses to write through a symlink it made, or to
// hardlink to anything outside that map. Whiteouts become overlay whiteouts.
import { crypto, tarStream } from '../lazy';
import fs = require('node:fs');
import path = require('node:path');
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as TarStream from 'tar-stream';
import { TsrunError } from '../errors';
import { native, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../native';
import { S_IFCHR, S_IFBLK } from '../rootfs/devices';
import type { Digest } from './digest';
import { MAX_ID } from '../spec/validate';

// Loaded on first use: most commands never read a tar, and start-up is paid by every command.

export type Compression = 'gzip' | 'zstd' | 'none';

export interface UnpackResult {
  /** sha256 of the blob as stored (compressed). */
  digest: Digest;
  /** sha256 of the uncompressed tar: the layer's diffID. */
  diffID: Digest;
  compressedSize: number;
  size: number;
  entries: number;
}

export interface UnpackOptions {
  /** What the errors call the layer when no digest is expected. */
  label?: string;
  expectDigest?: string;
  expectDiffID?: string;
  onProgress?(bytesRead: number): void;
}

/** What the first bytes say: gzip (1f 8b), zstd (28 b5 2f fd), or a plain tar. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

export function readHead(file: string, n = 4): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

class HashTap extends Transform {
  readonly hash = crypto().createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

function zstdDecompressor(): Transform {
  // Node 20's zlib has no zstd; fzstd is a streaming decoder in plain JS.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Decompress } = require('fzstd') as typeof import('fzstd');
  let out: Transform;
  const dec = new Decompress((chunk: Uint8Array) => out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
  out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        dec.push(chunk);
        cb();
      } catch (e) {
        cb(new Error(`zstd: ${(e as Error).message}`));
      }
    },
    flush(cb) {
      try {
        dec.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(new Error(`zstd: ${(e as Error).message} (truncated stream?)`));
      }
    },
  });
  return out;
}

export function decompressor(c: Compression): Transform {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (c === 'gzip') return (require('node:zlib') as typeof import('node:zlib')).createGunzip({ chunkSize: 256 * 1024 });
  if (c === 'zstd') return zstdDecompressor();
  return new PassThrough();
}

/** The framing of a tar stream, header by header, to find its end-of-archive marker. */
export class TarFramer {
  ended = false;
  private skip = 0;
  private header = Buffer.alloc(512);
  private filled = 0;
  private zeros = 0;
  /** A pax header's records, gathered to learn the next entry's size (files past 8 GiB carry it there). */
  private pax?: { global: boolean; chunks: Buffer[]; size: number };
  private nextSize?: number;
  private globalSize?: number;

  /** How many bytes of chunk belong to the tar: all of it, or up to and with the end marker. */
  take(chunk: Buffer): number {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        if (this.pax && this.pax.size < 1 << 20) {
          this.pax.chunks.push(Buffer.from(chunk.subarray(at, at + n)));
          this.pax.size += n;
        }
        this.skip -= n;
        at += n;
        if (this.skip === 0 && this.pax) this.readPax();
        continue;
      }
      const n = Math.min(512 - this.filled, chunk.length - at);
      chunk.copy(this.header, this.filled, at, at + n);
      this.filled += n;
      at += n;
      if (this.filled < 512) break;
      this.filled = 0;
      if (this.header.every((b) => b === 0)) {
        if (++this.zeros === 2) this.ended = true;
        continue;
      }
      this.zeros = 0;
      const type = String.fromCharCode(this.header[156]);
      let size = tarSize(this.header);
      if (type === 'x' || type === 'g') {
        this.pax = { global: type === 'g', chunks: [], size: 0 };
      } else if (type !== 'L' && type !== 'K') {
        // The entry itself: a pax size, if one came before it, is its size (as tar-stream takes it).
        size = this.nextSize ?? this.globalSize ?? size;
        this.nextSize = undefined;
      }
      this.skip = Math.ceil(size / 512) * 512;
      if (this.skip === 0 && this.pax) this.readPax();
    }
    return at;
  }

  /** "LEN key=value\n" records: only size matters here. */
  private readPax() {
    const text = Buffer.concat(this.pax!.chunks).toString('latin1');
    const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(text);
    if (m) {
      if (this.pax!.global) this.globalSize = Number(m[1]);
      else this.nextSize = Number(m[1]);
    }
    this.pax = undefined;
  }
}

/**
 * Passes a tar stream through up to its end-of-archive marker (two zero
 * blocks where a header is due) and no further: tar-stream skips zero
 * blocks and would read an endless input (/dev/zero) for ever. Entry data
 * is skipped by the header's size (or its pax record's), so no content is
 * parsed here.
 */
export class TarEnd extends Transform {
  private readonly framer = new TarFramer();
  /** Past the end marker and a generous allowance for padding and a compressor's trailer: stop reading. */
  finished = false;
  private trailing = 0;

  get ended() {
    return this.framer.ended;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    if (this.framer.ended) {
      this.trailing += chunk.length;
      if (this.trailing > 1 << 20) this.finished = true;
      return cb();
    }
    const n = this.framer.take(chunk);
    this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (this.framer.ended) {
      this.push(null);
      this.trailing += chunk.length - n;
    }
    cb();
  }
}

/**
 * A file's bytes, stopping early once `stop()` says so: an endless input
 * (/dev/zero, a pipe that never closes) ends where its tar does.
 */
export async function* readUntil(file: string, stop: () => boolean, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(file, 'r');
  try {
    let total = 0;
    while (!stop()) {
      const buf = Buffer.allocUnsafe(1 << 20);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (!bytesRead) return;
      onBytes?.((total += bytesRead));
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** The size field of a tar header: octal, or base-256 when its high bit is set. */
function tarSize(h: Buffer): number {
  if (h[124] & 0x80) {
    let n = h[124] & 0x7f;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return n;
  }
  const text = h.toString('latin1', 124, 136).replace(/[\0 ]+$/, '').trim();
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : 0;
}

/** Reads a small file (a manifest, a config) with a bound on its size. */
export function readBounded(file: string, max: number, what: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new TsrunError(`${what}: not a regular file`);
    if (st.size > max) throw new TsrunError(`${what}: ${st.size} bytes, more than the ${max} this runtime reads`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Thrown for an entry the unpacker (or an archive reader) refuses. */
export function isRefused(e: unknown): e is Error {
  return e instanceof Refused;
}

type Kind = 'dir' | 'file' | 'symlink' | 'other';

class Refused extends Error {}

/** Longest path the unpacker writes; a longer one could not be reached by path again. */
const PATH_MAX = 4096;
const NAME_MAX = 255;

/** An entry name as an error message may show it: quoted, control characters escaped, cut short. */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}...` : name);
}

/** "./a//b/" -> "a/b"; null for the root itself. Absolute names and ".." are refused. */
export function cleanEntryName(raw: string): string | null {
  if (typeof raw !== 'string') throw new Refused(`entry name ${JSON.stringify(raw)} is not a string`);
  if (raw.startsWith('/')) throw new Refused(`absolute name ${quoteName(raw)}`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new Refused(`${quoteName(raw)} climbs out of the layer with ".."`);
  return parts.length ? parts.join('/') : null;
}

/**
 * What this unpack has made, as a tree: a later entry that replaces a
 * directory drops the directory's subtree here too, and with it the
 * metadata still to be written to it.
 */
interface Made {
  kind: Kind;
  children?: Map<string, Made>;
  /** A directory's own header: its owner, mode, times and xattrs are written last. */
  meta?: TarStream.Header;
}

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;
const O_DIRECTORY = fs.constants.O_DIRECTORY;

class LayerWriter {
  private readonly root: Made = { kind: 'dir', children: new Map() };
  entries = 0;

  constructor(private readonly dest: string) {}

  private abs(rel: string) {
    return rel === '' ? this.dest : path.join(this.dest, rel);
  }

  /** The node of rel's parent, every directory on the way real and made by this unpack. */
  private parents(rel: string, entryName: string): Made {
    if (this.dest.length + 1 + Buffer.byteLength(rel) >= PATH_MAX) throw new Refused(`${quoteName(entryName)} is longer than PATH_MAX (${PATH_MAX} bytes with the layer's directory)`);
    const parts = rel.split('/');
    let node = this.root;
    let prefix = '';
    for (let i = 0; i < parts.length; i++) {
      if (Buffer.byteLength(parts[i]) > NAME_MAX) throw new Refused(`${quoteName(entryName)} has a component longer than NAME_MAX (${NAME_MAX} bytes)`);
      if (i === parts.length - 1) break;
      prefix = prefix ? `${prefix}/${parts[i]}` : parts[i];
      let child = node.children!.get(parts[i]);
      if (child === undefined) {
        fs.mkdirSync(this.abs(prefix), { mode: 0o755 });
        child = { kind: 'dir', children: new Map() };
        node.children!.set(parts[i], child);
      } else if (child.kind === 'symlink') {
        throw new Refused(`${quoteName(entryName)} would be written through the symlink ${quoteName(prefix)} (-> ${quoteName(fs.readlinkSync(this.abs(prefix)))})`);
      } else if (child.kind !== 'dir') {
        throw new Refused(`${quoteName(entryName)}: its parent ${quoteName(prefix)} is not a directory`);
      }
      node = child;
    }
    return node;
  }

  private lookup(rel: string): Made | undefined {
    let node: Made | undefined = this.root;
    for (const part of rel.split('/')) {
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  /** A later entry for the same path replaces the earlier one (directories merge). */
  private replace(parent: Made, base: string, rel: string, newKind: Kind) {
    const old = parent.children!.get(base);
    if (old === undefined) return;
    if (old.kind === 'dir' && newKind === 'dir') return;
    if (old.kind === 'dir') native().removeTree(this.abs(rel));
    else fs.unlinkSync(this.abs(rel));
    parent.children!.delete(base);
  }

  async entry(header: TarStream.Header, body: AsyncIterable<Buffer>) {
    this.entries++;
    const rel = cleanEntryName(header.name);
    if (rel === null) {
      if (header.type === 'directory') this.root.meta = header;
      return drain(body);
    }
    ownerFromPax(header);
    for (const [what, id] of [['uid', header.uid], ['gid', header.gid]] as const) {
      // chown(2) takes -1 as "unchanged": a setuid file of 4294967295 would stay root's.
      if (id !== undefined && id !== null && !(Number.isInteger(id) && id >= 0 && id <= MAX_ID)) throw new Refused(`${quoteName(header.name)} has ${what} ${id}, outside 0-${MAX_ID}`);
    }
    const base = path.posix.basename(rel);
    if (base.startsWith('.wh.')) return this.whiteout(rel, base, header, body);
    const parent = this.parents(rel, header.name);
    const abs = this.abs(rel);
    switch (header.type) {
      case 'directory': {
        this.replace(parent, base, rel, 'dir');
        let node = parent.children!.get(base);
        if (!node) {
          fs.mkdirSync(abs, { mode: 0o700 });
          node = { kind: 'dir', children: new Map() };
          parent.children!.set(base, node);
        }
        // The last header for a directory wins, as tar has it.
        node.meta = header;
        return drain(body);
      }
      case 'file':
      case 'contiguous-file': {
        this.replace(parent, base, rel, 'file');
        const fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600);
        try {
          await writeAll(fd, body);
          this.fdMeta(fd, header, 0o644);
        } finally {
          fs.closeSync(fd);
        }
        parent.children!.set(base, { kind: 'file' });
        return;
      }
      case 'symlink': {
        this.replace(parent, base, rel, 'symlink');
        fs.symlinkSync(header.linkname ?? '', abs);
        this.nodeMeta(abs, header);
        parent.children!.set(base, { kind: 'symlink' });
        return drain(body);
      }
      case 'link': {
        const target = cleanEntryName(header.linkname ?? '');
        const node = target === null ? this.root : this.lookup(target);
        if (target === null || node === undefined) throw new Refused(`hardlink ${quoteName(header.name)} points at ${quoteName(header.linkname ?? '')}, which is not an earlier entry of this layer`);
        if (node.kind === 'dir') throw new Refused(`hardlink ${quoteName(header.name)} points at the directory ${quoteName(header.linkname ?? '')}`);
        this.replace(parent, base, rel, node.kind);
        // link(2) does not follow a symlink it is given: the new name is the link itself.
        fs.linkSync(this.abs(target), abs);
        parent.children!.set(base, { kind: node.kind });
        return drain(body);
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        this.replace(parent, base, rel, 'other');
        if (header.type === 'fifo') native().mkfifo(abs, 0o600);
        else native().mknod(abs, (header.type === 'block-device' ? S_IFBLK : S_IFCHR) | 0o600, header.devmajor ?? 0, header.devminor ?? 0);
        parent.children!.set(base, { kind: 'other' });
        this.nodeMeta(abs, header);
        native().lchmod(abs, (header.mode ?? 0o644) & 0o7777);
        return drain(body);
      }
      default:
        // Sparse files, volume labels and the like do not occur in image layers.
        throw new Refused(`${quoteName(header.name)} has an entry type this unpacker does not take (${header.type})`);
    }
  }

  /** Owner, mode (after chown, which clears setuid and setgid), xattrs and times, through the entry's own fd. */
  private fdMeta(fd: number, header: TarStream.Header, defaultMode: number) {
    fs.fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
    fs.fchmodSync(fd, (header.mode ?? defaultMode) & 0o7777);
    this.xattrs(header, (name, value) => native().fsetxattr(fd, name, value, 0));
    const t = mtimeOf(header);
    fs.futimesSync(fd, t, t);
  }

  /** Owner, xattrs and times of a node just made, on the node itself (l* calls). */
  private nodeMeta(abs: string, header: TarStream.Header) {
    fs.lchownSync(abs, header.uid ?? 0, header.gid ?? 0);
    this.xattrs(header, (name, value) => native().lsetxattr(abs, name, value, 0));
    const t = mtimeOf(header);
    fs.lutimesSync(abs, t, t);
  }

  private async whiteout(rel: string, base: string, header: TarStream.Header, body: AsyncIterable<Buffer>) {
    await drain(body);
    // The parent itself must be a directory of this layer, reached without symlinks.
    const parent = this.parents(rel, header.name);
    const parentRel = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    if (base === '.wh..wh..opq') {
      // Opaque: nothing from lower layers shows through this directory.
      native().lsetxattr(this.abs(parentRel), 'trusted.overlay.opaque', Buffer.from('y'), 0);
      return;
    }
    if (base.startsWith('.wh..wh.')) return; // aufs bookkeeping, not a whiteout
    const name = base.slice('.wh.'.length);
    if (name === '' || name === '.' || name === '..') throw new Refused(`whiteout ${quoteName(header.name)} names nothing`);
    const target = parentRel ? `${parentRel}/${name}` : name;
    this.replace(parent, name, target, 'other');
    // overlayfs hides a lower file under a 0/0 character device of the same name.
    native().mknod(this.abs(target), S_IFCHR, 0, 0);
    parent.children!.set(name, { kind: 'other' });
  }

  private xattrs(header: TarStream.Header, set: (name: string, value: Buffer) => void) {
    const pax = header.pax as Record<string, string> | null | undefined;
    if (!pax) return;
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith('SCHILY.xattr.')) continue;
      set(key.slice('SCHILY.xattr.'.length), Buffer.from(value, 'latin1'));
    }
  }

  /**
   * Directory metadata last, children before parents (writing a child
   * changes its parent's mtime). Each directory is opened beneath the layer
   * with no symlink on the way, and written through its fd.
   */
  finish() {
    const pending: [string, TarStream.Header][] = [];
    const stack: [string, Made][] = [['', this.root]];
    while (stack.length) {
      const [rel, node] = stack.pop()!;
      if (node.meta) pending.push([rel, node.meta]);
      for (const [name, child] of node.children ?? []) if (child.kind === 'dir') stack.push([rel ? `${rel}/${name}` : name, child]);
    }
    if (!pending.length) return;
    const destFd = fs.openSync(this.dest, fs.constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      for (const [rel, header] of pending.reverse()) {
        const fd = rel === '' ? fs.openSync(this.dest, fs.constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : native().openat2(destFd, rel, fs.constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        try {
          this.fdMeta(fd, header, 0o755);
        } finally {
          fs.closeSync(fd);
        }
      }
    } finally {
      fs.closeSync(destFd);
    }
  }
}

/**
 * Owners as pax records give them (tar writes ids past the ustar field's
 * 2097151 there); tar-stream reads only path, linkpath and size from pax.
 */
function ownerFromPax(header: TarStream.Header) {
  const pax = header.pax as Record<string, string> | null | undefined;
  for (const key of ['uid', 'gid'] as const) {
    const v = pax?.[key];
    if (v !== undefined) header[key] = /^\d+$/.test(v) ? Number(v) : NaN;
  }
}

function mtimeOf(header: TarStream.Header): number {
  const pax = (header.pax as Record<string, string> | null | undefined)?.mtime;
  if (pax && /^\d+(\.\d+)?$/.test(pax)) return Number(pax);
  return header.mtime ? header.mtime.getTime() / 1000 : 0;
}

/** Batches gathered before a write: fewer system calls, and big ones go to libuv's threads. */
const WRITE_BATCH = 1 << 20;

/**
 * A file's body into fd. Small files are written in one synchronous call;
 * larger ones in batches off the event loop, so that other layers'
 * downloads and decompression go on while the disk takes them.
 */
async function writeAll(fd: number, body: AsyncIterable<Buffer>) {
  let batch: Buffer[] = [];
  let size = 0;
  let async = false;
  for await (const chunk of body) {
    batch.push(chunk);
    size += chunk.length;
    if (size < WRITE_BATCH) continue;
    async = true;
    await writev(fd, batch);
    batch = [];
    size = 0;
  }
  if (!batch.length) return;
  if (async) await writev(fd, batch);
  else fs.writevSync(fd, batch);
}

function writev(fd: number, chunks: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    fs.writev(fd, chunks, (err, written) => {
      if (err) return reject(err);
      // A short write (a full disk reports ENOSPC on the next call): the rest goes again.
      if (written < total) return writev(fd, [Buffer.concat(chunks).subarray(written)]).then(resolve, reject);
      resolve();
    });
  });
}

async function drain(body: AsyncIterable<Buffer>) {
  for await (const _ of body) void _;
}

/**
 * Unpacks the layer blob at file into dest, which must not exist. On any
 * failure dest is removed and the error names the layer and the reason.
 */
export function unpackLayer(file: string, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  return unpackStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }), dest, { ...opts, label: opts.label ?? path.basename(file) });
}

/** The first bytes of a stream (enough to tell its compression), and the stream whole again. */
async function sniff(source: AsyncIterable<Buffer>): Promise<{ head: Buffer; whole: Readable }> {
  const it = source[Symbol.asyncIterator]();
  const first: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < 4) {
    const next = await it.next();
    if (next.done) {
      ended = true;
      break;
    }
    first.push(next.value);
    size += next.value.length;
  }
  const head = Buffer.concat(first);
  async function* again() {
    yield head;
    if (ended) return;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
  }
  const whole = Readable.from(again(), { objectMode: false });
  // A destroyed copy (a refused entry) stops the source too: a download ends with it.
  whole.once('close', () => void it.return?.());
  return { head, whole };
}

/**
 * Unpacks a layer blob's bytes as they come (a file, or a download still
 * under way) into dest, which must not exist; both digests are checked
 * while it streams. On any failure dest is removed and the error names the
 * layer and the reason.
 */
export async function unpackStream(source: AsyncIterable<Buffer>, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const label = opts.expectDigest ?? opts.expectDiffID ?? opts.label ?? 'stream';
  fs.mkdirSync(dest, { mode: 0o755 });
  let compression: Compression = 'none';
  const writer = new LayerWriter(dest);
  const tapCompressed = new HashTap(opts.onProgress);
  const tapPlain = new HashTap();
  const extract = tarStream().extract();
  let whole: Readable | undefined;
  try {
    const sniffed = await sniff(source);
    whole = sniffed.whole;
    const head = sniffed.head;
    compression = detectCompression(head);
    const flow = pipeline(whole, tapCompressed, decompressor(compression), tapPlain, extract);
    const consume = (async () => {
      for await (const entry of extract) await writer.entry(entry.header, entry as AsyncIterable<Buffer>);
    })();
    // If the writer refuses an entry, stop the stream too.
    consume.catch((e) => extract.destroy(e));
    await Promise.all([flow, consume]);
    writer.finish();
  } catch (e) {
    // The source ends with the unpack, whatever stopped it (its download, too).
    whole?.destroy();
    native().removeTree(dest);
    if (e instanceof TsrunError) throw e;
    const why = e instanceof Refused ? `refused: ${e.message}` : (e as NodeJS.ErrnoException).code ? `${(e as Error).message}` : `corrupt or truncated ${compression === 'none' ? 'tar' : compression} stream: ${(e as Error).message}`;
    throw new TsrunError(`unpack layer ${label}: ${why}`);
  }
  const digest: Digest = `sha256:${tapCompressed.hash.digest('hex')}`;
  const diffID: Digest = `sha256:${tapPlain.hash.digest('hex')}`;
  const mismatch = (what: string, want: string, got: string) => {
    native().removeTree(dest);
    return new TsrunError(`unpack layer ${label}: ${what} mismatch: expected ${want}, got ${got}`);
  };
  if (opts.expectDigest && opts.expectDigest !== digest) throw mismatch('digest', opts.expectDigest, digest);
  if (opts.expectDiffID && opts.expectDiffID !== diffID) throw mismatch('diffID', opts.expectDiffID, diffID);
  return { digest, diffID, compressedSize: tapCompressed.bytes, size: tapPlain.bytes, entries: writer.entries };
}

/** One entry for writeTree: a tar header and its body (empty but for regular files). */
export interface TreeEntry {
  header: TarStream.Header;
  body: AsyncIterable<Buffer>;
}

/**
 * Writes entries into dest, an empty directory private to the caller, with
 * the unpacker's rules: nothing lands outside it, nothing is written through
 * a symlink, every metadata write acts on the entry itself. Returns how many
 * entries were written; on failure dest's contents are left to the caller.
 */
export async function writeTree(dest: string, entries: AsyncIterable<TreeEntry>, label: string): Promise<number> {
  const writer = new LayerWriter(dest);
  try {
    for await (const e of entries) await writer.entry(e.header, e.body);
    writer.finish();
  } catch (e) {
    const why = e instanceof Refused ? `refused: ${e.message}` : (e as Error).message;
    throw new TsrunError(`${label}: ${why}`);
  }
  return writer.entries;
}
