// gzip on every core (commit's layers): what it writes reads back as the
// input with gunzip and with Node's zlib, text shrinks, random data is
// stored rather than deflated, an empty stream is still a gzip stream.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import t from 'tap';
import { parallelGzip } from '../src/image/gzip';

async function gz(input: Buffer, level = 1): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([input.subarray(0, 1000), input.subarray(1000)]), parallelGzip(level, 2), async function* (src) {
    for await (const c of src) out.push(c as Buffer);
  });
  return Buffer.concat(out);
}

t.test('many members, one stream: gunzip and zlib read back the input', async (t) => {
  const text = Buffer.from('the runtime mounts a layer; '.repeat(600_000));
  const random = crypto.randomBytes(9 << 20);
  const input = Buffer.concat([text, random, text.subarray(0, 12345)]);
  const out = await gz(input);
  t.ok(zlib.gunzipSync(out).equals(input), 'zlib');
  t.ok(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 64 << 20 }).equals(input), 'gzip -dc');
  t.ok(out.length < random.length * 1.01 + text.length * 0.2, 'text shrinks, random data costs almost nothing more');
});

t.test('random data is stored, not deflated: its size stays', async (t) => {
  const random = crypto.randomBytes(8 << 20);
  const out = await gz(random);
  t.ok(zlib.gunzipSync(out).equals(random));
  t.ok(out.length < random.length * 1.001, `${out.length} bytes for ${random.length}`);
});

t.test('an empty stream is an empty gzip stream', async (t) => {
  const out = await gz(Buffer.alloc(0));
  t.equal(zlib.gunzipSync(out).length, 0);
  t.equal(out[0], 0x1f);
});
