// A layer tarball into a directory, as hostile input: no entry may land
// outside the directory, and both digests are checked while streaming.
//
// The directory is new and private to this unpack, so every path in it was
// made by an earlier entry of the same tarball: the unpacker keeps a map of
// what it made and refuses to write through a symlink it made, or to
// hardlink to anything outside that map. Whiteouts become overlay whiteouts.
import { crypto } from '../lazy';
import fs = require('node:fs');
import path = require('node:path');
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as TarStream from 'tar-stream';
import { TsrunError } from '../errors';
import { native } from '../native';
import { S_IFCHR, S_IFBLK } from '../rootfs/devices';
import type { Digest } from './digest';

// Loaded on first use: most commands never read a tar, and start-up is paid by every command.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tarStream = () => require('tar-stream') as typeof TarStream;

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

type Kind = 'dir' | 'file' | 'symlink' | 'other';

class Refused extends Error {}

/** "./a//b/" -> "a/b"; null for the root itself. Absolute names and ".." are refused. */
export function cleanEntryName(raw: string): string | null {
  if (raw.startsWith('/')) throw new Refused(`absolute name "${raw}"`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new Refused(`"${raw}" climbs out of the layer with ".."`);
  return parts.length ? parts.join('/') : null;
}

class LayerWriter {
  private readonly known = new Map<string, Kind>([['', 'dir']]);
  private readonly dirMeta: { abs: string; header: TarStream.Header }[] = [];
  entries = 0;

  constructor(private readonly dest: string) {}

  private abs(rel: string) {
    return rel === '' ? this.dest : path.join(this.dest, rel);
  }

  /** Makes sure every parent of rel is a real directory made by this unpack. */
  private parents(rel: string, entryName: string) {
    const parts = rel.split('/');
    let prefix = '';
    for (let i = 0; i < parts.length - 1; i++) {
      prefix = prefix ? `${prefix}/${parts[i]}` : parts[i];
      const kind = this.known.get(prefix);
      if (kind === undefined) {
        fs.mkdirSync(this.abs(prefix), { mode: 0o755 });
        this.known.set(prefix, 'dir');
      } else if (kind === 'symlink') {
        throw new Refused(`"${entryName}" would be written through the symlink "${prefix}" (-> ${fs.readlinkSync(this.abs(prefix))})`);
      } else if (kind !== 'dir') {
        throw new Refused(`"${entryName}": its parent "${prefix}" is not a directory`);
      }
    }
  }

  /** A later entry for the same path replaces the earlier one (directories merge). */
  private replace(rel: string, newKind: Kind) {
    const old = this.known.get(rel);
    if (old === undefined) return;
    if (old === 'dir' && newKind === 'dir') return;
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
    for (const k of [...this.known.keys()]) if (k === rel || k.startsWith(rel + '/')) this.known.delete(k);
  }

  async entry(header: TarStream.Header, body: AsyncIterable<Buffer>) {
    this.entries++;
    const rel = cleanEntryName(header.name);
    if (rel === null) {
      if (header.type === 'directory') this.dirMeta.push({ abs: this.dest, header });
      return drain(body);
    }
    const base = path.posix.basename(rel);
    const parent = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    if (base.startsWith('.wh.')) return this.whiteout(rel, parent, base, header, body);
    this.parents(rel, header.name);
    const abs = this.abs(rel);
    switch (header.type) {
      case 'directory':
        this.replace(rel, 'dir');
        if (!this.known.has(rel)) fs.mkdirSync(abs, { mode: 0o700 });
        this.known.set(rel, 'dir');
        this.dirMeta.push({ abs, header });
        return drain(body);
      case 'file':
      case 'contiguous-file': {
        this.replace(rel, 'file');
        const fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of body) fs.writeSync(fd, chunk);
          fs.fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
          // After chown, which clears setuid and setgid.
          fs.fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
          this.xattrs(abs, header);
          const t = mtimeOf(header);
          fs.futimesSync(fd, t, t);
        } finally {
          fs.closeSync(fd);
        }
        this.known.set(rel, 'file');
        return;
      }
      case 'symlink': {
        this.replace(rel, 'symlink');
        fs.symlinkSync(header.linkname ?? '', abs);
        fs.lchownSync(abs, header.uid ?? 0, header.gid ?? 0);
        this.xattrs(abs, header);
        const t = mtimeOf(header);
        fs.lutimesSync(abs, t, t);
        this.known.set(rel, 'symlink');
        return drain(body);
      }
      case 'link': {
        const target = cleanEntryName(header.linkname ?? '');
        const kind = target === null ? 'dir' : this.known.get(target);
        if (target === null || kind === undefined) throw new Refused(`hardlink "${header.name}" points at "${header.linkname}", which is not an earlier entry of this layer`);
        if (kind === 'dir') throw new Refused(`hardlink "${header.name}" points at the directory "${header.linkname}"`);
        this.replace(rel, kind);
        fs.linkSync(this.abs(target), abs);
        this.known.set(rel, kind);
        return drain(body);
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        this.replace(rel, 'other');
        const mode = (header.mode ?? 0o644) & 0o7777;
        if (header.type === 'fifo') native().mkfifo(abs, 0o600);
        else native().mknod(abs, (header.type === 'block-device' ? S_IFBLK : S_IFCHR) | 0o600, header.devmajor ?? 0, header.devminor ?? 0);
        fs.lchownSync(abs, header.uid ?? 0, header.gid ?? 0);
        fs.chmodSync(abs, mode);
        this.xattrs(abs, header);
        const t = mtimeOf(header);
        fs.lutimesSync(abs, t, t);
        this.known.set(rel, 'other');
        return drain(body);
      }
      default:
        // Sparse files, volume labels and the like do not occur in image layers.
        throw new Refused(`"${header.name}" has an entry type this unpacker does not take (${header.type})`);
    }
  }

  private async whiteout(rel: string, parent: string, base: string, header: TarStream.Header, body: AsyncIterable<Buffer>) {
    await drain(body);
    // The parent itself must be a directory of this layer, reached without symlinks.
    this.parents(parent ? `${parent}/x` : 'x', header.name);
    if (parent && this.known.get(parent) === undefined) {
      fs.mkdirSync(this.abs(parent), { mode: 0o755 });
      this.known.set(parent, 'dir');
    }
    if (parent && this.known.get(parent) !== 'dir') throw new Refused(`whiteout "${header.name}": "${parent}" is not a directory`);
    if (base === '.wh..wh..opq') {
      // Opaque: nothing from lower layers shows through this directory.
      native().lsetxattr(this.abs(parent), 'trusted.overlay.opaque', Buffer.from('y'), 0);
      return;
    }
    if (base.startsWith('.wh..wh.')) return; // aufs bookkeeping, not a whiteout
    const name = base.slice('.wh.'.length);
    if (name === '' || name === '.' || name === '..') throw new Refused(`whiteout "${header.name}" names nothing`);
    const target = parent ? `${parent}/${name}` : name;
    this.replace(target, 'other');
    // overlayfs hides a lower file under a 0/0 character device of the same name.
    native().mknod(this.abs(target), S_IFCHR, 0, 0);
    this.known.set(target, 'other');
    void rel;
  }

  private xattrs(abs: string, header: TarStream.Header) {
    const pax = header.pax as Record<string, string> | null | undefined;
    if (!pax) return;
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith('SCHILY.xattr.')) continue;
      native().lsetxattr(abs, key.slice('SCHILY.xattr.'.length), Buffer.from(value, 'latin1'), 0);
    }
  }

  /** Directory metadata last, deepest first: writing children changes mtimes. */
  finish() {
    for (const { abs, header } of this.dirMeta.reverse()) {
      fs.lchownSync(abs, header.uid ?? 0, header.gid ?? 0);
      fs.chmodSync(abs, (header.mode ?? 0o755) & 0o7777);
      this.xattrs(abs, header);
      const t = mtimeOf(header);
      fs.lutimesSync(abs, t, t);
    }
  }
}

