// Docker's copy-up: a new, empty volume mounted where the image has content
// is filled with that content first, owners, modes, times, xattrs, links
// and device nodes kept. The image is read as its merged layers (no mount
// needed); the volume is written by the unpacker's writer, so a hostile
// image can no more write outside the volume here than in a layer.
import { resolveMerged } from '../image/merged';
import { mergedEntries } from '../image/tree';
import { writeTree } from '../image/unpack';

/**
 * Copies what the image has at target (a path inside the container) into
 * dest, an empty directory private to the caller (owners mapped by hostIds
 * for a user namespace). Nothing is copied when
 * the image has nothing there or no directory. Returns the entries written.
 */
export async function copyUp(layerDirsTopFirst: string[], target: string, dest: string, hostIds?: (uid: number, gid: number) => { uid: number; gid: number }): Promise<number> {
  const hit = resolveMerged(layerDirsTopFirst, target);
  if (!hit?.dir || !hit.st.isDirectory()) return 0;
  // In a user namespace the image's ids are the container's: the volume's files get the host ids they map to.
  const owner = hostIds ? (_abs: string, st: { uid: number; gid: number }) => hostIds(st.uid, st.gid) : undefined;
  return writeTree(dest, mergedEntries(hit.abs, hit.st, hit.dir, { owner }), `copy the image's ${target} into the volume at ${dest}`);
}
