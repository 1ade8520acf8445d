// Resolving an image's User ("name", "uid", "uid:gid", "name:group") in the
// image's own /etc/passwd and /etc/group, read from its layers top-down.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { MAX_ID } from '../spec/validate';
import { native } from '../native';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

/** Files read whole to resolve a user: /etc/passwd and /etc/group. */
const MAX_ACCOUNT_FILE = 16 << 20;

/** Path components a lookup may resolve in all, symlinks included: bounds the work a hostile image can ask for. */
const MAX_COMPONENTS = 4096;

/**
 * A directory of the merged view: where it is, as a real directory, in each
 * layer that adds to it (null where a layer has nothing there, or where a
 * layer above hides the rest by a whiteout, a non-directory or opacity).
 */
type MergedDir = (string | null)[];

const isWhiteout = (st: fs.Stats) => st.isCharacterDevice() && st.rdev === 0;
const isOpaque = (dir: string) => native().lgetxattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';

/** One component further, as overlayfs looks it up: the topmost entry, and the merged directory if it is one. */
function lookupIn(dir: MergedDir, name: string): { abs: string; st: fs.Stats; dir?: MergedDir } | null {
  let top: { abs: string; st: fs.Stats } | undefined;
  const below: MergedDir = dir.map(() => null);
  for (let i = 0; i < dir.length; i++) {
    if (dir[i] === null) continue;
    const abs = `${dir[i]}/${name}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch {
      continue; // nothing here in this layer: lower ones may have it
    }
    if (!top) {
      if (isWhiteout(st)) return null;
      top = { abs, st };
      if (!st.isDirectory()) return top;
    } else if (!st.isDirectory()) {
      break; // a whiteout or non-directory under a directory ends the merge
    }
    below[i] = abs;
    if (isOpaque(abs)) break;
  }
  return top ? { ...top, dir: below } : null;
}

/**
 * Reads a file as the merged overlay would show it: the topmost layer that
 * has it wins; a whiteout or an opaque directory above hides lower copies.
 * Symlinks on the way are followed as the container would follow them,
 * inside the image: an absolute one starts again at the image's root, never
 * the host's. Each component costs one lstat per layer; a lookup past
 * MAX_COMPONENTS components (symlinks included) gives up. undefined when the
 * file is absent, not a regular file, or out of that reach.
 */
export function readMergedFile(layerDirsTopFirst: string[], file: string): string | undefined {
  const rootDir = (): MergedDir => {
    const d: MergedDir = layerDirsTopFirst.map(() => null);
    for (let i = 0; i < layerDirsTopFirst.length; i++) {
      d[i] = layerDirsTopFirst[i];
      if (isOpaque(layerDirsTopFirst[i])) break;
    }
    return d;
  };
  let stack: MergedDir[] = [rootDir()];
  let todo = file.split('/').filter(Boolean);
  for (let hops = 0, budget = MAX_COMPONENTS; todo.length; ) {
    if (--budget < 0 || todo.length > MAX_COMPONENTS) return undefined;
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const hit = lookupIn(stack[stack.length - 1], name);
    if (!hit) return undefined;
    if (hit.st.isSymbolicLink()) {
      if (++hops > 40) return undefined;
      const target = fs.readlinkSync(hit.abs);
      if (target.startsWith('/')) stack = [stack[0]];
      todo = [...target.split('/').filter(Boolean), ...todo];
      continue;
    }
    if (todo.length === 0) {
      if (!hit.st.isFile() || hit.st.size > MAX_ACCOUNT_FILE) return undefined;
      // Every directory on the way was checked to be a real one in its layer.
      return fs.readFileSync(hit.abs, 'utf8');
    }
    if (!hit.dir) return undefined;
    stack.push(hit.dir);
  }
  return undefined;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7 && /^\d+$/.test(f[2]) && /^\d+$/.test(f[3]))
    .map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] }));
}

function parseGroup(text: string | undefined): { name: string; gid: number; members: string[] }[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]))
    .map((f) => ({ name: f[0], gid: Number(f[2]), members: f[3].split(',').filter(Boolean) }));
}

/** A numeric id from -u or an image's User, within what setresuid(2) can give. */
function numericId(text: string, what: string): number {
  const n = Number(text);
  if (n > MAX_ID) throw new TsrunError(`${what} ${text} is out of range: ids go from 0 to ${MAX_ID}`);
  return n;
}

export function resolveUser(spec: string, passwdText: string | undefined, groupText: string | undefined): ResolvedUser {
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  const [userPart, groupPart] = spec === '' ? ['0', undefined] : spec.split(':', 2);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (/^\d+$/.test(userPart)) {
    uid = numericId(userPart, 'uid');
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new TsrunError(`unable to find user ${userPart}: no matching entries in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = numericId(groupPart, 'gid');
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new TsrunError(`unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
      gid = g.gid;
    }
  }
  // Docker's supplementary groups: the primary group, plus (when no group
  // was named) every group that lists the user as a member.
  const member = groupPart === undefined && entry ? groups.filter((g) => g.members.includes(entry!.name)).map((g) => g.gid) : [];
  const additionalGids = [...new Set([gid, ...member])];
  // Ids from the image's own files are checked as typed ones are: a hostile
  // /etc/passwd must not wrap a name to uid 0.
  numericId(String(uid), `uid of user ${userPart}`);
  for (const g of additionalGids) numericId(String(g), `gid (of user ${userPart})`);
  return { uid, gid, additionalGids, home: entry?.home };
}
