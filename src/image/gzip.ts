// gzip on every core: the stream is cut into blocks, each compressed as a
// gzip member of its own in libuv's threadpool, and the members written in
// order. A concatenation of members is one valid gzip stream (RFC 1952
// 2.2), which every layer reader here and in Docker, containerd and
// skopeo (Go's multistream gzip.Reader) reads back as the whole.
import os = require('node:os');
import { Transform, type TransformCallback } from 'node:stream';
import zlib = require('node:zlib');

const BLOCK = 4 << 20;
/** A block whose first PROBE bytes do not shrink by 3% is stored, not deflated (compressed media, random data): it would not shrink either, and deflating it is most of commit's time. */
const PROBE = 128 << 10;

export function parallelGzip(level = 1, workers = Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length))): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const inFlight: Promise<Buffer>[] = [];
  const gzip = (block: Buffer, lvl: number) => new Promise<Buffer>((resolve, reject) => zlib.gzip(block, { level: lvl, chunkSize: BLOCK + (64 << 10) }, (err, out) => (err ? reject(err) : resolve(out))));
  const compress = async (block: Buffer) => {
    if (block.length > PROBE && (await gzip(block.subarray(0, PROBE), level)).length > PROBE * 0.97) return gzip(block, 0);
    return gzip(block, level);
  };
  const flushBlock = () => {
    if (!pendingBytes) return;
    inFlight.push(compress(Buffer.concat(pending, pendingBytes)));
    pending = [];
    pendingBytes = 0;
  };
  return new Transform({
    transform(this: Transform, chunk: Buffer, _enc, cb: TransformCallback) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < BLOCK) return cb();
      flushBlock();
      // Past `workers` blocks in flight, wait for the oldest: memory stays bounded, order kept.
      if (inFlight.length < workers) return cb();
      inFlight.shift()!.then((out) => {
        this.push(out);
        cb();
      }, cb);
    },
    flush(this: Transform, cb: TransformCallback) {
      flushBlock();
      // An empty stream is still one (empty) member, as gzip writes it.
      if (!inFlight.length) inFlight.push(compress(Buffer.alloc(0)));
      Promise.all(inFlight).then((outs) => {
        for (const o of outs) this.push(o);
        cb();
      }, cb);
    },
  });
}
