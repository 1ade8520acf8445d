import type { Command } from 'commander';
import { saveImages } from '../image/save';
import { ImageStore } from '../image/store';
import { globals } from './common';
import { TsrunError } from '../errors';

export function register(program: Command) {
  program
    .command('save')
    .description('write images to an oci-archive file (or stdout)')
    .option('-o, --output <file>', 'the archive to write; "-" or none: stdout')
    .argument('<image...>', 'image names or ids')
    .action((names: string[], opts: { output?: string }, cmd: Command) => {
      const output = opts.output ?? '-';
      if (output === '-' && process.stdout.isTTY) throw new TsrunError('save: refusing to write an archive to a terminal; give -o FILE or redirect stdout');
      return saveImages(new ImageStore(globals(cmd).storage), names, output);
    });
}
