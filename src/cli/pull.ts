import type { Command } from 'commander';
import { board } from '../image/progress';
import { ImageStore } from '../image/store';
import { pullAllTags, pullImage } from '../registry/pull';
import { globals } from './common';

/** --tls-verify=false|true as commander gives it. */
export function tlsVerify(v: string | boolean | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return !(v === false || v === 'false');
}

export function register(program: Command) {
  program
    .command('pull')
    .description('pull an image from a registry into the store')
    .argument('<image>', 'registry/name[:tag] or name@sha256:...')
    .option('--platform <os/arch[/variant]>', 'which image of a multi-platform index (default: this host\'s)')
    .option('--tls-verify <bool>', 'false: https without certificate checks, falling back to plain http')
    .option('--authfile <file>', 'credentials in Docker\'s config format (default: REGISTRY_AUTH_FILE, podman\'s auth.json, ~/.docker/config.json)')
    .option('--cert-dir <dir>', 'CA certificates (*.crt) and client certificate (*.cert, *.key) to use instead of certs.d\'s')
    .option('-q, --quiet', 'print only the image id')
    .option('-a, --all-tags', 'every tag of the repository')
    .action(async (image: string, opts: { platform?: string; tlsVerify?: string; authfile?: string; certDir?: string; quiet?: boolean; allTags?: boolean }, cmd: Command) => {
      const store = new ImageStore(globals(cmd).storage);
      // A terminal gets Docker's bars, a line per layer redrawn in place; a pipe a line per finished layer.
      const progress = !opts.quiet && process.stderr.isTTY ? board() : undefined;
      const log = opts.quiet ? undefined : progress ? (line: string) => progress.note(line) : (line: string) => process.stderr.write(`${line}\n`);
      const options = { platform: opts.platform, tlsVerify: tlsVerify(opts.tlsVerify), authFile: opts.authfile, certDir: opts.certDir, log, progress };
      for (const pulled of opts.allTags ? await pullAllTags(store, image, options) : [await pullImage(store, image, options)]) {
        if (opts.quiet) process.stdout.write(`${pulled.record.id}\n`);
        else process.stdout.write(`${pulled.name}\nDigest: ${pulled.digest}\n${pulled.record.id}\n`);
      }
    });
}
