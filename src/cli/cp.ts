import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { copyFromContainer, copyToContainer } from '../container/copy';
import { registryOf } from './common';

/** Docker's rule: CONTAINER:PATH when a ":" comes before any "/"; a local path with ":" starts with "/" or "./". */
function splitRef(arg: string): { container?: string; path: string } {
  const colon = arg.indexOf(':');
  const slash = arg.indexOf('/');
  if (colon > 0 && (slash < 0 || colon < slash)) return { container: arg.slice(0, colon), path: arg.slice(colon + 1) || '/' };
  return { path: arg };
}

export function register(program: Command) {
  program
    .command('cp')
    .description('copy files between a container (running or not) and the host: `cp SRC CONTAINER:DST`, `cp CONTAINER:SRC DST`; "-" is a tar stream on stdin or stdout')
    .argument('<src>')
    .argument('<dst>')
    .option('-a, --archive', 'keep owners (uid and gid) as the source has them')
    .option('-L, --follow-link', 'follow a symlink given as the source')
    .option('-q, --quiet', 'print nothing (tsrun prints nothing anyway)')
    .action(async (srcArg: string, dstArg: string, opts: { archive?: boolean; followLink?: boolean }, cmd: Command) => {
      const src = splitRef(srcArg);
      const dst = splitRef(dstArg);
      if (src.container && dst.container) throw new TsrunError('cp: copying between containers is not supported; copy to the host first');
      if (!src.container && !dst.container) throw new TsrunError('cp: one of SRC and DST must be CONTAINER:PATH');
      const registry = registryOf(cmd);
      if (src.container) {
        if (dstArg === '-' && process.stdout.isTTY) throw new TsrunError('cp: refusing to write a tar stream to a terminal; redirect stdout');
        await copyFromContainer(registry, src.container, src.path, dstArg === '-' ? '-' : dst.path, opts);
      } else {
        await copyToContainer(registry, srcArg === '-' ? '-' : src.path, dst.container!, dst.path, opts);
      }
    });
}
