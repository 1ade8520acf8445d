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
 * dest, an empty directory private to the caller. Nothing is copied when
 * the image has nothing there or no directory. Returns the entries written.
 */
export async function copyUp(layerDirsTopFirst: string[], target: string, dest: string): Promise<number> {
  const hit = resolveMerged(layerDirsTopFirst, target);
  if (!hit?.dir || !hit.st.isDirectory()) return 0;
  return writeTree(dest, mergedEntries(hit.abs, hit.st, hit.dir), `copy the image's ${target} into the volume at ${dest}`);
}
