import type { Command } from 'commander';
import { TsrunError } from '../errors';
import { login, logout } from '../registry/login';
import { tlsVerify } from './pull';

/** The password: from stdin with --password-stdin, or asked on the terminal without echo. */
async function readPassword(fromStdin: boolean): Promise<string> {
  const chunks: Buffer[] = [];
  if (fromStdin || !process.stdin.isTTY) {
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  process.stderr.write('Password: ');
  process.stdin.setRawMode(true);
  try {
    for await (const c of process.stdin as AsyncIterable<Buffer>) {
      const s = c.toString('utf8');
      if (s.includes('\u0003')) throw new TsrunError('login: interrupted');
      const end = s.search(/[\r\n]/);
      chunks.push(Buffer.from(end >= 0 ? s.slice(0, end) : s));
      if (end >= 0) break;
    }
  } finally {
    process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stderr.write('\n');
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function register(program: Command) {
  program
    .command('login')
    .description('check credentials against a registry and keep them (Docker\'s config format)')
    .argument('[registry]', 'host[:port]', 'docker.io')
    .option('-u, --username <user>', 'the user name')
    .option('-p, --password <password>', 'the password (visible to other users in the process list: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--authfile <file>', 'where to keep them (default: REGISTRY_AUTH_FILE or ~/.docker/config.json)')
    .option('--tls-verify <bool>', 'false: https without certificate checks, falling back to plain http')
    .option('--cert-dir <dir>', 'CA certificates to use instead of certs.d\'s')
    .action(async (registry: string, opts: { username?: string; password?: string; passwordStdin?: boolean; authfile?: string; tlsVerify?: string; certDir?: string }) => {
      if (!opts.username) throw new TsrunError('login: give the user name with -u');
      const password = opts.password ?? (await readPassword(!!opts.passwordStdin));
      const file = await login(registry, { username: opts.username, password }, { authFile: opts.authfile, tlsVerify: tlsVerify(opts.tlsVerify), certDir: opts.certDir });
      process.stdout.write(`Login Succeeded (credentials in ${file})\n`);
    });
  program
    .command('logout')
    .description('forget the credentials kept for a registry')
    .argument('[registry]', 'host[:port]', 'docker.io')
    .option('--authfile <file>', 'the auth file (default: REGISTRY_AUTH_FILE or ~/.docker/config.json)')
    .action((registry: string, opts: { authfile?: string }) => {
      const r = logout(registry, { authFile: opts.authfile });
      if (!r.removed) throw new TsrunError(`logout ${registry}: no credentials for it in ${r.file}`);
      process.stdout.write(`Removed login credentials for ${registry} from ${r.file}\n`);
    });
}
