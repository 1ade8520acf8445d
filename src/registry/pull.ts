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
import { bar, type Board } from '../image/progress';
import { MEDIA, type Descriptor, type ImageConfig, type Index, type Manifest } from '../image/types';
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
  /** A line per layer, redrawn as it moves (a terminal's bars); else `log` gets each layer's last line. */
  progress?: Board;
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

  /**
   * A blob's bytes as they arrive, each also appended to the store's ingest
   * file for it, checked against the descriptor's digest and size at the
   * end. What an earlier pull left there is passed on again first and only
   * the rest is asked for (a Range request); a connection that breaks mid-blob
   * is asked again from where it stopped. The caller holds the blob's lock
   * and, once it has taken every byte, adopts the ingest file as the blob.
   */
  async *blob(store: ImageStore, desc: Descriptor, onBytes?: (n: number) => void, stop?: AbortSignal): AsyncGenerator<Buffer> {
    const file = store.ingestPath(desc.digest);
    const what = `pull ${this.name}: blob ${desc.digest}`;
    const hash = crypto().createHash('sha256');
    const ingest = openIngest(file, desc.size);
    let have = ingest.size;
    let body: NodeJS.ReadableStream | undefined;
    // A consumer that gave up (a refused entry) may do so while this waits for bytes that never come.
    const cancel = () => (body as unknown as { destroy?(): void } | undefined)?.destroy?.();
    stop?.addEventListener('abort', cancel);
    try {
      // What an earlier pull left: hashed and passed on again, then only the rest is asked for.
      if (have > 0) {
        for await (const chunk of fs.createReadStream('', { fd: ingest.fd, start: 0, end: have - 1, autoClose: false, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
          hash.update(chunk);
          yield chunk;
        }
        onBytes?.(have);
      }
      for (let breaks = 0; have < desc.size && !stop?.aborted; ) {
        const r = await this.client.request('GET', `/v2/${this.path}/blobs/${desc.digest}`, { scope: this.scope('pull'), headers: have ? { Range: `bytes=${have}-` } : undefined, signal: stop });
        body = r.body;
        if (stop?.aborted) break;
        // A registry that ignores the range sends the whole blob: what is here already is skipped.
        let skip = 0;
        if (have && r.status === 206) {
          const range = String(r.headers['content-range'] ?? '');
          const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(range);
          if (!m || Number(m[1]) !== have || (m[2] !== '*' && Number(m[2]) !== desc.size)) throw new DropPart(`${what}: asked for bytes ${have}- of ${desc.size}, the registry sent ${range || 'no Content-Range'}; the part received is dropped, pull again to start over`);
        } else if (r.status === 200) skip = have;
        else if (have && r.status === 416) throw new DropPart(`${what}: the registry refused the range ${have}- (416); the part received is dropped, pull again to start over`);
        else throw await registryError(r, what);
        try {
          for await (const got of r.body as AsyncIterable<Buffer>) {
            const chunk = skip ? got.subarray(Math.min(skip, got.length)) : got;
            skip -= got.length - chunk.length;
            if (!chunk.length) continue;
            if (have + chunk.length > desc.size) throw new DropPart(`${what} is longer than the ${desc.size} bytes its descriptor says`);
            await ingest.write(chunk, have);
            hash.update(chunk);
            have += chunk.length;
            onBytes?.(have);
            yield chunk;
          }
          if (have < desc.size) throw Object.assign(new Error('the answer ended early'), { code: 'ECONNRESET' });
        } catch (e) {
          if (e instanceof TsrunError || stop?.aborted) throw e;
          if (++breaks > RESUMES) throw new TsrunError(`${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (the connection broke ${breaks} times; ${have} of ${desc.size} bytes are kept for the next pull)`);
          this.client.log(`${desc.digest.slice(7, 19)}: the connection broke at ${have} of ${desc.size} bytes; asking for the rest`);
          await new Promise((res) => setTimeout(res, 200 * 2 ** breaks));
        }
      }
      if (stop?.aborted) throw new TsrunError(`${what}: stopped`);
      await ingest.flush();
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== desc.digest) throw new DropPart(`${what} does not match its content (sha256 is ${digest}); nothing of it is kept`);
    } catch (e) {
      if (e instanceof DropPart) fs.rmSync(file, { force: true });
      throw e;
    } finally {
      stop?.removeEventListener('abort', cancel);
      cancel();
      await ingest.close();
    }
  }

  /** A blob whole into the store (the caller holds its lock). */
  async fetch(store: ImageStore, desc: Descriptor, onBytes?: (n: number) => void, stop?: AbortSignal): Promise<void> {
    for await (const _ of this.blob(store, desc, onBytes, stop)) void _;
    store.adoptBlob(store.ingestPath(desc.digest), desc.digest);
  }
}

