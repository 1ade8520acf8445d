// cp: files between a container and the host, or a tar stream, with
// Docker's rules for what lands where. The container is reached through
// /proc/PID/root of a process in it (for a stopped container, one made for
// the copy and never started): its volumes, binds and writable layer as
// the container sees them, and every path inside resolved inside its root
// (openat2 RESOLVE_IN_ROOT), so a symlink in the container never leads the
// copy to the host's files.
import fs = require('node:fs');
import path = require('node:path');
import { pipeline } from 'node:stream/promises';
import type * as TarStream from 'tar-stream';
import { TsrunError } from '../errors';
import { IN_ROOT, native } from '../native';
import type { Spec } from '../spec/types';
import { packTar } from '../image/tree';
import { cleanEntryName, type TreeEntry } from '../image/unpack';
import { fdPath, O_PATH, readTree, TreeWriter, type Ids } from '../rootfs/tree-io';
import { createContainer, readBundleSpec } from './create';
import { toContainerId, toHostId, type IdMap } from '../spec/id-map';
import { deleteContainer } from './delete';
import type { Registry } from './registry';
import { isAlive } from './store';
import { mountVolumes } from '../volume/mounts';
import { fsError } from './filesystem';
import { tarStream } from '../lazy';

export interface ContainerRoot {
  fd: number;
  uidMap: IdMap;
  gidMap: IdMap;
}

/** A path as the user wrote it: where it points, and whether it ended in "/" or "/.". */
interface PathSpec {
  rel: string;
  trailingSlash: boolean;
  dotContents: boolean;
}

/** A host path, relative to the working directory, its trailing "/" or "/." kept. */
const hostPathSpec = (raw: string) => pathSpec(path.resolve(raw) + (raw.endsWith('/.') ? '/.' : raw.endsWith('/') ? '/' : ''));

