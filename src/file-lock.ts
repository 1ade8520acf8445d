// An flock on a file, held across processes while fn runs. Polled with
// LOCK_NB: a blocking flock would stall Node's event loop.
import fs = require('node:fs');
import { LOCK_EX, LOCK_NB, native } from './native';

export async function withFileLock<T>(file: string, fn: () => Promise<T> | T, pollMs = 10): Promise<T> {
  const fd = fs.openSync(file, 'a');
  try {
    while (!native().flock(fd, LOCK_EX | LOCK_NB)) await new Promise((r) => setTimeout(r, pollMs));
    return await fn();
  } finally {
    fs.closeSync(fd);
  }
}
