// The image store (default /var/lib/tsrun): blobs by digest, each layer
// unpacked once into a directory keyed by its diffID, image records by name.
//
//   blobs/sha256/<hex>          manifests, configs, layer blobs as received
//   layers/<hex>/diff           an unpacked layer (hex of its diffID)
//   layers/<hex>/link           its short name; l/<short> -> ../layers/<hex>/diff
//   images.json                 image records, changed only under the lock
//   tmp/                        half-done work, renamed into place when complete
//   ingest/<hex>                the part of a blob a broken-off pull received
//   build-cache/<hex>.json      a build step's resulting config and layers, by its cache key
import { crypto } from '../lazy';
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { withFileLock } from '../file-lock';
import { LOCK_EX, LOCK_NB, LOCK_UN, native } from '../native';
import { digestHex, sha256, type Digest } from './digest';
import { formatReference, parseReference } from './reference';
import type { Descriptor, ImageConfig, Manifest } from './types';
import { unpackLayer, unpackStream, type UnpackResult } from './unpack';

export const DEFAULT_STORAGE = '/var/lib/tsrun';

/** The most a manifest, index or config blob may hold. */
export const MAX_JSON_BLOB_BYTES = 16 << 20;

export interface ImageRecord {
  /** The config digest: the image id, as Docker has it. */
  id: Digest;
  names: string[];
  /** The manifest `get` reads (the first this store was given). */
  manifestDigest: Digest;
  /**
   * Every manifest known for this config: one image loaded as an
   * oci-archive and as a docker-archive has two (compressed and plain
   * layers), and stays one image with several names.
   */
  manifests?: Digest[];
  /** repository@sha256:... where a registry gave or took it. */
  repoDigests?: string[];
  created: string;
  /** When the record was made here. */
  loaded: string;
}

export interface Image {
  record: ImageRecord;
  manifest: Manifest;
  config: ImageConfig;
}

export interface LayerInfo {
  diffID: Digest;
  dir: string;
  /** Short name under l/, for mount options that would be too long with full paths. */
  link: string;
}

export class ImageStore {
  readonly root: string;

  constructor(root: string = process.env.TSRUN_STORAGE ?? DEFAULT_STORAGE) {
    this.root = path.resolve(root);
  }

