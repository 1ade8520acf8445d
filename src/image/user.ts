// Resolving an image's User ("name", "uid", "uid:gid", "name:group") in the
// image's own /etc/passwd and /etc/group, read from its layers top-down.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { MAX_ID } from '../spec/validate';
import { resolveMerged } from './merged';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

/** Files read whole to resolve a user: /etc/passwd and /etc/group. */
const MAX_ACCOUNT_FILE = 16 << 20;

/** A file as the merged overlay of the image's layers shows it (see resolveMerged). */
export function readMergedFile(layerDirsTopFirst: string[], file: string): string | undefined {
  const hit = resolveMerged(layerDirsTopFirst, file);
  if (!hit || !hit.st.isFile() || hit.st.size > MAX_ACCOUNT_FILE) return undefined;
  // Every directory on the way was checked to be a real one in its layer.
  return fs.readFileSync(hit.abs, 'utf8');
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
