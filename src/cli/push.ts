import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { ImageStore } from '../image/store';
import { pushImage } from '../registry/push';
import { globals } from './common';
import { tlsVerify } from './pull';

export function register(program: Command) {
  program
    .command('push')
    .description('push an image of the store to a registry')
    .argument('<image>', 'the image (its name is where it goes, unless DEST is given)')
    .argument('[dest]', 'registry/name:tag to push to')
    .option('--format <format>', 'the manifest\'s format: oci or v2s2 (Docker\'s); default as stored')
    .option('--tls-verify <bool>', 'false: https without certificate checks, falling back to plain http')
    .option('--authfile <file>', 'credentials in Docker\'s config format')
    .option('--cert-dir <dir>', 'CA certificates to use instead of certs.d\'s')
    .option('-q, --quiet', 'print only the digest')
    .action(async (image: string, dest: string | undefined, opts: { format?: string; tlsVerify?: string; authfile?: string; certDir?: string; quiet?: boolean }, cmd: Command) => {
      if (opts.format !== undefined && opts.format !== 'oci' && opts.format !== 'v2s2') throw new TsrunError(`push --format ${opts.format}: use oci or v2s2`);
      const log = opts.quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
      const r = await pushImage(new ImageStore(globals(cmd).storage), image, dest, { format: opts.format as 'oci' | 'v2s2' | undefined, tlsVerify: tlsVerify(opts.tlsVerify), authFile: opts.authfile, certDir: opts.certDir, log });
      process.stdout.write(opts.quiet ? `${r.digest}\n` : `${r.name}\nDigest: ${r.digest}\n`);
    });
}
