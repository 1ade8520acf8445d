// login and logout: credentials checked against the registry (GET /v2/
// with them, answering its challenge), then kept in the auth file.
import { TsrunError } from '../errors';
import { readRegistriesConf } from './config';
import { loginFile, removeCredentials, saveCredentials, type Credentials } from './credentials';
import { RegistryClient } from './http';
import { endpointsFor, type RegistryOptions } from './pull';

/** "docker.io" for Docker Hub's spellings, host[:port] otherwise. */
export function registryHost(text: string): string {
  const h = text.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return ['index.docker.io', 'registry-1.docker.io', ''].includes(h) ? 'docker.io' : h;
}

export async function login(hostText: string, creds: Credentials, opts: RegistryOptions = {}): Promise<string> {
  const host = registryHost(hostText);
  if (!creds.username) throw new TsrunError(`login ${host}: no user name given`);
  const { endpoint } = endpointsFor(`${host}/x`, readRegistriesConf(), opts).pop()!;
  const client = new RegistryClient(endpoint, creds, opts.log);
  const r = await client.request('GET', '/v2/', { scope: '' });
  r.body.resume();
  if (r.status === 401) throw new TsrunError(`login ${host}: the user name or password was refused`);
  if (r.status !== 200) throw new TsrunError(`login ${host}: the registry answered ${r.status}`);
  const file = loginFile(opts.authFile);
  saveCredentials(host, creds, file);
  return file;
}

export function logout(hostText: string, opts: { authFile?: string } = {}): { file: string; removed: boolean } {
  const host = registryHost(hostText);
  const file = loginFile(opts.authFile);
  return { file, removed: removeCredentials(host, file) };
}
