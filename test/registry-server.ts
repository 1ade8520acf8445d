// A real registry for the tests: Debian's docker-registry (distribution
// 2.8) on 127.0.0.1 with a config of the test's own, with no auth, htpasswd
// basic auth, or token auth from a small token server here that signs JWTs
// with a key made for the test; TLS with a CA made for the test.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { TEST_BASE } from './helpers';

export const haveRegistry = spawnSync('sh', ['-c', 'command -v docker-registry && command -v htpasswd && command -v openssl']).status === 0;

export interface Registry {
  host: string;
  dir: string;
  /** The registry's own log (request lines at info level). */
  log(): string;
  /** A directory holding the test CA, for --cert-dir. */
  certDir?: string;
  stop(): Promise<void>;
  /** Starts it again on the same port and storage (after a stop). */
  restart(): Promise<void>;
}

let counter = 0;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A CA and a certificate it signs for 127.0.0.1 (and a bare self-signed pair for token signing). */
function makeCerts(dir: string) {
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tsrun test CA');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  ossl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
}

function makeSigningCert(dir: string) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.crt', '-days', '2', '-subj', '/CN=tsrun test token issuer'], { cwd: dir, stdio: 'ignore' });
}

/** The token server (test/fixtures/token-server.mjs), a process of its own: the tests block in spawnSync while tsrun asks it. */
async function tokenServer(dir: string, users: Record<string, { password: string; actions: string[] }>, service: string): Promise<{ port: number; close(): Promise<void> }> {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', process.execPath, path.join(__dirname, 'fixtures', 'token-server.mjs'), path.join(dir, 'token.key'), path.join(dir, 'token.crt'), service, JSON.stringify(users)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`token server exited ${code}`)));
  });
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGKILL');
      }),
  };
}

/** A registry that gives the answers a test wrote (test/fixtures/hostile-registry.mjs), for what a real one would refuse to store. */
export async function startHostileRegistry(answers: Record<string, { status: number; headers?: Record<string, string>; body?: string; base64?: string; hang?: boolean }>): Promise<{ host: string; asked(): string[]; close(): Promise<void> }> {
  const dir = path.join(TEST_BASE, 'registries', `${process.pid}-${++counter}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'answers.json'), JSON.stringify(answers));
  const log = path.join(dir, 'asked');
  fs.writeFileSync(log, '');
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', process.execPath, path.join(__dirname, 'fixtures', 'hostile-registry.mjs'), path.join(dir, 'answers.json'), log], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`hostile registry exited ${code}`)));
  });
  return {
    host: `127.0.0.1:${port}`,
    asked: () => fs.readFileSync(log, 'utf8').split('\n').filter(Boolean),
    close: () =>
      new Promise<void>((r) => {
        const done = () => {
          fs.rmSync(dir, { recursive: true, force: true });
          r();
        };
        if (child.exitCode !== null) return done();
        child.once('exit', done);
        child.kill('SIGKILL');
      }),
  };
}

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  users?: Record<string, { password: string; actions: string[] }>;
  tls?: boolean;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = path.join(TEST_BASE, 'registries', `${process.pid}-${++counter}`);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  const port = await freePort();
  const users = opts.users ?? { alice: { password: 's3cret', actions: ['pull', 'push'] } };
  let auth = '';
  let token: { port: number; close(): Promise<void> } | undefined;
  if (opts.auth === 'htpasswd') {
    fs.writeFileSync(path.join(dir, 'htpasswd'), Object.entries(users).map(([u, { password }]) => execFileSync('htpasswd', ['-Bbn', u, password], { encoding: 'utf8' }).trim()).join('\n') + '\n');
    auth = `auth:\n  htpasswd:\n    realm: tsrun-test\n    path: ${dir}/htpasswd\n`;
  } else if (opts.auth === 'token') {
    makeSigningCert(dir);
    token = await tokenServer(dir, users, 'tsrun-test');
    auth = `auth:\n  token:\n    realm: http://127.0.0.1:${token.port}/token\n    service: tsrun-test\n    issuer: tsrun-test-issuer\n    rootcertbundle: ${dir}/token.crt\n`;
  }
  let tls = '';
  let certDir: string | undefined;
  if (opts.tls) {
    makeCerts(dir);
    tls = `  tls:\n    certificate: ${dir}/server.crt\n    key: ${dir}/server.key\n`;
    certDir = path.join(dir, 'certs.d');
    fs.mkdirSync(certDir);
    fs.copyFileSync(path.join(dir, 'ca.crt'), path.join(certDir, 'ca.crt'));
  }
  fs.writeFileSync(path.join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${tls}${auth}`);
  const logFile = path.join(dir, 'registry.log');
  let child: ChildProcess | undefined;
  const start = async () => {
    const out = fs.openSync(logFile, 'a');
    // setpriv --pdeathsig: the registry ends with the test process, even one killed by a timeout.
    child = spawn('setpriv', ['--pdeathsig', 'KILL', 'docker-registry', 'serve', path.join(dir, 'config.yml')], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    for (let i = 0; i < 200; i++) {
      if (await answers(port, !!opts.tls)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`docker-registry did not come up on 127.0.0.1:${port}: ${fs.readFileSync(logFile, 'utf8').slice(-500)}`);
  };
  const stop = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.on('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  };
  await start();
  return {
    host: `127.0.0.1:${port}`,
    dir,
    certDir,
    log: () => fs.readFileSync(logFile, 'utf8'),
    restart: start,
    async stop() {
      await stop();
      await token?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function answers(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (tls ? https : http).get({ host: '127.0.0.1', port, path: '/v2/', rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => {
      req.destroy();
      resolve(false);
    });
  });
}
