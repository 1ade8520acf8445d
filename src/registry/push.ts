// push: an image of the store to a registry. Each blob is looked for
// first (HEAD) and skipped when there; mounted from another repository of
// the same registry that this store knows holds it (POST ?mount=&from=);
// uploaded otherwise, in one PUT or, past CHUNK bytes, in PATCHes. The
// manifest goes last, with its media type.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { sha256, type Digest } from '../image/digest';
import { formatReference, parseReference } from '../image/reference';
import type { ImageRecord, ImageStore } from '../image/store';
import { MEDIA, type Descriptor, type Manifest } from '../image/types';
import { readRegistriesConf } from './config';
import { registryError } from './http';
import { repositoryFor, splitRepository, type Repository, type RegistryOptions } from './pull';

/** How many blobs go up at once (Docker's default is 5, containers/image's 6; pull takes 3). */
const CONCURRENT_UPLOADS = 3;

/** Blobs past this go up in chunks (PATCH), each this big. */
export const CHUNK = 32 << 20;

export interface PushOptions extends RegistryOptions {
  /** The manifest's format: as stored (default), oci, or v2s2 (Docker's). */
  format?: 'oci' | 'v2s2';
}

export interface Pushed {
  name: string;
  digest: Digest;
  /** How each blob got there. */
  blobs: { digest: string; how: 'present' | 'mounted' | 'uploaded' }[];
}

const DOCKER_LAYER: Record<string, string> = { [MEDIA.ociLayerGzip]: MEDIA.dockerLayerGzip, [MEDIA.ociLayer]: MEDIA.dockerLayer, [MEDIA.dockerLayerGzip]: MEDIA.dockerLayerGzip, [MEDIA.dockerLayer]: MEDIA.dockerLayer };
const OCI_LAYER: Record<string, string> = { [MEDIA.dockerLayerGzip]: MEDIA.ociLayerGzip, [MEDIA.dockerLayer]: MEDIA.ociLayer };

/** The manifest in the format asked for (its digest changes with it). */
function convert(manifest: Manifest, format: PushOptions['format']): Manifest {
  if (!format) return manifest;
  if (format === 'v2s2') {
    return {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: { mediaType: MEDIA.dockerConfig, digest: manifest.config.digest, size: manifest.config.size },
      layers: manifest.layers.map((l) => {
        const mediaType = DOCKER_LAYER[l.mediaType];
        if (!mediaType) throw new TsrunError(`push --format v2s2: layer ${l.digest} is ${l.mediaType}, which Docker's format cannot name`);
        return { mediaType, digest: l.digest, size: l.size };
      }),
    };
  }
  return {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: manifest.config.digest, size: manifest.config.size },
    layers: manifest.layers.map((l) => ({ mediaType: OCI_LAYER[l.mediaType] ?? l.mediaType, digest: l.digest, size: l.size })),
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
}

/** Other repositories of this registry that this store knows hold the image: where a blob can be mounted from. */
function mountSources(rec: ImageRecord, host: string, except: string): string[] {
  const repos = [...rec.names, ...(rec.repoDigests ?? [])].map((n) => {
    try {
      return parseReference(n).repository;
    } catch {
      return '';
    }
  });
  return [...new Set(repos.filter((r) => r.startsWith(`${host}/`)).map((r) => splitRepository(r).path).filter((p) => p !== except))];
}

