// Building images in tests: tarballs entry by entry (hostile ones too), and
// OCI layouts from layers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { TEST_BASE } from './helpers';

export interface Entry {
  name: string;
  type?: tar.Header['type'];
  data?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => pack.on('end', r));
  for (const e of entries) {
    const type = e.type ?? (e.name.endsWith('/') ? 'directory' : 'file');
    const header: tar.Header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_700_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
    };
    await new Promise<void>((resolve, reject) => pack.entry(header, type === 'file' ? e.data ?? '' : undefined, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const gzip = (b: Buffer) => zlib.gzipSync(b);
export const sha = (b: Buffer | string) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');

/** Writes an OCI image layout with these (gzipped) layers; returns its directory. */
export function makeLayout(name: string, tag: string, layers: Buffer[], config: object = { Cmd: ['sh'] }): string {
  const dir = path.join(TEST_BASE, 'layouts', `${name}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`);
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer | string) => {
    const d = sha(b);
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return { digest: d, size: Buffer.byteLength(b) };
  };
  const layerDescs = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gzip(l)) }));
  const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], ...config }, rootfs: { type: 'layers', diff_ids: layers.map(sha) } });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(cfg) }, layers: layerDescs });
  const m = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
  return dir;
}
