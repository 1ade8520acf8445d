// An image's layers read as the overlay of them would show them, without
// mounting it: the topmost layer that has a name wins; a whiteout, a
// non-directory or an opaque directory above hides what is below.
// Symlinks met on the way are followed as the container would follow them,
// inside the image: an absolute one starts again at the image's root, never
// the host's.
import fs = require('node:fs');
import { native } from '../native';

/** Path components a lookup may resolve in all, symlinks included: bounds the work a hostile image can ask for. */
const MAX_COMPONENTS = 4096;

/**
 * A directory of the merged view: where it is, as a real directory, in each
 * layer that adds to it (null where a layer has nothing there, or where a
 * layer above hides the rest by a whiteout, a non-directory or opacity).
 */
export type MergedDir = (string | null)[];

/** An entry of the merged view: the topmost layer's copy, and the merged directory if it is one. */
export interface MergedEntry {
  abs: string;
  st: fs.Stats;
  dir?: MergedDir;
}

const isWhiteout = (st: fs.Stats) => st.isCharacterDevice() && st.rdev === 0;
const isOpaque = (dir: string) => native().lgetxattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';

/** The image's root directory as a merged directory. */
export function mergedRoot(layerDirsTopFirst: string[]): MergedDir {
  const d: MergedDir = layerDirsTopFirst.map(() => null);
  for (let i = 0; i < layerDirsTopFirst.length; i++) {
    d[i] = layerDirsTopFirst[i];
    if (isOpaque(layerDirsTopFirst[i])) break;
  }
  return d;
}

/** One component further, as overlayfs looks it up. */
export function lookupIn(dir: MergedDir, name: string): MergedEntry | null {
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

/** The names a merged directory holds, each once, whiteouts left out. */
export function listMerged(dir: MergedDir): string[] {
  const names = new Set<string>();
  for (const d of dir) if (d !== null) for (const n of fs.readdirSync(d)) names.add(n);
  return [...names].sort();
}

/**
 * A path of the merged view, symlinks on the way (and at the end) followed
 * inside the image. Each component costs one lstat per layer; a lookup past
 * MAX_COMPONENTS components (symlinks included) gives up. undefined when
 * the path is absent or out of that reach; the root is { dir } alone.
 */
export function resolveMerged(layerDirsTopFirst: string[], file: string): MergedEntry | undefined {
  const root = mergedRoot(layerDirsTopFirst);
  let stack: MergedDir[] = [root];
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
      if (target.startsWith('/')) stack = [root];
      todo = [...target.split('/').filter(Boolean), ...todo];
      continue;
    }
    if (todo.length === 0) return hit;
    if (!hit.dir) return undefined;
    stack.push(hit.dir);
  }
  // Ended on a directory reached by ".." or ".", or on the root: the topmost layer's copy of it.
  const top = stack[stack.length - 1];
  const first = top.find((d) => d !== null);
  return first ? { abs: first, st: fs.lstatSync(first), dir: top } : undefined;
}