async function uploadBlob(store: ImageStore, repo: Repository, desc: Descriptor, mountFrom: string[]): Promise<'present' | 'mounted' | 'uploaded'> {
  const scope = `${repo.scope('pull,push')}${mountFrom.map((f) => ` repository:${f}:pull`).join('')}`;
  const head = await repo.client.request('HEAD', `/v2/${repo.path}/blobs/${desc.digest}`, { scope });
  head.body.resume();
  if (head.status === 200) return 'present';
  for (const from of mountFrom) {
    const r = await repo.client.request('POST', `/v2/${repo.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`, { scope, length: 0 });
    r.body.resume();
    if (r.status === 201) return 'mounted';
    // 202: the registry started an upload instead; it is abandoned and a plain one made.
  }
  const start = await repo.client.request('POST', `/v2/${repo.path}/blobs/uploads/`, { scope, length: 0 });
  if (start.status !== 202) throw await registryError(start, `push ${repo.name}: start the upload of ${desc.digest}`);
  start.body.resume();
  let location = String(start.headers.location ?? '');
  if (!location) throw new TsrunError(`push ${repo.name}: the registry gave no upload location for ${desc.digest}`);
  const file = store.blobPath(desc.digest);
  const size = fs.statSync(file).size;
  const base = await repo.client.base();
  const at = (loc: string) => new URL(loc, base).toString();
  location = at(location);
  if (size > CHUNK) {
    for (let off = 0; off < size; off += CHUNK) {
      const end = Math.min(size, off + CHUNK) - 1;
      const r = await repo.client.request('PATCH', location, { scope, headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${off}-${end}` }, body: () => fs.createReadStream(file, { start: off, end }), length: end - off + 1, retries: 0 });
      if (r.status !== 202) throw await registryError(r, `push ${repo.name}: upload ${desc.digest} bytes ${off}-${end}`);
      r.body.resume();
      location = at(String(r.headers.location ?? location));
    }
    const sep = location.includes('?') ? '&' : '?';
    const done = await repo.client.request('PUT', `${location}${sep}digest=${encodeURIComponent(desc.digest)}`, { scope, length: 0 });
    if (done.status !== 201) throw await registryError(done, `push ${repo.name}: finish the upload of ${desc.digest}`);
    done.body.resume();
    return 'uploaded';
  }
  const sep = location.includes('?') ? '&' : '?';
  const put = await repo.client.request('PUT', `${location}${sep}digest=${encodeURIComponent(desc.digest)}`, { scope, headers: { 'Content-Type': 'application/octet-stream' }, body: () => fs.createReadStream(file), length: size, retries: 0 });
  if (put.status !== 201) throw await registryError(put, `push ${repo.name}: upload ${desc.digest}`);
  put.body.resume();
  return 'uploaded';
}

export async function pushImage(store: ImageStore, source: string, dest: string | undefined, opts: PushOptions = {}): Promise<Pushed> {
  const img = store.get(source);
  const ref = parseReference(dest ?? source);
  if (ref.digest && !ref.tag) throw new TsrunError(`push ${formatReference(ref)}: push to a tag; a registry names a manifest by its digest itself`);
  const conf = readRegistriesConf();
  const repo = repositoryFor(ref, conf, opts).pop()!;
  const manifest = convert(img.manifest, opts.format);
  const bytes = Buffer.from(JSON.stringify(manifest));
  const keep = opts.format ? bytes : store.readBlob(img.record.manifestDigest);
  const digest = sha256(keep);
  const mountFrom = mountSources(img.record, repo.client.endpoint.host, repo.path);
  // A few blobs at once, as pull takes them; the manifest only when all are there.
  const all = [...manifest.layers, manifest.config];
  const blobs: Pushed['blobs'] = all.map((d) => ({ digest: d.digest, how: 'present' }));
  let next = 0;
  let failed = false;
  const worker = async () => {
    for (let i = next++; i < all.length && !failed; i = next++) {
      try {
        blobs[i].how = await uploadBlob(store, repo, all[i], mountFrom);
      } catch (e) {
        // The first failure stops the others at their next blob; the push ends when all have.
        failed = true;
        throw e;
      }
      opts.log?.(`${all[i].digest.slice(7, 19)}: ${blobs[i].how}`);
    }
  };
  const ended = await Promise.allSettled(Array.from({ length: CONCURRENT_UPLOADS }, worker));
  const first = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (first) throw first.reason;
  const mediaType = manifest.mediaType ?? MEDIA.ociManifest;
  const put = await repo.client.request('PUT', `/v2/${repo.path}/manifests/${ref.tag ?? 'latest'}`, { scope: repo.scope('pull,push'), headers: { 'Content-Type': mediaType }, body: () => keep, length: keep.length });
  if (put.status !== 201) throw await registryError(put, `push ${repo.name}: manifest`);
  put.body.resume();
  if (opts.format) store.writeBlob(keep);
  const name = formatReference(ref);
  store.addImage(digest, [name], { repoDigest: `${ref.repository}@${digest}` });
  return { name, digest, blobs };
}
