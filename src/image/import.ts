// import: a root filesystem tarball becomes a one-layer image, with
// Dockerfile-style --change instructions for its config.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { digestFile, type Digest } from './digest';
import type { ImageStore, ImageRecord } from './store';
import { MEDIA, type ImageConfig, type Manifest } from './types';
import { decompressor, detectCompression, readHead } from './unpack';
import { stdinToFile } from './stdin';
import { crypto } from '../lazy';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

type Config = NonNullable<ImageConfig['config']>;

/** Applies one Dockerfile-style instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL. */
export function applyChange(config: Config, change: string): void {
  const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(change);
  if (!m) throw new TsrunError(`--change "${change}": expected INSTRUCTION ARGUMENTS, e.g. 'CMD ["sh"]'`);
  const op = m[1].toUpperCase();
  const arg = m[2].trim();
  const list = (): string[] => {
    if (arg.startsWith('[')) {
      let v: unknown;
      try {
        v = JSON.parse(arg);
      } catch {
        throw new TsrunError(`--change "${change}": the JSON array is not valid JSON`);
      }
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new TsrunError(`--change "${change}": expected a JSON array of strings`);
      return v;
    }
    // Shell form, as Docker runs it.
    return ['/bin/sh', '-c', arg];
  };
  const pairs = (): [string, string][] => {
    if (!arg.includes('=')) {
      const sp = arg.indexOf(' ');
      if (sp < 0) throw new TsrunError(`--change "${change}": expected KEY=VALUE or KEY VALUE`);
      return [[arg.slice(0, sp), arg.slice(sp + 1).trim()]];
    }
    const out: [string, string][] = [];
    for (const m2 of arg.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) out.push([m2[1], m2[2].startsWith('"') ? JSON.parse(m2[2]) : m2[2]]);
    return out;
  };
  switch (op) {
    case 'CMD':
      config.Cmd = list();
      return;
    case 'ENTRYPOINT':
      config.Entrypoint = list();
      return;
    case 'ENV':
      for (const [k, v] of pairs()) config.Env = [...(config.Env ?? []).filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
      return;
    case 'WORKDIR':
      config.WorkingDir = arg;
      return;
    case 'USER':
      config.User = arg;
      return;
    case 'LABEL':
      config.Labels = { ...config.Labels, ...Object.fromEntries(pairs()) };
      return;
    case 'EXPOSE':
      for (const p of arg.split(/\s+/)) config.ExposedPorts = { ...config.ExposedPorts, [p.includes('/') ? p : `${p}/tcp`]: {} };
      return;
    case 'VOLUME':
      for (const v of arg.startsWith('[') ? list() : arg.split(/\s+/)) config.Volumes = { ...config.Volumes, [v]: {} };
      return;
    case 'STOPSIGNAL':
      config.StopSignal = arg;
      return;
    default:
      throw new TsrunError(`--change "${change}": unsupported instruction ${op} (use CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME or STOPSIGNAL)`);
  }
}

/**
 * The sha256 of the uncompressed tar, reading through any compression and
 * through tar-stream's parser, so that a file that is not a tar is refused
 * now rather than at the first run.
 */
export async function diffIDOf(file: string): Promise<{ diffID: Digest; entries: number }> {
  const hash = crypto().createHash('sha256');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const extract = (require('tar-stream') as typeof import('tar-stream')).extract();
  let entries = 0;
  const consume = (async () => {
    for await (const entry of extract) {
      entries++;
      for await (const _ of entry) void _;
    }
  })();
  consume.catch((e) => extract.destroy(e));
  await Promise.all([
    pipeline(
      fs.createReadStream(file, { highWaterMark: 1 << 20 }),
      decompressor(detectCompression(readHead(file))),
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          cb(null, chunk);
        },
      }),
      extract,
    ),
    consume,
  ]);
  return { diffID: `sha256:${hash.digest('hex')}`, entries };
}

export async function importRootfs(store: ImageStore, tarball: string, name: string, changes: string[] = [], label = tarball): Promise<ImageRecord> {
  if (tarball === '-') {
    const tmp = await stdinToFile(store, 'import');
    try {
      return await importRootfs(store, tmp, name, changes, 'stdin');
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(tarball);
  } catch (e) {
    throw new TsrunError(`import ${label}: ${(e as NodeJS.ErrnoException).code} (cannot read it)`);
  }
  if (!st.isFile()) throw new TsrunError(`import ${label}: not a regular file`);
  const config: Config = { Env: [...DEFAULT_ENV] };
  for (const c of changes) applyChange(config, c);
  const compression = detectCompression(readHead(tarball));
  const tmp = store.tmpPath('import');
  fs.copyFileSync(tarball, tmp);
  let diffID: Digest;
  try {
    const r = await diffIDOf(tmp);
    if (r.entries === 0) throw new Error('it holds no entries');
    diffID = r.diffID;
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new TsrunError(`import ${label}: not a readable ${compression === 'none' ? 'tar' : compression + ' tar'}: ${(e as Error).message}`);
  }
  const { digest, size } = await digestFile(tmp);
  store.adoptBlob(tmp, digest);
  const now = new Date().toISOString();
  const imageConfig: ImageConfig = {
    created: now,
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: [diffID] },
    history: [{ created: now, created_by: `tsrun import ${label}`, comment: changes.length ? `changes: ${changes.join('; ')}` : undefined }],
  };
  const configBytes = JSON.stringify(imageConfig);
  const configDigest = store.writeBlob(configBytes);
  const mediaType = compression === 'gzip' ? MEDIA.ociLayerGzip : compression === 'zstd' ? MEDIA.ociLayerZstd : MEDIA.ociLayer;
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: Buffer.byteLength(configBytes) },
    layers: [{ mediaType, digest, size }],
  };
  return store.addImage(store.writeBlob(JSON.stringify(manifest)), [name]);
}
