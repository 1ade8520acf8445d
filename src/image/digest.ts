// sha256 digests as OCI writes them ("sha256:<hex>").
import { crypto } from '../lazy';
import fs = require('node:fs');
import { TsrunError } from '../errors';

export type Digest = `sha256:${string}`;

export function sha256(data: Buffer | string): Digest {
  return `sha256:${crypto().createHash('sha256').update(data).digest('hex')}`;
}

export function digestHex(d: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(d)) throw new TsrunError(`unsupported or malformed digest "${d}": expected sha256:<64 hex digits>`);
  return d.slice(7);
}

export async function digestFile(file: string): Promise<{ digest: Digest; size: number }> {
  const hash = crypto().createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}
