// Resolving an image's User ("name", "uid", "uid:gid", "name:group") in the
// image's own /etc/passwd and /etc/group, read from its layers top-down.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

/**
 * Reads a file as the merged overlay would show it: the topmost layer that
 * has it wins; a whiteout or an opaque directory above hides lower copies.
 */
export function readMergedFile(layerDirsTopFirst: string[], file: string): string | undefined {
  const rel = file.replace(/^\/+/, '');
  const parts = rel.split('/');
  for (const layer of layerDirsTopFirst) {
    const abs = path.join(layer, rel);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(abs);
    } catch {
      st = undefined;
    }
    if (st) {
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // whiteout
      if (st.isFile()) return fs.readFileSync(abs, 'utf8');
      return undefined;
    }
    // An opaque parent directory in this layer hides everything below it.
    for (let i = 1; i < parts.length; i++) {
      const dir = path.join(layer, ...parts.slice(0, i));
      try {
        const wh = fs.lstatSync(dir);
        if (wh.isCharacterDevice() && wh.rdev === 0) return undefined;
      } catch {
        break;
      }
    }
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

export function resolveUser(spec: string, passwdText: string | undefined, groupText: string | undefined): ResolvedUser {
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  const [userPart, groupPart] = spec === '' ? ['0', undefined] : spec.split(':', 2);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new TsrunError(`unable to find user ${userPart}: no matching entries in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
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
  return { uid, gid, additionalGids, home: entry?.home };
}
