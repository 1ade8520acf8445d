import fs = require('node:fs');
import path = require('node:path');
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { buildImage } from '../build/build';
import { archiveEntries, archiveKind } from '../build/steps';
import { ImageStore } from '../image/store';
import { pruneBuildCache } from '../image/remove';
import { native } from '../native';
import { O_PATH, TreeWriter } from '../rootfs/tree-io';
import { globals } from './common';

const collect = (v: string, p: string[] = []) => [...p, v];

function readStdin(): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw new TsrunError(`read stdin: ${(e as NodeJS.ErrnoException).code}`);
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/** `build -`: stdin is a context tar (plain, gzip or zstd), or a Dockerfile with no context; unpacked into dir. */
async function stdinContext(dir: string): Promise<string | undefined> {
  const data = readStdin();
  const file = path.join(dir, '.stdin');
  fs.writeFileSync(file, data, { mode: 0o600 });
  const fd = fs.openSync(file, O_PATH);
  try {
    const kind = archiveKind(fd);
    if (!kind) return data.toString('utf8');
    const ctx = path.join(dir, 'context');
    fs.mkdirSync(ctx, { mode: 0o700 });
    const dest = fs.openSync(ctx, O_PATH | fs.constants.O_DIRECTORY);
    try {
      const writer = new TreeWriter(dest, (h) => ({ uid: h.uid ?? 0, gid: h.gid ?? 0 }), false);
      for await (const e of archiveEntries(fd, kind, 'the context on stdin')) await writer.entry(e.header, e.body);
      writer.finish();
    } finally {
      fs.closeSync(dest);
    }
    return undefined;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

export function register(program: Command) {
  const builder = program.command('builder').description('the build cache');
  builder
    .command('prune')
    .description('remove the build cache, and the layers and blobs only it kept')
    .action((_o: unknown, cmd: Command) => {
      const r = pruneBuildCache(new ImageStore(globals(cmd).storage));
      process.stdout.write(`removed ${r.entries} cached step${r.entries === 1 ? '' : 's'}, ${r.layers} layer director${r.layers === 1 ? 'y' : 'ies'} and ${r.blobs} blob${r.blobs === 1 ? '' : 's'}\n`);
    });
  program
    .command('build')
    .description('build an image from a Dockerfile: each RUN in a container, each change a layer, steps cached')
    .argument('<context>', 'the context directory, or - (a context tar, or a Dockerfile, on stdin)')
    .option('-t, --tag <name>', 'name[:tag] for the image (repeatable)', collect)
    .option('-f, --file <file>', 'the Dockerfile (default CONTEXT/Dockerfile; - reads it from stdin)')
    .option('--build-arg <k=v>', 'a build arg for ARG (KEY alone takes this environment\'s value; repeatable)', collect)
    .option('--target <stage>', 'build up to this stage (and the stages it needs)')
    .option('--no-cache', 'run every step again')
    .option('--pull', 'pull base images even when the store has them')
    .option('--network <mode>', 'the network of RUN steps: bridge, none or host', 'bridge')
    .option('--label <k=v>', 'a label on the image (repeatable)', collect)
    .option('--iidfile <file>', 'write the image id to this file')
    .option('-q, --quiet', 'print only the image id (a failing step\'s output still shows)')
    .action(async (context: string, opts: { tag?: string[]; file?: string; buildArg?: string[]; target?: string; cache: boolean; pull?: boolean; network: string; label?: string[]; iidfile?: string; quiet?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      if (!['bridge', 'none', 'host', 'default'].includes(opts.network)) throw new TsrunError(`--network ${opts.network}: a build's RUN steps use bridge, none or host`);
      const buildArgs = new Map<string, string>();
      for (const a of opts.buildArg ?? []) {
        const eq = a.indexOf('=');
        if (eq === 0) throw new TsrunError(`--build-arg ${a}: the name is empty`);
        if (eq < 0) {
          if (process.env[a] !== undefined) buildArgs.set(a, process.env[a]!);
        } else buildArgs.set(a.slice(0, eq), a.slice(eq + 1));
      }
      const labels: Record<string, string> = {};
      for (const l of opts.label ?? []) {
        const eq = l.indexOf('=');
        if (eq === 0) throw new TsrunError(`--label ${l}: the name is empty`);
        labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
      }
      if (context === '-' && opts.file === '-') throw new TsrunError('build - -f -: stdin can hold the context or the Dockerfile, not both');
      const store = new ImageStore(g.storage);
      let tmp: string | undefined;
      let text: string | undefined;
      let contextDir = context;
      // -q: RUN output is kept and shown only if the build fails.
      const held: Buffer[] = [];
      const quiet = !!opts.quiet;
      try {
        if (context === '-') {
          tmp = store.tmpPath('build');
          fs.mkdirSync(tmp, { mode: 0o700 });
          text = await stdinContext(tmp);
          contextDir = text === undefined ? path.join(tmp, 'context') : tmp;
        } else if (opts.file === '-') text = readStdin().toString('utf8');
        const result = await buildImage({
          context: contextDir,
          file: opts.file === '-' ? undefined : opts.file,
          text,
          tags: opts.tag,
          buildArgs,
          target: opts.target,
          noCache: !opts.cache,
          pull: !!opts.pull,
          network: opts.network === 'default' ? 'bridge' : opts.network,
          labels,
          storage: g.storage,
          root: g.root,
          log: quiet ? () => undefined : (line) => process.stderr.write(`${line}\n`),
          output: quiet ? (c) => void held.push(c) : (c) => void process.stderr.write(c),
          registry: { log: quiet ? () => undefined : (line) => process.stderr.write(`${line}\n`) },
        });
        if (opts.iidfile) fs.writeFileSync(opts.iidfile, result.id);
        if (!quiet) for (const t of opts.tag ?? []) process.stderr.write(`naming to ${t}\n`);
        process.stdout.write(`${result.id}\n`);
      } catch (e) {
        if (quiet) for (const c of held) process.stderr.write(c);
        throw e;
      } finally {
        if (tmp) native().removeTree(tmp);
      }
    });
}