  private ensure() {
    for (const d of ['blobs/sha256', 'layers', 'l', 'tmp', 'ingest', 'containers', 'locks']) fs.mkdirSync(path.join(this.root, d), { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string) {
    return path.join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  hasBlob(digest: string) {
    return fs.existsSync(this.blobPath(digest));
  }

  tmpPath(prefix: string) {
    this.ensure();
    return path.join(this.root, 'tmp', `${prefix}-${process.pid}-${crypto().randomBytes(6).toString('hex')}`);
  }

  /** Stores bytes as a blob; returns its digest. */
  writeBlob(data: Buffer | string): Digest {
    const digest = sha256(data);
    if (!this.hasBlob(digest)) {
      const tmp = this.tmpPath('blob');
      fs.writeFileSync(tmp, data, { mode: 0o600 });
      fs.renameSync(tmp, this.blobPath(digest));
    }
    return digest;
  }

  /**
   * Where a download of this blob keeps what it has so far: a pull that
   * breaks off leaves it, and the next one asks only for the rest.
   */
  ingestPath(digest: string) {
    this.ensure();
    return path.join(this.root, 'ingest', digestHex(digest));
  }

  /** Moves a file already verified to have this digest into the store. */
  adoptBlob(file: string, digest: string) {
    this.ensure();
    if (this.hasBlob(digest)) {
      fs.rmSync(file, { force: true });
      return;
    }
    fs.renameSync(file, this.blobPath(digest));
  }

  readBlob(digest: string): Buffer {
    try {
      return fs.readFileSync(this.blobPath(digest));
    } catch (e) {
      throw new TsrunError(`read blob ${digest} from ${this.root}: ${(e as NodeJS.ErrnoException).code}`);
    }
  }

  /** A manifest, index or config blob; bounded, since a hostile one could be any size. */
  readJson<T>(digest: string): T {
    let size = 0;
    try {
      size = fs.statSync(this.blobPath(digest)).size;
    } catch {
      /* readBlob says why */
    }
    if (size > MAX_JSON_BLOB_BYTES) throw new TsrunError(`blob ${digest} in ${this.root}: ${size} bytes, more than the ${MAX_JSON_BLOB_BYTES} a manifest or config may have`);
    const data = this.readBlob(digest);
    if (sha256(data) !== digest) throw new TsrunError(`blob ${digest} in ${this.root} is corrupt: its content has digest ${sha256(data)}`);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch (e) {
      throw new TsrunError(`blob ${digest}: not valid JSON (${(e as Error).message})`);
    }
  }

  /** Runs fn holding the store's lock (an flock on a file), across processes. */
  locked<T>(fn: () => T, name = 'lock'): T {
    this.ensure();
    const fd = fs.openSync(path.join(this.root, name), 'a');
    native().flock(fd, LOCK_EX);
    try {
      return fn();
    } finally {
      native().flock(fd, LOCK_UN);
      fs.closeSync(fd);
    }
  }

  lockedAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.ensure();
    return withFileLock(path.join(this.root, name), fn, 20);
  }

  /** The image records; records of one id (from stores older than this rule) are merged. */
  records(): ImageRecord[] {
    let raw: ImageRecord[];
    try {
      raw = (JSON.parse(fs.readFileSync(path.join(this.root, 'images.json'), 'utf8')) as { images: ImageRecord[] }).images;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new TsrunError(`read ${path.join(this.root, 'images.json')}: ${(e as Error).message}`);
    }
    const byId = new Map<string, ImageRecord>();
    for (const r of raw) {
      const seen = byId.get(r.id);
      if (!seen) {
        byId.set(r.id, { ...r, manifests: [...new Set([r.manifestDigest, ...(r.manifests ?? [])])] });
        continue;
      }
      seen.names = [...new Set([...seen.names, ...r.names])];
      seen.manifests = [...new Set([...seen.manifests!, r.manifestDigest, ...(r.manifests ?? [])])];
      seen.repoDigests = [...new Set([...(seen.repoDigests ?? []), ...(r.repoDigests ?? [])])];
    }
    return [...byId.values()];
  }

  private writeRecords(images: ImageRecord[]) {
    const file = path.join(this.root, 'images.json');
    const tmp = this.tmpPath('images');
    fs.writeFileSync(tmp, JSON.stringify({ images }, null, 2) + '\n');
    fs.renameSync(tmp, file);
  }

  /**
   * Records an image (blobs already stored) under names, taking the names
   * from any other image. An image is its config: a second manifest for the
   * same config joins the record already there.
   */
  addImage(manifestDigest: Digest, names: string[], opts: { repoDigest?: string } = {}): ImageRecord {
    const manifest = this.readJson<Manifest>(manifestDigest);
    const config = this.readJson<ImageConfig>(manifest.config.digest);
    for (const l of manifest.layers) if (!this.hasBlob(l.digest)) throw new TsrunError(`image ${manifestDigest}: layer blob ${l.digest} is missing`);
    const full = names.map((n) => formatReference(parseReference(n)));
    return this.locked(() => {
      const images = this.records();
      for (const other of images) other.names = other.names.filter((n) => !full.includes(n));
      let rec = images.find((r) => r.id === manifest.config.digest);
      if (!rec) {
        rec = { id: manifest.config.digest as Digest, names: [], manifestDigest, manifests: [manifestDigest], created: config.created ?? '', loaded: new Date().toISOString() };
        images.push(rec);
      }
      rec.manifests = [...new Set([...(rec.manifests ?? [rec.manifestDigest]), manifestDigest])];
      rec.names = [...new Set([...rec.names, ...full])];
      if (opts.repoDigest) rec.repoDigests = [...new Set([...(rec.repoDigests ?? []), opts.repoDigest])];
      // An image whose last name moved here stays, nameless (Docker's dangling <none>), until rmi or image prune.
      this.writeRecords(images);
      return rec;
    });
  }

  /** Finds an image by name, full or short id, or digest. */
  find(text: string): ImageRecord | undefined {
    const images = this.records();
    const id = text.startsWith('sha256:') ? text : `sha256:${text}`;
    if (/^sha256:[a-f0-9]{4,64}$/.test(id)) {
      const byId = images.filter((r) => r.id.startsWith(id) || (r.manifests ?? [r.manifestDigest]).some((m) => m.startsWith(id)));
      if (byId.length === 1) return byId[0];
      if (byId.length > 1) throw new TsrunError(`image id prefix "${text}" is ambiguous`);
    }
    let ref;
    try {
      ref = parseReference(text);
    } catch {
      return undefined;
    }
    // name@sha256:... pins the manifest: the repository must be one of the image's.
    if (ref.digest) return images.find((r) => ((r.manifests ?? [r.manifestDigest]).includes(ref.digest as Digest) && r.names.some((n) => n.startsWith(`${ref.repository}:`) || n.startsWith(`${ref.repository}@`))) || (r.repoDigests ?? []).includes(`${ref.repository}@${ref.digest}`));
    const full = formatReference(ref);
    return images.find((r) => r.names.includes(full));
  }

  get(text: string): Image {
    const record = this.find(text);
    if (!record) throw new TsrunError(`image "${text}" not found in ${this.root}: load it with \`tsrun load -i FILE\` or \`tsrun import\``);
    const manifest = this.readJson<Manifest>(record.manifestDigest);
    const config = this.readJson<ImageConfig>(manifest.config.digest);
    return { record, manifest, config };
  }

  /** Drops an image's record (all its names); returns it. Its blobs and layers are the caller's to release. */
  removeImage(id: Digest): ImageRecord | undefined {
    return this.locked(() => {
      const images = this.records();
      const gone = images.find((r) => r.id === id);
      this.writeRecords(images.filter((r) => r.id !== id));
      return gone;
    });
  }

  /** Removes one name; returns the record if that was its last name (the record is then gone). */
  untag(name: string): ImageRecord | undefined {
    const full = formatReference(parseReference(name));
    return this.locked(() => {
      const images = this.records();
      let emptied: ImageRecord | undefined;
      for (const r of images) {
        if (!r.names.includes(full)) continue;
        r.names = r.names.filter((n) => n !== full);
        if (!r.names.length) emptied = r;
      }
      this.writeRecords(images.filter((r) => r !== emptied));
      return emptied;
    });
  }

  layerDir(diffID: string) {
    return path.join(this.root, 'layers', digestHex(diffID));
  }

  /** True when the layer with this diffID is unpacked. */
  hasLayer(diffID: string) {
    return fs.existsSync(path.join(this.layerDir(diffID), 'link'));
  }

  /**
   * The layer directory for one of an image's layers, unpacking the blob if
   * no process has yet. A per-layer lock makes concurrent callers wait for
   * one unpack; the unpack goes to tmp/ and is renamed into place whole.
   */
  layer(desc: Descriptor, diffID: string, onProgress?: (bytes: number) => void, onUnpacked?: (r: UnpackResult) => void): Promise<LayerInfo> {
    return this.unpackedLayer(diffID, (dest) => unpackLayer(this.blobPath(desc.digest), dest, { expectDigest: desc.digest, expectDiffID: diffID, onProgress }), onUnpacked);
  }

  /** As layer(), with the blob's bytes as they come (a download under way) instead of its file. */
  layerFrom(desc: Descriptor, diffID: string, source: AsyncIterable<Buffer>): Promise<LayerInfo> {
    return this.unpackedLayer(diffID, (dest) => unpackStream(source, dest, { expectDigest: desc.digest, expectDiffID: diffID }));
  }

  private async unpackedLayer(diffID: string, unpack: (dest: string) => Promise<UnpackResult>, onUnpacked?: (r: UnpackResult) => void): Promise<LayerInfo> {
    const dir = this.layerDir(diffID);
    const info = (): LayerInfo => ({ diffID: diffID as Digest, dir: path.join(dir, 'diff'), link: fs.readFileSync(path.join(dir, 'link'), 'utf8').trim() });
    if (this.hasLayer(diffID)) return info();
    return this.lockedAsync(`layers/${digestHex(diffID)}.lock`, async () => {
      if (this.hasLayer(diffID)) return info();
      const tmp = this.tmpPath('layer');
      fs.mkdirSync(tmp, { mode: 0o700 });
      try {
        const result = await unpack(path.join(tmp, 'diff'));
        const link = crypto().createHash('sha256').update(diffID).digest('base64url').slice(0, 12);
        fs.writeFileSync(path.join(tmp, 'link'), link + '\n');
        fs.writeFileSync(path.join(tmp, 'size'), String(result.size));
        fs.rmSync(path.join(this.root, 'l', link), { force: true });
        fs.symlinkSync(path.join('..', 'layers', digestHex(diffID), 'diff'), path.join(this.root, 'l', link));
        fs.renameSync(tmp, dir);
        onUnpacked?.(result);
      } catch (e) {
        native().removeTree(tmp);
        throw e;
      }
      return info();
    });
  }

  unpackedLayers(): string[] {
    try {
      return fs.readdirSync(path.join(this.root, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d));
    } catch {
      return [];
    }
  }

  removeLayer(hex: string) {
    const dir = path.join(this.root, 'layers', hex);
    try {
      const link = fs.readFileSync(path.join(dir, 'link'), 'utf8').trim();
      fs.rmSync(path.join(this.root, 'l', link), { force: true });
    } catch {
      /* never finished */
    }
    native().removeTree(dir);
    fs.rmSync(`${dir}.lock`, { force: true });
  }

  /**
   * Removes what tsrun processes that no longer exist left half-done in
   * tmp/ (a load or unpack killed part way). Each name carries its maker's
   * pid; a live maker keeps its work.
   */
  removeStaleTemporaries(): number {
    let dir: string[];
    try {
      dir = fs.readdirSync(path.join(this.root, 'tmp'));
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of dir) {
      const m = /^[a-z]+-(\d+)-[0-9a-f]+$/.exec(name);
      if (m && fs.existsSync(`/proc/${m[1]}`)) continue;
      native().removeTree(path.join(this.root, 'tmp', name));
      removed++;
    }
    // Partial downloads, but for one a pull is writing now (it holds the blob's lock).
    for (const hex of this.list('ingest')) {
      const fd = fs.openSync(path.join(this.root, 'locks', `blob-${hex}`), 'a');
      try {
        if (!native().flock(fd, LOCK_EX | LOCK_NB)) continue;
        fs.rmSync(path.join(this.root, 'ingest', hex), { force: true });
        removed++;
      } finally {
        fs.closeSync(fd);
      }
    }
    return removed;
  }

  private list(dir: string): string[] {
    try {
      return fs.readdirSync(path.join(this.root, dir));
    } catch {
      return [];
    }
  }

  /** The build cache: a file per step key, holding the image state after that step. */
  buildCacheDir() {
    return path.join(this.root, 'build-cache');
  }

  containersDir() {
    this.ensure();
    return path.join(this.root, 'containers');
  }
}
