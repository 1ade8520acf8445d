// commit: a container's writable layer becomes a new gzip layer on top of
// its image's, and its config (command, environment, -c changes) the new
// image's config, with a history entry as Docker writes one.
import fs = require('node:fs');
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crypto } from '../lazy';
import { TsrunError } from '../errors';
import type { Registry } from '../container/registry';
import { containerLayers, fsError, upperOwner, whileStill } from '../container/filesystem';
import type { Digest } from './digest';
import { applyChange } from './import';
import type { ImageRecord, ImageStore } from './store';
import { packTar, upperEntries } from './tree';
import { parallelGzip } from './gzip';
import { MEDIA, type Descriptor, type ImageConfig, type Manifest } from './types';

export interface CommitOptions {
  /** -c: Dockerfile instructions applied to the new config. */
  changes?: string[];
  /** -m: the history entry's comment. */
  message?: string;
  /** -a */
  author?: string;
  /** false: Docker's --pause=false, refused for a running container (its layer is read frozen or not at all). */
  pause?: boolean;
}

function hashing(hash: ReturnType<ReturnType<typeof crypto>['createHash']>, count: { bytes: number }) {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      count.bytes += chunk.length;
      cb(null, chunk);
    },
  });
}

export interface PackedLayer {
  desc: Descriptor;
  diffID: Digest;
}

/**
 * A tar stream stored as a gzip layer blob: its digest and its diffID
 * (the plain tar's) taken as it streams. `around` wraps the reading and
 * writing (commit holds the container still meanwhile); the file is opened
 * before it, so that a failure to open is an error here.
 */
export async function writeLayer(store: ImageStore, tar: () => NodeJS.ReadableStream, around: (write: () => Promise<void>) => Promise<void> = (write) => write()): Promise<PackedLayer> {
  const tmp = store.tmpPath('layer');
  const plainHash = crypto().createHash('sha256');
  const blobHash = crypto().createHash('sha256');
  const plain = { bytes: 0 };
  const blob = { bytes: 0 };
  const out = fs.createWriteStream('', { fd: fs.openSync(tmp, 'w', 0o600) });
  try {
    await around(() => pipeline(tar(), hashing(plainHash, plain), parallelGzip(1), hashing(blobHash, blob), out));
  } catch (e) {
    out.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const digest: Digest = `sha256:${blobHash.digest('hex')}`;
  store.adoptBlob(tmp, digest);
  return { desc: { mediaType: MEDIA.ociLayerGzip, digest, size: blob.bytes }, diffID: `sha256:${plainHash.digest('hex')}` };
}

export async function commitContainer(registry: Registry, ref: string, name: string | undefined, opts: CommitOptions = {}): Promise<ImageRecord> {
  const store = registry.images;
  const layers = containerLayers(registry, ref);
  const { info } = layers;
  const base = store.get(info.imageId);
  const config: ImageConfig = structuredClone(base.config);
  const c = (config.config ??= {});
  // Docker's commit takes the container's own settings: the command it ran, its environment, its user.
  c.Cmd = info.config.cmd;
  c.Entrypoint = info.config.entrypoint;
  c.Env = info.config.env.filter((e) => !e.startsWith('HOSTNAME='));
  c.User = info.config.user || undefined;
  c.WorkingDir = info.config.workingDir === '/' && !base.config.config?.WorkingDir ? undefined : info.config.workingDir;
  if (Object.keys(info.config.labels).length) c.Labels = { ...info.config.labels };
  for (const change of opts.changes ?? []) applyChange(c, change);

  if (opts.pause === false && registry.live(info).running) throw new TsrunError(`commit --pause=false: tsrun reads a running container's writable layer only while it is frozen (unfrozen, it could swap a directory for a symlink to a host path mid-read); commit it paused, or stopped`);
  let layer: PackedLayer;
  try {
    layer = await writeLayer(store, () => packTar(upperEntries(layers.upper, layers.lowers, layers.mountPoints, upperOwner(layers))), (write) => whileStill(registry, info.id, 'commit', write));
  } catch (e) {
    throw fsError(`commit ${info.name}: read its writable layer ${layers.upper}`, e);
  }
  const now = new Date().toISOString();
  config.created = now;
  config.rootfs = { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, layer.diffID] };
  config.history = [...(base.config.history ?? []), { created: now, created_by: [info.path, ...info.args].join(' '), ...(opts.message ? { comment: opts.message } : {}), ...(opts.author ? { author: opts.author } : {}) }];
  if (opts.author) (config as ImageConfig & { author?: string }).author = opts.author;
  const configBytes = JSON.stringify(config);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: store.writeBlob(configBytes), size: Buffer.byteLength(configBytes) },
    layers: [...base.manifest.layers, layer.desc],
  };
  return store.addImage(store.writeBlob(JSON.stringify(manifest)), name ? [name] : []);
}