/**
 * The ingest file of a blob, opened once (never through a link): what an
 * earlier pull left in it, or a fresh one where that is no regular file or
 * is longer than the blob.
 */
function openIngest(file: string, size: number): Appender {
  const open = () => fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  let fd: number;
  try {
    fd = open();
  } catch {
    // A link or a directory where the part should be: not ours, and not kept.
    fs.rmSync(file, { recursive: true, force: true });
    fd = open();
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    fs.rmSync(file, { recursive: true, force: true });
    fd = open();
  } else if (st.size > size) fs.ftruncateSync(fd, 0);
  return new Appender(fd, Math.min(fs.fstatSync(fd).size, size));
}

/**
 * Writes a download into its file off the event loop (libuv's threads), in
 * order, a few MiB ahead at most: the download and the unpack go on while
 * the disk takes the blob's copy. A failed or short write ends the
 * download and drops the part.
 */
class Appender {
  private queued = 0;
  private last: Promise<void> = Promise.resolve();
  private failed?: Error;
  constructor(
    readonly fd: number,
    readonly size: number,
  ) {}

  /** Resolves at once unless too much waits for the disk. */
  async write(chunk: Buffer, position: number): Promise<void> {
    if (this.failed) throw this.failed;
    this.queued += chunk.length;
    this.last = this.last.then(() =>
      writeAt(this.fd, chunk, position).then(
        () => void (this.queued -= chunk.length),
        (e: NodeJS.ErrnoException) => void (this.failed ??= new DropPart(`write the blob's copy: ${e.code ?? e.message}`)),
      ),
    );
    if (this.queued > APPEND_AHEAD) await this.flush();
  }

  async flush(): Promise<void> {
    await this.last;
    if (this.failed) throw this.failed;
  }

  async close(): Promise<void> {
    await this.last;
    fs.closeSync(this.fd);
  }
}

/** pwrite of all of chunk, going on after a short write (a full disk then reports ENOSPC). */
function writeAt(fd: number, chunk: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.write(fd, chunk, 0, chunk.length, position, (err, n) => {
      if (err) return reject(err);
      if (n < chunk.length) return writeAt(fd, chunk.subarray(n), position + n).then(resolve, reject);
      resolve();
    }),
  );
}

const APPEND_AHEAD = 8 << 20;

/** A download whose part must not be kept for a resume: bytes that are not the blob, or a copy the disk did not take. */
class DropPart extends TsrunError {}

