// A container's network namespace, made before the container and bound to a
// file under the state root, so that CNI can wire it and the plan can join
// it by path. No namespace call may run in Node (its threads): util-linux's
// `unshare --net=FILE` makes it in a process of its own, which execs
// iproute2's `ip` inside it to bring lo up (a new namespace has it down):
// the same two execs as `unshare ... true`, where CNI's loopback plugin,
// as containerd runs it, would be a third process costing about 18 ms.
import { execFile } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { native } from '../native';

const MNT_DETACH = 2;

export function netnsPath(root: string, id: string): string {
  return path.join(root, '.netns', id);
}

/** Whether FILE is a bound network namespace (nsfs), not the empty file under it. */
export function isNetns(file: string): boolean {
  try {
    return fs.statSync(file).dev !== fs.statSync(path.dirname(file)).dev;
  } catch {
    return false;
  }
}

export async function makeNetns(file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o711 });
  fs.writeFileSync(file, '', { mode: 0o444 });
  await new Promise<void>((resolve, reject) =>
    execFile('unshare', [`--net=${file}`, 'ip', 'link', 'set', 'lo', 'up'], (e, _out, stderr) => {
      if (!e) return resolve();
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'unshare (util-linux) is not installed' : /No such file|not found/.test(String(stderr)) ? 'ip (iproute2) is not installed' : String(stderr).trim() || e.message;
      fs.rmSync(file, { force: true });
      reject(new TsrunError(`make network namespace ${file}: ${why}`));
    }),
  );
}

/** Unbinds and removes it; what is gone already is fine (the undo after a crash or a reboot). */
export function removeNetns(file: string) {
  for (let i = 0; i < 4 && isNetns(file); i++) {
    try {
      native().umount2(file, MNT_DETACH);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw new TsrunError(`unmount network namespace ${file}: ${code}`);
    }
  }
  fs.rmSync(file, { force: true });
}
