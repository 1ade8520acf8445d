// load: images from an oci-archive, a docker-archive (`docker save`,
// `podman save`), or an OCI image layout directory, into the store. Every
// blob is checked against its digest before it is kept.
import fs = require('node:fs');
import path = require('node:path');
import { pipeline } from 'node:stream/promises';
import { TsrunError } from '../errors';
import { native } from '../native';
import { stdinToFile } from './stdin';
import { digestFile, sha256, type Digest } from './digest';
import { progress } from './progress';
import { parseReference, formatReference } from './reference';
import type { ImageRecord, ImageStore } from './store';
import { MEDIA, type Descriptor, type ImageConfig, type Index, type Manifest } from './types';
import { cleanEntryName, decompressor, detectCompression, isRefused, quoteName, readBounded, readHead, readUntil, TarEnd } from './unpack';
import { tarStream } from '../lazy';

/** Bounds on what is read whole into memory (the distribution spec suggests 4 MiB for manifests). */
export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_CONFIG_BYTES = 16 << 20;

// Loaded on first use: most commands never read a tar, and start-up is paid by every command.

/** An image loaded, and the names this load gave it. */
export interface Loaded {
  record: ImageRecord;
  names: string[];
}

/** A directory of an archive's files, by their names in the archive. */
interface ArchiveFiles {
  dir: string;
  /** Archive name -> file on disk (symlinks in the archive already followed). */
  files: Map<string, string>;
}

async function extractArchive(store: ImageStore, file: string, label = file): Promise<ArchiveFiles> {
  const dir = store.tmpPath('load');
  fs.mkdirSync(dir, { mode: 0o700 });
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  const extract = tarStream().extract();
  let n = 0;
  const bar = progress();
  const total = fs.statSync(file).size;
  // Reading stops at the archive's end marker: an endless input ends there too.
  const end = new TarEnd();
  const source = readUntil(file, () => end.finished, (bytes) => bar.update(`loading ${path.basename(file)}`, bytes, total));
  try {
    const flow = pipeline(source, decompressor(detectCompression(readHead(file))), end, extract);
    const consume = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const name = cleanEntryName(h.name);
        if (name !== null && (h.type === 'file' || h.type === 'contiguous-file')) {
          const out = path.join(dir, String(n++));
          await pipeline(entry, fs.createWriteStream(out));
          files.set(name, out);
          continue;
        }
        if (name !== null && (h.type === 'symlink' || h.type === 'link')) {
          // docker save links repeated layers to one copy; resolve inside the archive only.
          const target = h.type === 'link' ? h.linkname ?? '' : path.posix.join(path.posix.dirname(name), h.linkname ?? '');
          const clean = cleanEntryName(target.startsWith('/') ? '..' : target);
          if (clean) links.set(name, clean);
        }
        for await (const _ of entry) void _;
      }
    })();
    consume.catch((e) => extract.destroy(e));
    await Promise.all([flow, consume]);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new TsrunError(`load ${label}: not a readable image archive: ${isRefused(e) ? `refused: ${e.message}` : (e as Error).message}`);
  } finally {
    bar.done();
  }
  for (const [name, target] of links) {
    const f = files.get(target);
    if (f) files.set(name, f);
  }
  return { dir, files };
}

/** A JSON file of an archive or layout, read with a bound on its size. */
function readJsonFile<T>(file: string, max: number, what: string): T {
  return parseJson<T>(readBounded(file, max, what), what);
}

function parseJson<T>(data: Buffer | string, what: string): T {
  try {
    return JSON.parse(data.toString()) as T;
  } catch (e) {
    throw new TsrunError(`${what}: not valid JSON (${(e as Error).message})`);
  }
}

/** Reads, verifies and stores one blob of an archive or layout. */
async function adopt(store: ImageStore, source: (name: string) => string | undefined, desc: { digest: string; size?: number }, what: string, copy: boolean): Promise<void> {
  const hex = desc.digest.replace(/^sha256:/, '');
  if (!/^sha256:[a-f0-9]{64}$/.test(desc.digest)) throw new TsrunError(`${what}: unsupported digest "${desc.digest}"`);
  const file = source(`blobs/sha256/${hex}`);
  if (!file) throw new TsrunError(`${what}: blob ${desc.digest} is missing`);
  const got = await digestFile(file);
  if (got.digest !== desc.digest) throw new TsrunError(`${what}: blob ${desc.digest} does not match its content (sha256 is ${got.digest})`);
  if (desc.size !== undefined && got.size !== desc.size) throw new TsrunError(`${what}: blob ${desc.digest} is ${got.size} bytes, the descriptor says ${desc.size}`);
  if (store.hasBlob(desc.digest)) return;
  const tmp = store.tmpPath('blob');
  if (copy) fs.copyFileSync(file, tmp);
  else fs.renameSync(file, tmp);
  store.adoptBlob(tmp, desc.digest);
}