/** How many times one pull asks again for the rest of a blob whose connection broke. */
const RESUMES = 3;

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
  // The config: small, read whole, checked.
  if (!store.hasBlob(manifest.config.digest)) {
    if (manifest.config.size > MAX_JSON_BLOB_BYTES) throw new TsrunError(`pull ${repo.name}: config ${manifest.config.digest} is ${manifest.config.size} bytes, more than a config may have`);
    await store.lockedAsync(`locks/blob-${manifest.config.digest.slice(7)}`, async () => {
      if (!store.hasBlob(manifest.config.digest)) await repo.fetch(store, manifest.config);
    });
  }
  const diffIDs = diffIDsOf(store, manifest, repo.name);
  const shown = opts.progress ?? lineBoard(opts.log);
  // Layers, a few at once; each behind a lock of its own, so two pulls
  // download it once; each unpacked as it arrives. The first failure stops
  // the others, and the pull ends when all have.
  const halt = new AbortController();
  const todo = manifest.layers.map((desc, i) => ({ desc, diffID: diffIDs[i] }));
  for (const { desc } of todo) shown.set(short(desc), store.hasBlob(desc.digest) ? 'Already exists' : 'Waiting');
  const layer = async (desc: Descriptor, diffID: string) => {
    const key = short(desc);
    if (store.hasBlob(desc.digest) || halt.signal.aborted) return store.hasBlob(desc.digest) && shown.set(key, 'Already exists', true);
    const started = Date.now();
    const onBytes = (n: number) => shown.set(key, `Downloading ${bar(n, desc.size)}`);
    if (store.hasLayer(diffID)) return repo.fetch(store, desc, onBytes, halt.signal).then(() => shown.set(key, 'Pull complete', true));
    // A layer that would not unpack is not kept for a resume; what a broken connection brought is.
    let downloadFailed = false;
    let downloaded = false;
    const stop = new AbortController();
    const stopAll = () => stop.abort();
    halt.signal.addEventListener('abort', stopAll);
    const source = (async function* () {
      try {
        yield* repo.blob(store, desc, onBytes, stop.signal);
        downloaded = true;
      } catch (e) {
        downloadFailed = true;
        throw e;
      }
    })();
    try {
      await store.layerFrom(desc, diffID, source);
      // A layer another pull unpacked meanwhile takes nothing from the source: the blob still comes whole.
      for await (const _ of source) void _;
    } catch (e) {
      const byDownload = downloadFailed;
      stop.abort();
      // The download ends (its file closed) before its part is judged: nothing writes to it after.
      await source.return(undefined).catch(() => {});
      if (!byDownload) fs.rmSync(store.ingestPath(desc.digest), { force: true });
      throw e;
    } finally {
      halt.signal.removeEventListener('abort', stopAll);
    }
    if (!downloaded) throw new TsrunError(`pull ${repo.name}: blob ${desc.digest}: the unpack ended before the blob did`);
    store.adoptBlob(store.ingestPath(desc.digest), desc.digest);
    shown.set(key, `Pull complete (${(desc.size / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s)`, true);
  };
  const worker = async () => {
    for (let next = todo.shift(); next && !halt.signal.aborted; next = todo.shift()) {
      const { desc, diffID } = next;
      try {
        if (store.hasBlob(desc.digest)) shown.set(short(desc), 'Already exists', true);
        else await store.lockedAsync(`locks/blob-${desc.digest.slice(7)}`, () => layer(desc, diffID));
      } catch (e) {
        halt.abort();
        throw e;
      }
    }
  };
  const ended = await Promise.allSettled(Array.from({ length: CONCURRENT_LAYERS }, worker));
  shown.done();
  const failed = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  store.writeBlob(chosen.bytes);
  const name = formatReference(ref);
  const record = store.addImage(chosen.digest, [name], { repoDigest: `${ref.repository}@${top.digest}` });
  return { record, name, digest: top.digest };
}

const short = (d: Descriptor) => d.digest.slice(7, 19);

/** A board that tells only final lines, through log. */
function lineBoard(log: ((line: string) => void) | undefined): Board {
  return { set: (key, text, final) => final && log?.(`${key}: ${text}`), note: (line) => log?.(line), done() {} };
}

/** The config's diffIDs, one per layer of the manifest, so each layer can be unpacked (and checked) as it arrives. */
function diffIDsOf(store: ImageStore, manifest: Manifest, name: string): string[] {
  const ids: unknown = store.readJson<ImageConfig | null>(manifest.config.digest)?.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.length !== manifest.layers.length || !ids.every((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d))) throw new TsrunError(`pull ${name}: config ${manifest.config.digest} does not give a sha256 diffID for each of the manifest's ${manifest.layers.length} layers`);
  return ids as string[];
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
