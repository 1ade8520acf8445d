// An image container in a user namespace, where the store's filesystem
// takes no idmapped mount (ramfs; tmpfs before Linux 6.3; NFS): its image
// is copied once into its own directory, owned by the host ids the
// namespace maps the image's ids to, and that copy is the overlay's one
// lower layer. This is Docker's userns-remap way (a chowned copy of the
// layers); it costs the image's size in disk and a copy's time at the
// container's first start, where idmapped mounts cost nothing.
import fs = require('node:fs');
import path = require('node:path');
import { native } from '../native';
import { mergedRoot } from '../image/merged';
import { mergedEntries } from '../image/tree';
import { writeTree, type TreeEntry } from '../image/unpack';
import { toHostId, type IdMap } from '../spec/id-map';

/** True when every layer directory's filesystem takes an idmapped mount for the user namespace. */
export function layersIdmappable(layerDirs: string[], usernsFile: string): boolean {
  return layerDirs.every((d) => native().idmappable(d, usernsFile) === 0);
}

const CAPS = 'SCHILY.xattr.security.capability';
const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const VFS_CAP_REVISION_MASK = 0xff000000;

/**
 * A file capability as the container's root owns it: a v2 capability holds
 * only in the host's user namespace, so it is written as v3 with the host
 * id of the container's root (capabilities(7), "Namespaced file capabilities").
 */
export function capabilityFor(value: Buffer, rootHostId: number): Buffer {
  if (value.length !== 20) return value;
  const magic = value.readUInt32LE(0);
  if ((magic & VFS_CAP_REVISION_MASK) >>> 0 !== VFS_CAP_REVISION_2) return value;
  const v3 = Buffer.alloc(24);
  value.copy(v3, 0, 0, 20);
  v3.writeUInt32LE(((magic & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_3) >>> 0, 0);
  v3.writeUInt32LE(rootHostId >>> 0, 20);
  return v3;
}

async function* remapped(entries: AsyncIterable<TreeEntry>, rootHostId: number): AsyncGenerator<TreeEntry> {
  for await (const e of entries) {
    const pax = e.header.pax as Record<string, string> | undefined;
    if (pax?.[CAPS] !== undefined) e.header.pax = { ...pax, [CAPS]: capabilityFor(Buffer.from(pax[CAPS], 'latin1'), rootHostId).toString('latin1') };
    yield e;
  }
}

/**
 * The image's layers (top first) merged into dest, owned as the namespace
 * maps them. Made aside and renamed into place, so a copy cut short by a
 * kill is made again, never used; a complete one is reused by later starts.
 */
export async function chownedLayers(layerDirsTopFirst: string[], dest: string, uidMap: IdMap, gidMap: IdMap): Promise<string> {
  if (fs.existsSync(dest)) return dest;
  const partial = `${dest}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial, { mode: 0o755 });
  try {
    const top = layerDirsTopFirst[0];
    const owner = (_abs: string, st: { uid: number; gid: number }) => ({ uid: toHostId(uidMap, st.uid), gid: toHostId(gidMap, st.gid) });
    const entries = mergedEntries(top, fs.lstatSync(top), mergedRoot(layerDirsTopFirst), { owner });
    await writeTree(partial, remapped(entries, toHostId(uidMap, 0)), `copy the image's layers, owned by the user namespace's ids, into ${partial}`);
    fs.renameSync(partial, dest);
  } catch (e) {
    native().removeTree(partial);
    throw e;
  }
  return dest;
}

/** Where a container keeps its chowned copy, beside its own directories. */
export const chownedDir = (bundle: string) => path.join(bundle, 'lower');