function isManifest(m: string | undefined) {
  return m === undefined || m === MEDIA.ociManifest || m === MEDIA.dockerManifest;
}
function isIndex(m: string | undefined) {
  return m === MEDIA.ociIndex || m === MEDIA.dockerManifestList;
}

const hostArch = process.arch === 'x64' ? 'amd64' : process.arch;

/**
 * The image's name from its index entry. The OCI ref.name may be a full
 * reference (skopeo) or just a tag with the full name in
 * io.containerd.image.name (containerd, docker save, tsrun save).
 */
function nameFromAnnotations(desc: Descriptor): string | undefined {
  const a = desc.annotations ?? {};
  const refName = a['org.opencontainers.image.ref.name'];
  const parse = (c: string | undefined) => {
    if (!c) return undefined;
    try {
      return formatReference(parseReference(c));
    } catch {
      return undefined;
    }
  };
  const isFull = (c: string | undefined) => !!c && (c.includes(':') || c.includes('/') || c.includes('@'));
  if (isFull(refName)) return parse(refName);
  return parse(a['io.containerd.image.name']);
}

/** Imports an OCI layout (from a directory or an extracted archive). */
async function loadLayout(store: ImageStore, source: (name: string) => string | undefined, what: string, copy: boolean, opts: { tag?: string; name?: string }): Promise<Loaded[]> {
  const indexFile = source('index.json');
  if (!indexFile) throw new TsrunError(`${what}: no index.json`);
  const layoutFile = source('oci-layout');
  if (layoutFile) {
    const layout = readJsonFile<{ imageLayoutVersion?: string }>(layoutFile, MAX_MANIFEST_BYTES, `${what}: oci-layout`);
    if (!layout.imageLayoutVersion?.startsWith('1.')) throw new TsrunError(`${what}: unsupported imageLayoutVersion ${JSON.stringify(layout.imageLayoutVersion)}`);
  }
  const index = readJsonFile<Index>(indexFile, MAX_MANIFEST_BYTES, `${what}: index.json`);
  if (!index || !Array.isArray(index.manifests)) throw new TsrunError(`${what}: index.json has no manifests`);
  let entries = index.manifests;
  if (opts.tag !== undefined) {
    entries = entries.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] === opts.tag);
    if (!entries.length) throw new TsrunError(`${what}: no image tagged "${opts.tag}"`);
  }
  const out: Loaded[] = [];
  for (const top of entries) {
    let desc = top;
    // An index (multi-platform) inside: take this host's platform.
    for (let depth = 0; isIndex(desc.mediaType) && depth < 4; depth++) {
      await adopt(store, source, desc, what, copy);
      const inner = store.readJson<Index>(desc.digest);
      const pick = inner.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === hostArch) ?? inner.manifests.find((m) => !m.platform);
      if (!pick) throw new TsrunError(`${what}: no manifest for linux/${hostArch} in index ${desc.digest}`);
      desc = { ...pick, annotations: { ...pick.annotations, ...top.annotations } };
    }
    if (!isManifest(desc.mediaType)) throw new TsrunError(`${what}: unsupported manifest media type ${desc.mediaType}`);
    await adopt(store, source, desc, what, copy);
    const manifest = store.readJson<Manifest>(desc.digest);
    if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new TsrunError(`${what}: manifest ${desc.digest} lacks a config or layers`);
    await adopt(store, source, manifest.config, `${what}: config`, copy);
    const config = store.readJson<ImageConfig>(manifest.config.digest);
    if (config.rootfs?.diff_ids?.length !== manifest.layers.length) throw new TsrunError(`${what}: manifest ${desc.digest} has ${manifest.layers.length} layers but its config lists ${config.rootfs?.diff_ids?.length ?? 0} diff_ids`);
    for (const layer of manifest.layers) await adopt(store, source, layer, `${what}: layer`, copy);
    const name = opts.name ?? nameFromAnnotations(desc);
    out.push({ record: store.addImage(desc.digest as Digest, name ? [name] : []), names: name ? [name] : [] });
  }
  return out;
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** A file named by a docker-archive's manifest.json, found inside the archive only. */
function archiveFile(files: Map<string, string>, name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw new TsrunError(`${what}: manifest.json names ${JSON.stringify(name)}, not a file in the archive`);
  let clean: string | null;
  try {
    clean = cleanEntryName(name);
  } catch (e) {
    if (isRefused(e)) throw new TsrunError(`${what}: manifest.json names ${quoteName(name)}: refused: ${e.message}`);
    throw e;
  }
  const file = clean === null ? undefined : files.get(clean);
  if (!file) throw new TsrunError(`${what}: ${quoteName(name)} named by manifest.json is missing from the archive`);
  return file;
}

