// Registry credentials where Docker, podman and skopeo keep them: an auth
// file in Docker's config format (auths.HOST.auth = base64 "user:password")
// chosen by --authfile or REGISTRY_AUTH_FILE, else podman's
// ${XDG_RUNTIME_DIR}/containers/auth.json, else ~/.docker/config.json; and
// credential helpers (credHelpers, credsStore: docker-credential-NAME).
// A password is never printed, logged or put in an error.
import { spawnSync } from 'node:child_process';
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { TsrunError } from '../errors';

export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/** The files searched for credentials, first match wins. */
export function authFiles(explicit?: string): string[] {
  const given = explicit ?? process.env.REGISTRY_AUTH_FILE;
  if (given) return [given];
  const files: string[] = [];
  if (process.env.XDG_RUNTIME_DIR) files.push(path.join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json'));
  return files;
}

/** The file `login` writes: the one given, else Docker's (Docker and podman both read it). */
export function loginFile(explicit?: string): string {
  return explicit ?? process.env.REGISTRY_AUTH_FILE ?? path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
}

/** auths keys may be URLs ("https://index.docker.io/v1/"): compared by host. */
function keyHost(key: string): string {
  const h = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h;
}

function readAuthFile(file: string): AuthFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const j = JSON.parse(text) as AuthFile;
    return typeof j === 'object' && j !== null ? j : undefined;
  } catch {
    throw new TsrunError(`read credentials ${file}: not valid JSON`);
  }
}

function fromHelper(helper: string, host: string): Credentials | undefined {
  const r = spawnSync(`docker-credential-${helper}`, ['get'], { input: host, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new TsrunError(`credential helper docker-credential-${helper}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
  if (r.status !== 0) return undefined; // "credentials not found"
  try {
    const j = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
    return j.Username !== undefined && j.Secret !== undefined ? { username: j.Username, password: j.Secret } : undefined;
  } catch {
    throw new TsrunError(`credential helper docker-credential-${helper}: its answer is not JSON`);
  }
}

/** Credentials for a registry host, or undefined for anonymous access. */
export function credentialsFor(host: string, explicit?: string): Credentials | undefined {
  for (const file of authFiles(explicit)) {
    const j = readAuthFile(file);
    if (!j) continue;
    const helper = Object.entries(j.credHelpers ?? {}).find(([k]) => keyHost(k) === host)?.[1];
    if (helper) return fromHelper(helper, host);
    const entry = Object.entries(j.auths ?? {}).find(([k]) => keyHost(k) === host)?.[1];
    if (entry) {
      if (entry.auth) {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon < 0) throw new TsrunError(`read credentials ${file}: the entry for ${host} is not base64 "user:password"`);
        return { username: text.slice(0, colon), password: text.slice(colon + 1) };
      }
      if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
    }
    if (j.credsStore) {
      const c = fromHelper(j.credsStore, host);
      if (c) return c;
    }
  }
  return undefined;
}

function writeAuthFile(file: string, j: AuthFile) {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(j, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** login's last step: auths.HOST.auth in the file, mode 0600, other entries kept. */
export function saveCredentials(host: string, c: Credentials, file: string) {
  const j = readAuthFile(file) ?? {};
  const auths = Object.fromEntries(Object.entries(j.auths ?? {}).filter(([k]) => keyHost(k) !== host));
  auths[host] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  writeAuthFile(file, { ...j, auths });
}

/** logout: the host's entry removed; false if there was none. */
export function removeCredentials(host: string, file: string): boolean {
  const j = readAuthFile(file);
  if (!j?.auths) return false;
  const keys = Object.keys(j.auths).filter((k) => keyHost(k) === host);
  if (!keys.length) return false;
  for (const k of keys) delete j.auths[k];
  writeAuthFile(file, j);
  return true;
}