function mtimeOf(header: TarStream.Header): number {
  const pax = (header.pax as Record<string, string> | null | undefined)?.mtime;
  if (pax && /^\d+(\.\d+)?$/.test(pax)) return Number(pax);
  return header.mtime ? header.mtime.getTime() / 1000 : 0;
}

async function drain(body: AsyncIterable<Buffer>) {
  for await (const _ of body) void _;
}

/**
 * Unpacks the layer blob at file into dest, which must not exist. On any
 * failure dest is removed and the error names the layer and the reason.
 */
export async function unpackLayer(file: string, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const label = opts.expectDigest ?? opts.expectDiffID ?? path.basename(file);
  const compression = detectCompression(readHead(file));
  fs.mkdirSync(dest, { mode: 0o755 });
  const writer = new LayerWriter(dest);
  const tapCompressed = new HashTap(opts.onProgress);
  const tapPlain = new HashTap();
  const extract = tarStream().extract();
  try {
    const flow = pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), tapCompressed, decompressor(compression), tapPlain, extract);
    const consume = (async () => {
      for await (const entry of extract) await writer.entry(entry.header, entry as AsyncIterable<Buffer>);
    })();
    // If the writer refuses an entry, stop the stream too.
    consume.catch((e) => extract.destroy(e));
    await Promise.all([flow, consume]);
    writer.finish();
  } catch (e) {
    fs.rmSync(dest, { recursive: true, force: true });
    const why = e instanceof Refused ? `refused: ${e.message}` : (e as NodeJS.ErrnoException).code ? `${(e as Error).message}` : `corrupt or truncated ${compression === 'none' ? 'tar' : compression} stream: ${(e as Error).message}`;
    throw new TsrunError(`unpack layer ${label}: ${why}`);
  }
  const digest: Digest = `sha256:${tapCompressed.hash.digest('hex')}`;
  const diffID: Digest = `sha256:${tapPlain.hash.digest('hex')}`;
  const mismatch = (what: string, want: string, got: string) => {
    fs.rmSync(dest, { recursive: true, force: true });
    return new TsrunError(`unpack layer ${label}: ${what} mismatch: expected ${want}, got ${got}`);
  };
  if (opts.expectDigest && opts.expectDigest !== digest) throw mismatch('digest', opts.expectDigest, digest);
  if (opts.expectDiffID && opts.expectDiffID !== diffID) throw mismatch('diffID', opts.expectDiffID, diffID);
  return { digest, diffID, compressedSize: tapCompressed.bytes, size: tapPlain.bytes, entries: writer.entries };
}