/** Imports a docker-archive: manifest.json naming a config and layer tarballs. */
async function loadDockerArchive(store: ImageStore, files: Map<string, string>, what: string): Promise<Loaded[]> {
  const entries = readJsonFile<DockerManifestEntry[]>(files.get('manifest.json')!, MAX_MANIFEST_BYTES, `${what}: manifest.json`);
  if (!Array.isArray(entries) || !entries.length) throw new TsrunError(`${what}: manifest.json lists no images`);
  const out: Loaded[] = [];
  for (const [i, e] of entries.entries()) {
    if (typeof e !== 'object' || e === null || !Array.isArray(e.Layers)) throw new TsrunError(`${what}: manifest.json entry ${i} has no Layers list`);
    if (e.RepoTags != null && !(Array.isArray(e.RepoTags) && e.RepoTags.every((t) => typeof t === 'string'))) throw new TsrunError(`${what}: manifest.json entry ${i}: RepoTags must be a list of names`);
    const configFile = archiveFile(files, e.Config, what);
    const configBytes = readBounded(configFile, MAX_CONFIG_BYTES, `${what}: ${quoteName(e.Config)}`);
    const config = parseJson<ImageConfig>(configBytes, `${what}: ${quoteName(e.Config)}`);
    if (config?.rootfs?.diff_ids?.length !== e.Layers.length) throw new TsrunError(`${what}: ${e.Layers.length} layers but the config lists ${config?.rootfs?.diff_ids?.length ?? 0} diff_ids`);
    const configDigest = store.writeBlob(configBytes);
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const file = archiveFile(files, l, what);
      const { digest, size } = await digestFile(file);
      const c = detectCompression(readHead(file));
      layers.push({ mediaType: c === 'gzip' ? MEDIA.ociLayerGzip : c === 'zstd' ? MEDIA.ociLayerZstd : MEDIA.ociLayer, digest, size });
      if (!store.hasBlob(digest)) {
        const tmp = store.tmpPath('blob');
        fs.copyFileSync(file, tmp);
        store.adoptBlob(tmp, digest);
      }
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const names = (e.RepoTags ?? []).map((t) => formatReference(parseReference(t)));
    out.push({ record: store.addImage(store.writeBlob(JSON.stringify(manifest)), names), names });
  }
  return out;
}

/** `tsrun load -i FILE`: an archive file, an OCI layout directory, or "-" for stdin. */
export async function loadImages(store: ImageStore, input: string, opts: { name?: string } = {}): Promise<Loaded[]> {
  if (input === '-') {
    const tmp = await stdinToFile(store, 'load');
    try {
      return await loadArchive(store, tmp, 'stdin', opts);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch (e) {
    throw new TsrunError(`load ${input}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (st.isDirectory()) return loadLayoutDir(store, input, opts);
  return loadArchive(store, input, input, opts);
}

async function loadArchive(store: ImageStore, file: string, label: string, opts: { name?: string }): Promise<Loaded[]> {
  const archive = await extractArchive(store, file, label);
  try {
    if (archive.files.has('index.json')) return await loadLayout(store, (n) => archive.files.get(n), `load ${label}`, false, opts);
    if (archive.files.has('manifest.json')) return await loadDockerArchive(store, archive.files, `load ${label}`);
    throw new TsrunError(`load ${label}: neither an OCI archive (index.json) nor a docker archive (manifest.json)`);
  } finally {
    native().removeTree(archive.dir);
  }
}

/** An OCI image layout directory, read in place (its blobs are copied). */
export async function loadLayoutDir(store: ImageStore, dir: string, opts: { tag?: string; name?: string } = {}): Promise<Loaded[]> {
  const source = (name: string) => {
    const f = path.join(dir, ...name.split('/'));
    return fs.existsSync(f) ? f : undefined;
  };
  return loadLayout(store, source, `load ${dir}`, true, opts);
}

/** "oci:PATH[:TAG]" as an image reference: the layout's image, loaded if need be. */
export async function resolveOciReference(store: ImageStore, ref: string): Promise<string> {
  const rest = ref.slice('oci:'.length);
  const colon = rest.lastIndexOf(':');
  const [dir, tag] = colon > 0 && !rest.slice(colon + 1).includes('/') ? [rest.slice(0, colon), rest.slice(colon + 1)] : [rest, undefined];
  if (!fs.existsSync(dir)) throw new TsrunError(`image "${ref}": ${dir}: ENOENT (no OCI layout there)`);
  const recs = await loadLayoutDir(store, dir, { tag });
  if (recs.length !== 1) throw new TsrunError(`image "${ref}": the layout holds ${recs.length} images; name one with oci:${dir}:TAG`);
  return recs[0].record.id;
}

export { sha256 };
