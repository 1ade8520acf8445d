// The build steps that change files (RUN, COPY, ADD, WORKDIR), each in a
// tsrun container made from the state so far: RUN runs its command there;
// COPY and ADD write through the root of a container that is created and
// never started (the files land in its writable layer, every path resolved
// inside its root). The writable layer then becomes the step's layer, by
// the same code as commit.
import fs = require('node:fs');
import net = require('node:net');
import type * as TarStream from 'tar-stream';
import { TsrunError } from '../errors';
import { IN_ROOT, native } from '../native';
import { createImageContainer, removeContainerFiles } from '../container/run-image';
import { runContainer } from '../container/run';
import { removeContainer } from '../container/remove';
import { withContainerRoot, type ContainerRoot } from '../container/copy';
import { containerLayers, upperOwner } from '../container/filesystem';
import type { Registry } from '../container/registry';
import { connectNetworks, disconnectNetworks } from '../network/attach';
import { writeLayer, type PackedLayer } from '../image/commit';
import type { Image } from '../image/store';
import { packTar, upperChanges, upperEntries } from '../image/tree';
import { cleanEntryName, decompressor, detectCompression, type TreeEntry } from '../image/unpack';
import { fdPath, O_PATH, TreeWriter, type Ids } from '../rootfs/tree-io';
import { tarStream } from '../lazy';

export interface StepContainerOptions {
  registry: Registry;
  image: Image;
  /** For messages and the container's image field. */
  label: string;
  network?: string;
  env?: string[];
  user?: string;
  workdir?: string;
  args?: string[];
}

