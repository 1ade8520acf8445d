// --userns=host|auto[:size=N] and --uidmap/--gidmap for `run IMAGE`: a user
// namespace whose root is an unprivileged id of the host. `auto` takes a
// range of its own from the ids /etc/subuid and /etc/subgid give the user
// "containers" (podman's convention), apart from every other container's.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import type { IdMapping, Spec } from '../spec/types';
import { MAX_ID } from '../spec/validate';

export interface UsernsFlags {
  /** host (the default) or auto[:size=N]. */
  userns?: string;
  /** CONTAINER:HOST:SIZE, podman's --uidmap. */
  uidmap?: string[];
  gidmap?: string[];
}

/** What a container's user namespace maps, kept in its record: auto leaves no two containers sharing host ids. */
export interface UsernsRecord {
  mode: 'auto' | 'map';
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
}

/** The owner of the ranges --userns=auto hands out, as podman's root-auto-userns-user. */
export const SUBID_USER = 'containers';
export const AUTO_SIZE = 65536;

export function parseIdMap(text: string, flag: string): IdMapping {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text);
  if (!m) throw new TsrunError(`${flag} ${text}: expected CONTAINER_ID:HOST_ID:SIZE`);
  const [containerID, hostID, size] = m.slice(1).map(Number);
  if (size < 1 || containerID + size - 1 > MAX_ID || hostID + size - 1 > 2 ** 32 - 2) throw new TsrunError(`${flag} ${text}: the range does not fit (container ids up to ${MAX_ID}, host ids up to ${2 ** 32 - 2})`);
  return { containerID, hostID, size };
}

/** The ranges /etc/subuid (or subgid) gives a user: NAME:START:COUNT lines. */
export function subordinateRanges(file: string, user: string): { start: number; count: number }[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.trim().split(':'))
    .filter((f) => f.length === 3 && f[0] === user && /^\d+$/.test(f[1]) && /^\d+$/.test(f[2]))
    .map((f) => ({ start: Number(f[1]), count: Number(f[2]) }));
}

/** The first `size` ids of ranges that overlap none of the taken ones. */
export function allocate(ranges: { start: number; count: number }[], taken: { start: number; count: number }[], size: number): number | undefined {
  for (const r of ranges) {
    let at = r.start;
    const end = r.start + r.count;
    while (at + size <= end) {
      const clash = taken.find((t) => at < t.start + t.count && t.start < at + size);
      if (!clash) return at;
      at = clash.start + clash.count;
    }
  }
  return undefined;
}

function parseUserns(v: string | undefined): { mode: 'host' } | { mode: 'auto'; size: number } {
  if (v === undefined || v === '' || v === 'host') return { mode: 'host' };
  const m = /^auto(?::size=(\d+))?$/.exec(v);
  if (!m) throw new TsrunError(`--userns ${v}: tsrun knows host and auto[:size=N]`);
  const size = m[1] ? Number(m[1]) : AUTO_SIZE;
  if (size < 1 || size > MAX_ID) throw new TsrunError(`--userns ${v}: the size must be from 1 to ${MAX_ID}`);
  return { mode: 'auto', size };
}

/**
 * The user namespace's part of the spec. `taken` lists the host ranges
 * other containers hold (for auto); the caller holds a lock across this
 * and writing the record, so two runs cannot take one range.
 */
export function applyUserns(spec: Spec, f: UsernsFlags, taken: () => { start: number; count: number }[], files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): UsernsRecord | undefined {
  const ns = parseUserns(f.userns);
  let uid: IdMapping[];
  let gid: IdMapping[];
  let mode: UsernsRecord['mode'];
  if (ns.mode === 'auto') {
    if (f.uidmap?.length || f.gidmap?.length) throw new TsrunError('--userns=auto and --uidmap/--gidmap cannot be used together: auto chooses the mapping');
    const used = taken();
    const pick = (file: string) => {
      const ranges = subordinateRanges(file, SUBID_USER);
      if (!ranges.length) throw new TsrunError(`--userns=auto: ${file} gives the user "${SUBID_USER}" no ids (add a line such as ${SUBID_USER}:2147483647:2147483648)`);
      const start = allocate(ranges, used, ns.size);
      if (start === undefined) throw new TsrunError(`--userns=auto: no ${ns.size} ids of ${file}'s ranges for "${SUBID_USER}" are free of other containers`);
      return start;
    };
    uid = [{ containerID: 0, hostID: pick(files.subuid), size: ns.size }];
    gid = [{ containerID: 0, hostID: pick(files.subgid), size: ns.size }];
    mode = 'auto';
  } else if (f.uidmap?.length || f.gidmap?.length) {
    uid = (f.uidmap ?? f.gidmap ?? []).map((m) => parseIdMap(m, f.uidmap?.length ? '--uidmap' : '--gidmap'));
    gid = (f.gidmap?.length ? f.gidmap : f.uidmap ?? []).map((m) => parseIdMap(m, f.gidmap?.length ? '--gidmap' : '--uidmap'));
    mode = 'map';
  } else {
    return undefined;
  }
  const user = spec.process!.user;
  const mapped = (maps: IdMapping[], id: number) => maps.some((m) => id >= m.containerID && id < m.containerID + m.size);
  if (!mapped(uid, 0) || !mapped(gid, 0)) throw new TsrunError('--uidmap/--gidmap: the container\'s root (id 0) must be mapped: the image\'s files belong to it');
  if (!mapped(uid, user.uid)) throw new TsrunError(`the container's user ${user.uid} is not mapped into its user namespace`);
  for (const g of [user.gid, ...(user.additionalGids ?? [])]) if (!mapped(gid, g)) throw new TsrunError(`the container's group ${g} is not mapped into its user namespace`);
  spec.linux!.namespaces = [...(spec.linux!.namespaces ?? []), { type: 'user' }];
  spec.linux!.uidMappings = uid;
  spec.linux!.gidMappings = gid;
  return { mode, uidMappings: uid, gidMappings: gid };
}
