// save: images from the store as one oci-archive (an OCI image layout in a
// tar), which `load` and other tools (skopeo, podman) read back unchanged.
import fs = require('node:fs');
import { pipeline } from 'node:stream/promises';
import { TsrunError } from '../errors';
import type { ImageStore } from './store';
import { MEDIA, type Descriptor, type Index, type Manifest } from './types';
import { tarStream } from '../lazy';

// Loaded on first use: most commands never read a tar, and start-up is paid by every command.

export async function saveImages(store: ImageStore, names: string[], output: string): Promise<void> {
  const index: Index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] };
  const blobs = new Set<string>();
  for (const name of names) {
    const img = store.get(name);
    const manifestBytes = store.readBlob(img.record.manifestDigest);
    const manifest = JSON.parse(manifestBytes.toString()) as Manifest;
    const refName = img.record.names.find((n) => n.endsWith(`:${name.split(':').pop()}`)) ?? img.record.names[0];
    const desc: Descriptor = { mediaType: manifest.mediaType ?? MEDIA.ociManifest, digest: img.record.manifestDigest, size: manifestBytes.length };
    // containerd's convention: the full name, and the tag alone as ref.name.
    if (refName) desc.annotations = { 'io.containerd.image.name': refName, 'org.opencontainers.image.ref.name': refName.slice(refName.lastIndexOf(':') + 1) };
    index.manifests.push(desc);
    for (const d of [img.record.manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) blobs.add(d);
  }
  const pack = tarStream().pack();
  // "-": stdout, as docker save writes when given no file.
  const toStdout = output === '-';
  const tmp = `${output}.tmp-${process.pid}`;
  const written = pipeline(pack, toStdout ? process.stdout : fs.createWriteStream(tmp));
  const add = (name: string, data: Buffer | string) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())));
  try {
    await add('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await add('index.json', JSON.stringify(index));
    for (const digest of blobs) {
      const file = store.blobPath(digest);
      const size = fs.statSync(file).size;
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ name: `blobs/sha256/${digest.slice(7)}`, size, mode: 0o644, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
        fs.createReadStream(file).on('error', reject).pipe(sink);
      });
    }
    pack.finalize();
    await written;
    if (!toStdout) fs.renameSync(tmp, output);
  } catch (e) {
    pack.destroy();
    if (!toStdout) fs.rmSync(tmp, { force: true });
    throw new TsrunError(`save ${output}: ${(e as Error).message}`);
  }
}
