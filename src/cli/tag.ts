import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { ImageStore } from '../image/store';
import { globals } from './common';

export function register(program: Command) {
  program
    .command('tag')
    .description('give an image another name')
    .argument('<source>', 'image name or id')
    .argument('<target>', 'the new name[:tag]')
    .action((source: string, target: string, _o: unknown, cmd: Command) => {
      const store = new ImageStore(globals(cmd).storage);
      const rec = store.find(source);
      if (!rec) throw new TsrunError(`image "${source}" not found`);
      store.addImage(rec.manifestDigest, [target]);
    });
}
