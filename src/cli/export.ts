import fs = require('node:fs');
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { exportContainer } from '../container/filesystem';
import { registryOf } from './common';

export function register(program: Command) {
  program
    .command('export')
    .description('write a container\'s filesystem as a tar archive (to stdout, or -o FILE)')
    .argument('<container>')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (ref: string, opts: { output?: string }, cmd: Command) => {
      if (!opts.output && process.stdout.isTTY) throw new TsrunError('export: refusing to write a tar archive to a terminal; use -o FILE or redirect stdout');
      const registry = registryOf(cmd);
      if (!opts.output) return exportContainer(registry, ref, process.stdout);
      const tmp = `${opts.output}.tmp-${process.pid}`;
      // Opened now, before the container is frozen: a bad path is an error here, not an event later.
      let fd: number;
      try {
        fd = fs.openSync(tmp, 'w', 0o600);
      } catch (e) {
        throw new TsrunError(`export: open ${tmp}: ${(e as NodeJS.ErrnoException).code}`);
      }
      try {
        await exportContainer(registry, ref, fs.createWriteStream('', { fd }));
        fs.renameSync(tmp, opts.output);
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw e;
      }
    });
}
