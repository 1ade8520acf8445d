// Reading a file of a container's root from the host, with the path resolved
// as the container would resolve it: absolute symlinks and ".." stay inside
// the root (openat2 RESOLVE_IN_ROOT), so an image cannot point the runtime
// at a host file.
import fs = require('node:fs');
import { native, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS } from '../native';

const O_PATH = 0o10000000;

/** The file's text, or undefined if it is absent, not a regular file, or larger than max. */
export function readFileInRoot(root: string, file: string, max: number): string | undefined {
  let rootFd = -1;
  let fd = -1;
  try {
    rootFd = fs.openSync(root, O_PATH | fs.constants.O_DIRECTORY);
    // O_NONBLOCK: a fifo planted at that name must not stall the runtime.
    fd = native().openat2(rootFd, file.replace(/^\/+/, ''), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > max) return undefined;
    return fs.readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    if (rootFd >= 0) fs.closeSync(rootFd);
  }
}
