// "-" for a file: an archive or tarball given on stdin is copied into the
// store's tmp/ first, then read as a file, so every reader keeps its
// positional reads and bounded work. A plain tar is copied up to its end
// marker only: an endless stream (cat /dev/zero |) ends there too.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import type { ImageStore } from './store';
import { detectCompression, TarFramer } from './unpack';

/** Copies stdin to a temporary file of the store; the caller removes it. */
export async function stdinToFile(store: ImageStore, what: string): Promise<string> {
  if (process.stdin.isTTY) throw new TsrunError(`${what} -: stdin is a terminal; pipe an archive into it (tsrun save -o - IMAGE | tsrun load)`);
  const tmp = store.tmpPath('stdin');
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    let framer: TarFramer | undefined;
    let first = true;
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      if (first) {
        first = false;
        if (detectCompression(chunk) === 'none') framer = new TarFramer();
      }
      // A plain tar's own framing decides how much of it to keep.
      const n = framer ? framer.take(chunk) : chunk.length;
      fs.writeSync(fd, chunk.subarray(0, n));
      if (framer?.ended) break;
    }
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new TsrunError(`${what} -: reading stdin: ${(e as Error).message}`);
  }
  fs.closeSync(fd);
  return tmp;
}
