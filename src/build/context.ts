// Where COPY and ADD take their files from: the build context (a directory,
// less what .dockerignore excludes) or another stage's or image's root.
// Every source path is resolved inside its root (openat2 RESOLVE_IN_ROOT):
// a symlink in the context leads at most elsewhere in the context, and a
// source named outside it ("../x") is refused, never read.
import fs = require('node:fs');
import path = require('node:path');
import { crypto } from '../lazy';
import { TsrunError } from '../errors';
import { IN_ROOT, native } from '../native';
import { fdPath, O_PATH, readTree } from '../rootfs/tree-io';
import type { TreeEntry } from '../image/unpack';
import { globRegExp, hasGlob } from './words';
import { statInRoot } from './steps';

/** A tree sources are read from. */
export interface SourceRoot {
  /** O_PATH fd of its top directory. */
  fd: number;
  /** For messages: "the build context", "stage builder". */
  label: string;
  /** Whether a path (relative to the top, no leading "/") is part of it. */
  keep?: (rel: string, isDir: boolean) => boolean;
}

export interface Source {
  /** Relative to the root, "" for the root itself. */
  rel: string;
  /** What it is, links inside the root followed. */
  st: fs.Stats;
}

/** The context directory with its .dockerignore. */
export function openContext(dir: string): SourceRoot & { close(): void } {
  let fd: number;
  try {
    fd = fs.openSync(dir, O_PATH | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw new TsrunError(`open the build context ${dir}: ${(e as NodeJS.ErrnoException).code}`);
  }
  let keep: SourceRoot['keep'];
  let text: string | undefined;
  try {
    text = fs.readFileSync(path.join(dir, '.dockerignore'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new TsrunError(`read ${path.join(dir, '.dockerignore')}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (text !== undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ignore = (require('@balena/dockerignore') as typeof import('@balena/dockerignore')).default;
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const matcher = ignore().add(lines);
    // A directory excluded may still hold what a "!" line takes back: it is then walked.
    const exceptions = lines.some((l) => l.startsWith('!'));
    keep = (rel, isDir) => !matcher.ignores(rel) || (isDir && exceptions);
  }
  return { fd, label: 'the build context', keep, close: () => fs.closeSync(fd) };
}

/** A source path made relative to its root; "../x" leaving the context is refused. */
function relative(root: SourceRoot, pattern: string, what: string): string {
  const norm = path.posix.normalize(pattern.replace(/^\/+/, '') || '.');
  if (root.label === 'the build context' && (norm === '..' || norm.startsWith('../'))) throw new TsrunError(`${what}: ${pattern} is outside the build context`);
  return path.posix.normalize(`/${norm}`).slice(1).replace(/\/+$/, '');
}

const statIn = (root: SourceRoot, rel: string) => statInRoot(root.fd, rel);

const kept = (root: SourceRoot, rel: string, st: fs.Stats) => !rel || !root.keep || root.keep(rel, st.isDirectory());

/** The sources a COPY or ADD pattern names: one path, or what a glob matches (segment by segment, as Docker matches). */
export function matchSources(root: SourceRoot, pattern: string, what: string): Source[] {
  const rel = relative(root, pattern, what);
  if (!hasGlob(rel)) {
    const st = statIn(root, rel);
    if (!st || !kept(root, rel, st)) throw new TsrunError(`${what}: ${pattern}: no such file or directory in ${root.label}${st ? ' (.dockerignore excludes it)' : ''}`);
    return [{ rel, st }];
  }
  let found = [''];
  for (const seg of rel.split('/')) {
    const next: string[] = [];
    for (const dir of found) {
      if (!hasGlob(seg)) {
        next.push(dir ? `${dir}/${seg}` : seg);
        continue;
      }
      const re = globRegExp(seg);
      let names: string[];
      try {
        const fd = native().openat2(root.fd, dir || '.', O_PATH | fs.constants.O_DIRECTORY, IN_ROOT);
        try {
          names = fs.readdirSync(fdPath(fd));
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        continue;
      }
      for (const n of names.sort()) if (re.test(n)) next.push(dir ? `${dir}/${n}` : n);
    }
    found = next;
  }
  const out: Source[] = [];
  for (const r of found) {
    const st = statIn(root, r);
    if (st && kept(root, r, st)) out.push({ rel: r, st });
  }
  if (!out.length) throw new TsrunError(`${what}: ${pattern}: no source files were specified (nothing in ${root.label} matches)`);
  return out;
}

/** Opens a source (links inside the root followed) for readTree. */
export function openSource(root: SourceRoot, src: Source): number {
  return native().openat2(root.fd, src.rel || '.', O_PATH, IN_ROOT);
}

/** A source's entries, named under `name` ("." for a directory's contents), .dockerignore applied. */
export async function* sourceEntries(root: SourceRoot, src: Source, name: string, owner: (st: fs.Stats) => { uid: number; gid: number }): AsyncGenerator<TreeEntry> {
  const fd = openSource(root, src);
  try {
    const keep = root.keep;
    yield* readTree(fd, '', { name, owner, keep: keep && ((rel, isDir) => keep(src.rel ? `${src.rel}/${rel}` : rel, isDir)) });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The content hash of sources, for the build cache: names, types, modes,
 * link targets and bytes; not times or owners (COPY sets its own owner,
 * and a touched file with the same bytes is the same source, as Docker has it).
 */
export async function sourcesHash(root: SourceRoot, sources: Source[]): Promise<string> {
  const h = crypto().createHash('sha256');
  for (const s of sources) {
    h.update(`source ${s.rel}\0`);
    for await (const e of sourceEntries(root, s, '.', () => ({ uid: 0, gid: 0 }))) {
      const x = e.header;
      h.update(`${x.name}\0${x.type}\0${(x.mode ?? 0).toString(8)}\0${x.linkname ?? ''}\0${x.size ?? 0}\0${x.devmajor ?? 0},${x.devminor ?? 0}\0`);
      for await (const chunk of e.body) h.update(chunk);
    }
  }
  return h.digest('hex');
}
