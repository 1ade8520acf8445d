import type { Command } from 'commander';
import { saveImages } from '../image/save';
import { ImageStore } from '../image/store';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('save')
    .description('write images to an oci-archive file')
    .requiredOption('-o, --output <file>', 'the archive to write')
    .argument('<image...>', 'image names or ids')
    .action((names: string[], opts: { output: string }, cmd: Command) => saveImages(new ImageStore(globals(cmd).storage), names, opts.output));
}
