// pull: a reference's manifest (an index or list resolved to this host's
// platform), its config and its layers, from a registry into the store,
// every byte checked against its digest. Layers come three at a time (as
// Docker's), each one once however many processes want it (a lock per
// blob), and not at all when the store has it.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { crypto } from '../lazy';
import { sha256, type Digest } from '../image/digest';
import { formatReference, parseReference, type ImageRef } from '../image/reference';
import type { ImageRecord, ImageStore } from '../image/store';
import { MAX_JSON_BLOB_BYTES } from '../image/store';
import { MEDIA, type Descriptor, type Index, type Manifest } from '../image/types';
import { certsFor, entryFor, readRegistriesConf, type RegistriesConf } from './config';
import { credentialsFor } from './credentials';
import { isLoopback, readBytes, RegistryClient, registryError, type Endpoint } from './http';

export const MAX_MANIFEST = 4 << 20;
const CONCURRENT_LAYERS = 3;

export const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(', ');
const SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];

export interface RegistryOptions {
  /** --tls-verify=false: https without verification, falling back to plain http. */
  tlsVerify?: boolean;
  /** --authfile, or REGISTRY_AUTH_FILE. */
  authFile?: string;
  /** --cert-dir: CA certificates (and a client pair) instead of certs.d's. */
  certDir?: string;
  /** Progress and other lines for a person. */
  log?: (line: string) => void;
}

export interface PullOptions extends RegistryOptions {
  /** os/arch[/variant], default this host's. */
  platform?: string;
}

export interface Pulled {
  record: ImageRecord;
  name: string;
  /** The digest the reference resolved to (the index's, for a multi-platform image). */
  digest: Digest;
}

/** A registry host and the repository path within it: docker.io/library/alpine -> registry-1.docker.io, library/alpine. */
export function splitRepository(repository: string): { host: string; path: string } {
  const slash = repository.indexOf('/');
  const host = repository.slice(0, slash);
  return { host, path: repository.slice(slash + 1) };
}

/** Where to send requests for a host: registries.conf's location and mirrors, certs.d, insecurity. */
export function endpointsFor(repository: string, conf: RegistriesConf, opts: RegistryOptions): { endpoint: Endpoint; path: string }[] {
  const { host, path } = splitRepository(repository);
  const entry = entryFor(conf, repository);
  if (entry?.blocked) throw new TsrunError(`registry ${host}: blocked by registries.conf (prefix ${entry.prefix})`);
  const insecure = opts.tlsVerify === false || !!entry?.insecure;
  // A location rewrites the prefix: prefix example.com/foo at location mirror.example.com/bar.
  const rewrite = (location: string) => {
    const rest = entry ? repository.slice(entry.prefix.length).replace(/^\//, '') : path;
    const full = entry ? `${location}${rest ? `/${rest}` : ''}` : repository;
    return splitRepository(full.includes('/') ? full : `${full}/${rest}`);
  };
  const out: { endpoint: Endpoint; path: string }[] = [];
  for (const m of entry?.mirrors ?? []) {
    const r = rewrite(m.location);
    out.push({ endpoint: { host: r.host, location: r.host === 'docker.io' ? 'registry-1.docker.io' : r.host, insecure: insecure || m.insecure, ...certsFor(r.host, opts.certDir) }, path: r.path });
  }
  const r = entry ? rewrite(entry.location) : { host, path };
  out.push({ endpoint: { host: r.host, location: r.host === 'docker.io' ? 'registry-1.docker.io' : r.host, insecure, ...certsFor(r.host, opts.certDir) }, path: r.path });
  return out;
}

/**
 * The references a name may mean: a name with a registry host is itself;
 * an alias of registries.conf is its target; a short name is tried at each
 * unqualified-search-registries entry, or Docker Hub when there are none.
 */
export function candidates(text: string, conf: RegistriesConf): ImageRef[] {
  const first = text.split('/')[0];
  const qualified = text.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (qualified) return [parseReference(text)];
  const bare = text.replace(/[@:].*$/, '');
  const alias = conf.aliases[bare];
  if (alias) return [parseReference(`${alias}${text.slice(bare.length)}`)];
  if (!conf.search.length) return [parseReference(text)];
  return conf.search.map((r) => parseReference(`${r}/${text}`));
}

function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', s390x: 's390x', ppc64: 'ppc64le', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch, ...(process.arch === 'arm64' ? { variant: 'v8' } : {}) };
}