function pathSpec(raw: string): PathSpec {
  const dotContents = raw === '.' || raw.endsWith('/.');
  const trailingSlash = raw.endsWith('/') || dotContents;
  const rel = path.posix.normalize(`/${raw}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return { rel: rel === '.' ? '' : rel, trailingSlash, dotContents };
}

/** Runs fn with an fd of the container's root: a running container's own, or one made for it. */
export async function withContainerRoot<T>(registry: Registry, ref: string, fn: (root: ContainerRoot) => Promise<T>, onInterrupt?: () => void): Promise<T> {
  const id = registry.resolve(ref);
  if (!registry.isManaged(id)) throw new TsrunError(`cp: container ${ref} was made from a bundle (create/run --bundle); cp works on image containers`);
  const spec = readBundleSpec(registry.containerDir(id));
  const maps = { uidMap: spec.linux?.uidMappings, gidMap: spec.linux?.gidMappings };
  const info = registry.read(id);
  const live = registry.live(info);
  if (live.running) {
    const rt = registry.runtimeRecord(id);
    const fd = fs.openSync(`/proc/${live.pid}/root`, O_PATH | fs.constants.O_DIRECTORY);
    try {
      // The pid is the container's only if it is still the process that was started.
      if (!rt || !isAlive(live.pid, rt.pidStartTime)) throw new TsrunError(`cp: container ${info.name} stopped while its root was opened`);
      return await fn({ fd, ...maps });
    } finally {
      fs.closeSync(fd);
    }
  }
  // Stopped: its filesystem, mounts included, in a container made and never started.
  return registry.lock(id, async () => {
    await sweepHelpers(registry);
    await mountVolumes(registry, info);
    const helper = `${HELPER_PREFIX}${id.slice(0, 12)}-${process.pid}`;
    const helperSpec: Spec = structuredClone(spec);
    helperSpec.process = { ...helperSpec.process!, terminal: false };
    // Its network namespace exists only while it runs: the helper gets an empty one.
    helperSpec.linux!.namespaces = (helperSpec.linux!.namespaces ?? []).map((n) => (n.type === 'network' ? { type: 'network' as const } : n));
    // An interrupted copy still removes its helper (a sweep by the next cp finds any that a SIGKILL left).
    let onSignal: (sig: NodeJS.Signals) => void = () => undefined;
    const interruption = new Promise<never>((_, reject) => {
      onSignal = (sig) => {
        // The copy stops reading what it was given (a tar on stdin may never end).
        onInterrupt?.();
        reject(new TsrunError(`cp: interrupted by ${sig}`, 130));
      };
    });
    interruption.catch(() => undefined);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
    try {
      const created = await createContainer({ id: helper, bundle: registry.containerDir(id), spec: helperSpec, root: registry.runtime.root, overlay: info.overlay, stdinNull: true, foreground: true });
      const proc = created.process;
      const exited = proc.exited();
      try {
        const fd = fs.openSync(`/proc/${created.record.pid}/root`, O_PATH | fs.constants.O_DIRECTORY);
        try {
          return await Promise.race([fn({ fd, ...maps }), interruption]);
        } finally {
          fs.closeSync(fd);
        }
      } finally {
        try {
          proc.signal(9);
        } catch {
          /* gone already */
        }
        await exited;
        proc.closePidfd();
        await deleteContainer(helper, { root: registry.runtime.root, force: true });
      }
    } finally {
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
    }
  });
}

const HELPER_PREFIX = 'cp-';

/** Helpers of copies whose tsrun was killed (their id ends in its pid). */
async function sweepHelpers(registry: Registry) {
  let names: string[] = [];
  try {
    names = fs.readdirSync(registry.runtime.root).filter((n) => n.startsWith(HELPER_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(/-(\d+)$/.exec(n)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // its copy is still running
    } catch {
      /* its tsrun is gone */
    }
    await deleteContainer(n, { root: registry.runtime.root, force: true }).catch(() => undefined);
  }
}

/** What is at a path: resolved inside root (symlinks on the way followed there), and its type. */
function lookup(rootFd: number, p: PathSpec, followLast: boolean): { parentFd: number; base: string; st: fs.Stats | undefined } {
  const slash = p.rel.lastIndexOf('/');
  const parentRel = slash < 0 ? '' : p.rel.slice(0, slash);
  const base = slash < 0 ? p.rel : p.rel.slice(slash + 1);
  let parentFd: number;
  try {
    parentFd = native().openat2(rootFd, parentRel || '.', O_PATH | fs.constants.O_DIRECTORY, IN_ROOT);
  } catch (e) {
    throw new TsrunError(`${parentRel ? `/${parentRel}` : '/'}: ${(e as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not a directory' : 'no such directory'}`);
  }
  if (!base) return { parentFd, base, st: fs.fstatSync(parentFd) };
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(fdPath(parentFd, base));
  } catch {
    return { parentFd, base, st: undefined };
  }
  if (st.isSymbolicLink() && (followLast || p.trailingSlash)) {
    // Followed inside the root: an absolute target starts again at the container's /.
    let fd: number;
    try {
      fd = native().openat2(rootFd, p.rel, O_PATH, IN_ROOT);
    } catch {
      return { parentFd, base, st: undefined };
    }
    fs.closeSync(parentFd);
    return { parentFd: fd, base: '', st: fs.fstatSync(fd) };
  }
  return { parentFd, base, st };
}

/**
 * Where a copy of src lands under dst, by Docker's rules: the directory
 * written into, and the name the top entry takes there ("." for a
 * directory's contents).
 */
function landing(rootFd: number, srcIsDir: boolean, srcName: string, srcDotContents: boolean, dst: PathSpec, dstLabel: string): { fd: number; name: string } {
  const d = lookup(rootFd, dst, true);
  const into = (fd: number, name: string) => ({ fd, name });
  if (d.st?.isDirectory()) {
    const fd = d.base ? native().openat2(d.parentFd, d.base, O_PATH | fs.constants.O_DIRECTORY, IN_ROOT) : d.parentFd;
    if (fd !== d.parentFd) fs.closeSync(d.parentFd);
    return srcIsDir && srcDotContents ? into(fd, '.') : into(fd, srcName);
  }
  if (d.st) {
    if (srcIsDir) throw new TsrunError(`cp: cannot copy a directory to ${dstLabel}, which is not a directory`);
    if (dst.trailingSlash) throw new TsrunError(`cp: ${dstLabel} is not a directory`);
    return into(d.parentFd, d.base);
  }
  if (dst.trailingSlash && !srcIsDir) throw new TsrunError(`cp: the destination directory ${dstLabel} does not exist`);
  if (!d.base) throw new TsrunError(`cp: ${dstLabel} cannot be written`);
  return into(d.parentFd, d.base);
}

export interface CopyOptions {
  /** -a: owners as the source has them (else the destination's root, or the caller, owns what is made). */
  archive?: boolean;
  /** -L: a symlink given as the source is followed. */
  followLink?: boolean;
}

async function writeAll(writer: TreeWriter, entries: AsyncIterable<{ header: TarStream.Header; body: AsyncIterable<Buffer> }>) {
  for await (const e of entries) await writer.entry(e.header, e.body);
  writer.finish();
}

function sourceOf(rootFd: number, src: PathSpec, label: string, follow: boolean) {
  const s = lookup(rootFd, src, follow);
  if (!s.st) {
    fs.closeSync(s.parentFd);
    throw new TsrunError(`cp: ${label}: no such file or directory`);
  }
  if (src.trailingSlash && !s.st.isDirectory()) {
    fs.closeSync(s.parentFd);
    throw new TsrunError(`cp: ${label}: not a directory`);
  }
  return s as { parentFd: number; base: string; st: fs.Stats };
}

/** cp CONTAINER:SRC HOST-DST, or to "-": a tar stream on out. */
export async function copyFromContainer(registry: Registry, ref: string, srcPath: string, dst: string, opts: CopyOptions & { out?: NodeJS.WritableStream } = {}): Promise<number> {
  if (dst === '-' && opts.archive) throw new TsrunError('cp -a: a tar stream on stdout always carries the container\'s owners; -a is for a copy to a host path');
  try {
    return await copyOut(registry, ref, srcPath, dst, opts);
  } catch (e) {
    throw cpError(`cp ${ref}:${srcPath} ${dst}`, e);
  }
}

/** One line naming the copy, whatever failed under it. */
function cpError(what: string, e: unknown): TsrunError {
  if (e instanceof TsrunError) return e.message.startsWith('cp') ? e : new TsrunError(`${what}: ${e.message}`, e.exitCode);
  return fsError(what, e);
}

/**
 * What lands on the host must not hand its users more than the container
 * had: without -a, setuid and setgid bits are cleared and device nodes
 * left out (said on stderr), since the files belong to the caller then.
 */
async function* hostSafe(entries: AsyncIterable<TreeEntry>, archive: boolean): AsyncGenerator<TreeEntry> {
  for await (const e of entries) {
    if (!archive && (e.header.type === 'block-device' || e.header.type === 'character-device')) {
      process.stderr.write(`tsrun: cp: left out the device node ${e.header.name} (cp -a copies device nodes)\n`);
      continue;
    }
    yield archive ? e : { ...e, header: { ...e.header, mode: (e.header.mode ?? 0) & ~0o6000 } };
  }
}

async function copyOut(registry: Registry, ref: string, srcPath: string, dst: string, opts: CopyOptions & { out?: NodeJS.WritableStream }): Promise<number> {
  const src = pathSpec(srcPath);
  return withContainerRoot(registry, ref, async (root) => {
    const s = sourceOf(root.fd, src, `${ref}:${srcPath}`, !!opts.followLink);
    try {
      const name = s.base || path.posix.basename(`/${src.rel}`) || '.';
      const inContainer = (st: fs.Stats): Ids => ({ uid: toContainerId(root.uidMap, st.uid), gid: toContainerId(root.gidMap, st.gid) });
      if (dst === '-') {
        // A tar stream carries the container's owners, as Docker's does.
        await pipeline(packTar(readTree(s.parentFd, s.base, { name, owner: inContainer })), opts.out ?? process.stdout);
        return 0;
      }
      const me: Ids = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
      const hostRoot = fs.openSync('/', O_PATH | fs.constants.O_DIRECTORY);
      try {
        const to = landing(hostRoot, s.st.isDirectory(), name, src.dotContents, hostPathSpec(dst), dst);
        try {
          const writer = new TreeWriter(to.fd, (h) => ({ uid: h.uid, gid: h.gid }), false);
          await writeAll(writer, hostSafe(readTree(s.parentFd, s.base, { name: to.name, owner: opts.archive ? inContainer : () => me }), !!opts.archive));
          return writer.entries;
        } finally {
          fs.closeSync(to.fd);
        }
      } finally {
        fs.closeSync(hostRoot);
      }
    } finally {
      fs.closeSync(s.parentFd);
    }
  });
}

/** cp HOST-SRC CONTAINER:DST, or "-": a tar stream from input, into an existing directory. */
export async function copyToContainer(registry: Registry, src: string, ref: string, dstPath: string, opts: CopyOptions & { input?: NodeJS.ReadableStream } = {}): Promise<number> {
  if (src === '-' && opts.followLink) throw new TsrunError('cp -L: a tar stream has no symlink given as the source to follow');
  try {
    return await copyIn(registry, src, ref, dstPath, opts);
  } catch (e) {
    throw cpError(`cp ${src} ${ref}:${dstPath}`, e);
  }
}

async function copyIn(registry: Registry, src: string, ref: string, dstPath: string, opts: CopyOptions & { input?: NodeJS.ReadableStream }): Promise<number> {
  const dst = pathSpec(dstPath);
  const input = opts.input ?? process.stdin;
  return withContainerRoot(registry, ref, async (root) => {
    const toHostIds = (ids: Ids): Ids => ({ uid: toHostId(root.uidMap, ids.uid), gid: toHostId(root.gidMap, ids.gid) });
    if (src === '-') {
      const d = lookup(root.fd, dst, true);
      if (!d.st?.isDirectory()) {
        fs.closeSync(d.parentFd);
        throw new TsrunError(`cp: ${ref}:${dstPath} must be an existing directory to extract a tar stream into`);
      }
      const fd = d.base ? native().openat2(d.parentFd, d.base, O_PATH | fs.constants.O_DIRECTORY, IN_ROOT) : d.parentFd;
      if (fd !== d.parentFd) fs.closeSync(d.parentFd);
      try {
        // The tar's owners with -a, as the other copies; else the container's root owns what is made.
        const writer = new TreeWriter(fd, (h) => toHostIds(opts.archive ? { uid: h.uid ?? 0, gid: h.gid ?? 0 } : { uid: 0, gid: 0 }), false);
        const extract = tarStream().extract();
        const consume = (async () => {
          for await (const entry of extract) {
            const h = entry.header;
            let clean: string | null;
            try {
              clean = cleanEntryName(h.name);
            } catch (e) {
              throw new TsrunError(`cp: tar entry refused: ${(e as Error).message.replace('out of the layer', 'out of the destination')}`);
            }
            if (clean === null && h.type !== 'directory') throw new TsrunError(`cp: tar entry ${JSON.stringify(h.name)} names nothing`);
            if (h.type === 'link') {
              let t: string | null;
              try {
                t = cleanEntryName(h.linkname ?? '');
              } catch {
                t = null;
              }
              if (t === null) throw new TsrunError(`cp: hardlink ${JSON.stringify(h.name)} points at ${JSON.stringify(h.linkname)}`);
              h.linkname = t;
            }
            await writer.entry({ ...h, name: clean ?? '.' }, entry as AsyncIterable<Buffer>);
          }
          writer.finish();
        })();
        consume.catch((e) => extract.destroy(e));
        await Promise.all([pipeline(input, extract), consume]);
        return writer.entries;
      } catch (e) {
        if (e instanceof TsrunError) throw e;
        throw new TsrunError(`cp: extract the tar stream into ${ref}:${dstPath}: ${(e as Error).message}`);
      } finally {
        fs.closeSync(fd);
      }
    }
    const hostRoot = fs.openSync('/', O_PATH | fs.constants.O_DIRECTORY);
    try {
      const hostSrc = hostPathSpec(src);
      const s = sourceOf(hostRoot, hostSrc, src, !!opts.followLink);
      try {
        const name = s.base || path.posix.basename(`/${hostSrc.rel}`) || '.';
        const to = landing(root.fd, s.st.isDirectory(), name, hostSrc.dotContents, dst, `${ref}:${dstPath}`);
        try {
          const writer = new TreeWriter(to.fd, (h) => toHostIds({ uid: h.uid, gid: h.gid }), false);
          await writeAll(writer, readTree(s.parentFd, s.base, { name: to.name, owner: opts.archive ? (st) => ({ uid: st.uid, gid: st.gid }) : () => ({ uid: 0, gid: 0 }) }));
          return writer.entries;
        } finally {
          fs.closeSync(to.fd);
        }
      } finally {
        fs.closeSync(s.parentFd);
      }
    } finally {
      fs.closeSync(hostRoot);
    }
  }, src === '-' ? () => (input as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.() : undefined);
}
