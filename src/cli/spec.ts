import fs = require('node:fs');
import path = require('node:path');
import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { defaultSpec } from '../spec/default';

export function register(program: Command) {
  program
    .command('spec')
    .description('write a default config.json into the bundle directory, as `runc spec` does')
    .option('-b, --bundle <dir>', 'bundle directory', '.')
    .action((opts: { bundle: string }) => {
      const file = path.join(opts.bundle, 'config.json');
      try {
        fs.writeFileSync(file, JSON.stringify(defaultSpec(), null, '\t') + '\n', { flag: 'wx' });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new TsrunError(`write ${file}: ${code}${code === 'EEXIST' ? ' (remove it first)' : ''}`);
      }
    });
}