/** Build containers are named for their build's pid: a container of a build that is gone (killed) is its leftover. */
export const stepName = () => `build-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;

/** Removes the containers of builds whose tsrun was killed. */
export async function sweepSteps(registry: Registry): Promise<void> {
  for (const id of registry.ids()) {
    let name: string;
    try {
      name = registry.read(id).name;
    } catch {
      continue;
    }
    const pid = Number(/^build-(\d+)-[0-9a-f]+$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || fs.existsSync(`/proc/${pid}`)) continue;
    await removeContainer(registry, id, { force: true }).catch(() => undefined);
  }
}

/** The step's change as a layer, or undefined when it changed nothing. */
async function captureLayer(registry: Registry, id: string): Promise<PackedLayer | undefined> {
  const layers = containerLayers(registry, id);
  if (!upperChanges(layers.upper, layers.lowers, layers.mountPoints).length) return undefined;
  return writeLayer(registry.images, () => packTar(upperEntries(layers.upper, layers.lowers, layers.mountPoints, upperOwner(layers))));
}

/** Makes a container from the state, runs fn with it, takes its writable layer, and removes it whatever happens. */
async function inContainer(opts: StepContainerOptions, fn: (id: string) => Promise<void>): Promise<PackedLayer | undefined> {
  const { registry, info } = await createImageContainer({
    image: opts.label,
    resolved: opts.image,
    pull: 'never',
    storage: opts.registry.images.root,
    root: opts.registry.runtime.root,
    name: stepName(),
    args: opts.args ?? ['/'],
    // A container that is never started still needs a command that exists (create checks it): tsrun's init, bound in.
    init: !opts.args,
    entrypoint: '',
    env: opts.env,
    user: opts.user,
    workdir: opts.workdir,
    network: opts.network ?? 'none',
  });
  try {
    await fn(info.id);
    return await captureLayer(registry, info.id);
  } finally {
    await registry.lock(info.id, async () => {
      await disconnectNetworks(registry, info.id).catch(() => undefined);
      removeContainerFiles(registry, info);
    });
  }
}

export interface RunStep extends StepContainerOptions {
  argv: string[];
  /** Where the command's output goes as it comes (both stdout and stderr). */
  output: (chunk: Buffer) => void;
  /** Aborted: the command is killed (an interrupted build). */
  abort?: AbortSignal;
}

/** RUN: the command in a container of the state; its exit status, and the layer of what it changed. */
export async function runStep(opts: RunStep): Promise<{ exitCode: number; layer?: PackedLayer }> {
  let exitCode = 0;
  const layer = await inContainer({ ...opts, args: opts.argv }, async (id) => {
    const info = opts.registry.read(id);
    await connectNetworks(opts.registry, info);
    const [r, w] = native().pipe();
    let writeEnd: number | undefined = w;
    const closeWrite = () => {
      if (writeEnd !== undefined) fs.closeSync(writeEnd);
      writeEnd = undefined;
    };
    const reader = new net.Socket({ fd: r, readable: true, writable: false });
    reader.on('data', opts.output);
    const drained = new Promise<void>((resolve) => {
      reader.on('end', resolve);
      reader.on('close', () => resolve());
      reader.on('error', () => resolve());
    });
    let pid = 0;
    const kill = () => {
      if (pid) process.kill(pid, 'SIGKILL');
    };
    opts.abort?.addEventListener('abort', kill);
    try {
      if (opts.abort?.aborted) return;
      exitCode = await runContainer({
        id,
        bundle: opts.registry.containerDir(id),
        root: opts.registry.runtime.root,
        overlay: info.overlay,
        stdinNull: true,
        stdio: [undefined, w, w],
        onStart: (p) => {
          // The child holds its own copies now.
          closeWrite();
          pid = p;
          if (opts.abort?.aborted) kill();
        },
      });
    } finally {
      opts.abort?.removeEventListener('abort', kill);
      closeWrite();
      // Everything in the container is gone with it (its pid namespace): the pipe ends.
      await drained;
      reader.destroy();
    }
  });
  return { exitCode, layer: exitCode === 0 ? layer : undefined };
}

/** An O_PATH fd of the directory at rel inside the root, made (and its missing parents) if need be. */
export function makeDirInRoot(rootFd: number, rel: string, owner: Ids): number {
  const parts = rel.split('/').filter(Boolean);
  let fd = native().openat2(rootFd, '.', O_PATH | fs.constants.O_DIRECTORY, IN_ROOT);
  for (let i = 0; i < parts.length; i++) {
    const sofar = parts.slice(0, i + 1).join('/');
    let next: number;
    try {
      next = native().openat2(rootFd, sofar, O_PATH | fs.constants.O_DIRECTORY, IN_ROOT);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        fs.closeSync(fd);
        throw new TsrunError(`/${sofar}: ${code === 'ENOTDIR' ? 'not a directory' : code}`);
      }
      try {
        fs.mkdirSync(fdPath(fd, parts[i]), { mode: 0o755 });
        fs.lchownSync(fdPath(fd, parts[i]), owner.uid, owner.gid);
      } catch (e2) {
        fs.closeSync(fd);
        throw new TsrunError(`make /${sofar}: ${(e2 as NodeJS.ErrnoException).code}`);
      }
      next = native().openat2(rootFd, sofar, O_PATH | fs.constants.O_DIRECTORY, IN_ROOT);
    }
    fs.closeSync(fd);
    fd = next;
  }
  return fd;
}

/** What is at rel inside the root, links followed there. */
export function statInRoot(rootFd: number, rel: string): fs.Stats | undefined {
  let fd: number;
  try {
    fd = native().openat2(rootFd, rel || '.', O_PATH, IN_ROOT);
  } catch {
    return undefined;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** One write into the destination: entries under a directory (made if missing). */
export interface Placement {
  /** The directory written into, relative to the root. */
  dir: string;
  entries: () => AsyncIterable<TreeEntry>;
  /** Owners of what is written (header's own for an extracted tar). */
  owner: (h: TarStream.Header) => Ids;
}

export interface CopyStep extends StepContainerOptions {
  /** Decides where things go once the destination root can be looked at. */
  plan: (root: ContainerRoot) => Placement[];
  /** Owner of directories the copy makes on the way. */
  dirOwner: Ids;
}

/** COPY, ADD, WORKDIR: writes into a container of the state; the layer of what changed. */
export async function copyStep(opts: CopyStep): Promise<PackedLayer | undefined> {
  return inContainer(opts, (id) =>
    withContainerRoot(opts.registry, id, async (root) => {
      for (const p of opts.plan(root)) {
        const dest = makeDirInRoot(root.fd, p.dir, opts.dirOwner);
        try {
          const writer = new TreeWriter(dest, p.owner, false);
          for await (const e of p.entries()) await writer.entry(e.header, e.body);
          writer.finish();
        } finally {
          fs.closeSync(dest);
        }
      }
    }),
  );
}

/** A host file's compression if it is an archive ADD extracts: a tar, plain, gzip or zstd. */
export function archiveKind(fd: number): 'gzip' | 'zstd' | 'none' | undefined {
  const head = Buffer.alloc(512);
  const r = fs.openSync(fdPath(fd), 'r');
  let n: number;
  try {
    n = fs.readSync(r, head, 0, 512, 0);
  } finally {
    fs.closeSync(r);
  }
  const c = detectCompression(head.subarray(0, n));
  if (c !== 'none') return c;
  if (n >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
  if (head.subarray(0, 3).toString('latin1') === 'BZh' || head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) throw new TsrunError('ADD: bzip2 and xz archives are not extracted by tsrun build (gzip, zstd and plain tar are); unpack it in a RUN step, or recompress it');
  return undefined;
}

/** A tar file's entries (ADD's extraction), names checked as a layer's are: none may leave the destination. */
export async function* archiveEntries(fd: number, compression: 'gzip' | 'zstd' | 'none', label: string): AsyncGenerator<TreeEntry> {
  const extract = tarStream().extract();
  const input = fs.createReadStream(fdPath(fd));
  const source = compression === 'none' ? input : input.pipe(decompressor(compression));
  input.on('error', (e) => extract.destroy(e));
  source.on('error', (e: Error) => extract.destroy(e));
  source.pipe(extract);
  for await (const entry of extract) {
    const h = entry.header;
    let clean: string | null;
    try {
      clean = cleanEntryName(h.name);
      if (h.type === 'link') {
        const t = cleanEntryName(h.linkname ?? '');
        if (t === null) throw new Error(`hardlink ${h.name} names no target`);
        h.linkname = t;
      }
    } catch (e) {
      throw new TsrunError(`ADD ${label}: entry refused: ${(e as Error).message.replace('out of the layer', 'out of the destination')}`);
    }
    if (clean === null) {
      entry.resume();
      continue;
    }
    if (!['file', 'contiguous-file', 'directory', 'symlink', 'link', 'fifo', 'character-device', 'block-device'].includes(h.type ?? 'file')) {
      entry.resume();
      continue;
    }
    yield { header: { ...h, name: clean }, body: entry as AsyncIterable<Buffer> };
  }
}