export function parsePlatform(text: string | undefined) {
  if (!text) return hostPlatform();
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture) throw new TsrunError(`--platform ${text}: expected OS/ARCH[/VARIANT], such as linux/amd64`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** The manifest of an index that fits the platform: os and architecture, and the variant when asked for. */
export function choosePlatform(index: Index, want: { os: string; architecture: string; variant?: string }): Descriptor | undefined {
  const fits = index.manifests.filter((m) => m.platform?.os === want.os && m.platform.architecture === want.architecture);
  if (want.variant) return fits.find((m) => m.platform?.variant === want.variant) ?? (want.architecture === 'arm64' ? fits.find((m) => !m.platform?.variant) : undefined);
  return fits.find((m) => !m.platform?.variant) ?? fits[0];
}

/** One repository of one registry, for pull and push. */
export class Repository {
  constructor(
    readonly client: RegistryClient,
    readonly path: string,
    readonly name: string,
  ) {}

  scope(actions: string) {
    return `repository:${this.path}:${actions}`;
  }

  /** A manifest's bytes, media type and digest, checked against the digest asked for or the one the registry states. */
  async manifest(reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: Digest }> {
    const r = await this.client.request('GET', `/v2/${this.path}/manifests/${reference}`, { scope: this.scope('pull'), headers: { Accept: MANIFEST_ACCEPT } });
    if (r.status !== 200) throw await registryError(r, `pull ${this.name}: manifest ${reference}`);
    const bytes = await readBytes(r.body, MAX_MANIFEST);
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && reference !== digest) throw new TsrunError(`pull ${this.name}: manifest ${reference} does not match its content (sha256 is ${digest})`);
    const stated = r.headers['docker-content-digest'];
    if (typeof stated === 'string' && stated.startsWith('sha256:') && stated !== digest) throw new TsrunError(`pull ${this.name}: the registry says manifest ${reference} is ${stated}, its content is ${digest}`);
    let mediaType = String(r.headers['content-type'] ?? '').split(';')[0].trim();
    let parsed: { mediaType?: string; schemaVersion?: number };
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new TsrunError(`pull ${this.name}: manifest ${reference} is not valid JSON`);
    }
    if (parsed.mediaType) mediaType = parsed.mediaType;
    if (SCHEMA1.includes(mediaType) || parsed.schemaVersion === 1) throw new TsrunError(`pull ${this.name}: manifest ${reference} is Docker's schema 1, which is deprecated and unsigned: push it again with a current client`);
    return { bytes, mediaType, digest };
  }

  /** Every tag of the repository (tags/list, page by page as its Link header says), each a valid tag name. */
  async tags(): Promise<string[]> {
    const out: string[] = [];
    let next = `/v2/${this.path}/tags/list?n=1000`;
    for (let page = 0; ; page++) {
      if (page >= 1000) throw new TsrunError(`pull -a ${this.name}: more than 1000 pages of tags`);
      const r = await this.client.request('GET', next, { scope: this.scope('pull') });
      if (r.status !== 200) throw await registryError(r, `pull -a ${this.name}: tags`);
      let list: { tags?: unknown };
      try {
        list = JSON.parse((await readBytes(r.body, MAX_MANIFEST)).toString('utf8')) as { tags?: unknown };
      } catch {
        throw new TsrunError(`pull -a ${this.name}: the tag list is not valid JSON`);
      }
      const tags = list.tags ?? [];
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && /^[\w][\w.-]{0,127}$/.test(t))) throw new TsrunError(`pull -a ${this.name}: the tag list holds something that is not a tag name`);
      out.push(...tags);
      // RFC 5988: <url>; rel="next", relative to the registry.
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(r.headers.link ?? ''));
      if (!link) break;
      const url = new URL(link[1], 'http://registry.invalid');
      // Only the registry's own pages: a link elsewhere is not followed.
      if (url.host !== 'registry.invalid' && url.host !== this.client.endpoint.location) throw new TsrunError(`pull -a ${this.name}: the tag list's next page is on another host (${url.host})`);
      next = `${url.pathname}${url.search}`;
    }
    return [...new Set(out)];
  }

  /** A blob into a file of the store's tmp/, checked while it streams; returns the file. */
  async download(store: ImageStore, desc: Descriptor, onBytes?: (n: number) => void): Promise<string> {
    const r = await this.client.request('GET', `/v2/${this.path}/blobs/${desc.digest}`, { scope: this.scope('pull') });
    if (r.status !== 200) throw await registryError(r, `pull ${this.name}: blob ${desc.digest}`);
    const tmp = store.tmpPath('pull');
    const hash = crypto().createHash('sha256');
    const out = fs.openSync(tmp, 'wx', 0o600);
    let size = 0;
    try {
      for await (const chunk of r.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > desc.size) throw new TsrunError(`pull ${this.name}: blob ${desc.digest} is longer than the ${desc.size} bytes its descriptor says`);
        hash.update(chunk);
        fs.writeSync(out, chunk);
        onBytes?.(size);
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== desc.digest) throw new TsrunError(`pull ${this.name}: blob ${desc.digest} does not match its content (sha256 is ${got}); nothing of it is kept`);
      if (size !== desc.size) throw new TsrunError(`pull ${this.name}: blob ${desc.digest} is ${size} bytes, its descriptor says ${desc.size}`);
    } catch (e) {
      fs.closeSync(out);
      fs.rmSync(tmp, { force: true });
      if (e instanceof TsrunError) throw e;
      throw new TsrunError(`pull ${this.name}: blob ${desc.digest}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (the connection broke)`);
    }
    fs.closeSync(out);
    return tmp;
  }
}

/** A client for a reference's registry, with its credentials and endpoint. */
export function repositoryFor(ref: ImageRef, conf: RegistriesConf, opts: RegistryOptions): Repository[] {
  return endpointsFor(ref.repository, conf, opts).map(({ endpoint, path }) => new Repository(new RegistryClient(endpoint, credentialsFor(endpoint.host, opts.authFile), opts.log), path, formatReference(ref)));
}

async function pullFrom(store: ImageStore, repo: Repository, ref: ImageRef, opts: PullOptions): Promise<Pulled> {
  const top = await repo.manifest(ref.digest ?? ref.tag ?? 'latest');
  let chosen = top;
  if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerManifestList) {
    const want = parsePlatform(opts.platform);
    const index = JSON.parse(top.bytes.toString('utf8')) as Index;
    if (!Array.isArray(index.manifests) || !index.manifests.every((m) => typeof m === 'object' && m !== null && typeof m.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(m.digest))) throw new TsrunError(`pull ${repo.name}: index ${top.digest} has an entry without a sha256 digest`);
    const pick = choosePlatform(index, want);
    if (!pick) throw new TsrunError(`pull ${repo.name}: no image for ${want.os}/${want.architecture}${want.variant ? `/${want.variant}` : ''} in its index (it has ${index.manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : '?')).join(', ')})`);
    chosen = await repo.manifest(pick.digest);
    store.writeBlob(top.bytes);
  }
  if (chosen.mediaType !== MEDIA.ociManifest && chosen.mediaType !== MEDIA.dockerManifest && chosen.mediaType !== '') throw new TsrunError(`pull ${repo.name}: unsupported manifest media type ${chosen.mediaType}`);
  const manifest = JSON.parse(chosen.bytes.toString('utf8')) as Manifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new TsrunError(`pull ${repo.name}: manifest ${chosen.digest} lacks a config or layers`);
  // Every descriptor names a blob this store will hold by that name: sha256 form and a size, or refused here.
  for (const d of [manifest.config, ...manifest.layers]) {
    if (typeof d !== 'object' || d === null || typeof d.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) throw new TsrunError(`pull ${repo.name}: manifest ${chosen.digest} has a descriptor without a sha256 digest and a size: ${JSON.stringify(d).slice(0, 200)}`);
  }
  const log = opts.log ?? (() => {});
  // The config: small, read whole, checked.
  if (!store.hasBlob(manifest.config.digest)) {
    if (manifest.config.size > MAX_JSON_BLOB_BYTES) throw new TsrunError(`pull ${repo.name}: config ${manifest.config.digest} is ${manifest.config.size} bytes, more than a config may have`);
    const file = await repo.download(store, manifest.config);
    store.adoptBlob(file, manifest.config.digest);
  }
  // Layers, a few at once; each behind a lock of its own, so two pulls download it once.
  const todo = [...manifest.layers];
  const worker = async () => {
    for (let d = todo.shift(); d; d = todo.shift()) {
      const desc = d;
      if (store.hasBlob(desc.digest)) {
        log(`${desc.digest.slice(7, 19)}: already here`);
        continue;
      }
      await store.lockedAsync(`locks/blob-${desc.digest.slice(7)}`, async () => {
        if (store.hasBlob(desc.digest)) return;
        const started = Date.now();
        const file = await repo.download(store, desc);
        store.adoptBlob(file, desc.digest);
        log(`${desc.digest.slice(7, 19)}: ${(desc.size / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENT_LAYERS }, worker));
  store.writeBlob(chosen.bytes);
  const name = formatReference(ref);
  const record = store.addImage(chosen.digest, [name], { repoDigest: `${ref.repository}@${top.digest}` });
  return { record, name, digest: top.digest };
}

/** tsrun pull: the first registry of the candidates that has it. */
export async function pullImage(store: ImageStore, text: string, opts: PullOptions = {}): Promise<Pulled> {
  const conf = readRegistriesConf();
  const tries = candidates(text, conf).flatMap((ref) => repositoryFor(ref, conf, opts).map((repo) => ({ ref, repo })));
  let first: unknown;
  for (const { ref, repo } of tries) {
    try {
      return await pullFrom(store, repo, ref, opts);
    } catch (e) {
      first ??= e;
      if (tries.length > 1) opts.log?.(`${repo.name} at ${repo.client.endpoint.location}: ${(e as Error).message}`);
    }
  }
  throw first;
}

/** `pull -a`: every tag of a repository named without a tag or digest. */
export async function pullAllTags(store: ImageStore, text: string, opts: PullOptions = {}): Promise<Pulled[]> {
  const last = text.slice(text.lastIndexOf('/') + 1);
  if (text.includes('@') || last.includes(':')) throw new TsrunError(`pull -a ${text}: name a repository without a tag or digest`);
  const conf = readRegistriesConf();
  let first: unknown;
  for (const ref of candidates(text, conf)) {
    for (const repo of repositoryFor(ref, conf, opts)) {
      let tags: string[];
      try {
        tags = await repo.tags();
      } catch (e) {
        first ??= e;
        continue;
      }
      if (!tags.length) throw new TsrunError(`pull -a ${repo.name}: the repository has no tags`);
      const out: Pulled[] = [];
      for (const tag of tags) out.push(await pullFrom(store, repo, { repository: ref.repository, tag }, opts));
      return out;
    }
  }
  throw first;
}

export { isLoopback };
