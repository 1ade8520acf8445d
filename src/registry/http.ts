// One registry conversation: the distribution API over node:http(s), with
// the WWW-Authenticate challenges (Basic, and Bearer tokens from the
// realm, cached per scope), redirects followed without the Authorization
// header to another host, retries with back-off on 5xx and resets, and
// TLS with the system CAs plus certs.d. Credentials never reach an error
// message or a log line.
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { TsrunError } from '../errors';
import type { Credentials } from './credentials';

export interface Endpoint {
  /** host[:port] as the image name spells it. */
  host: string;
  /** Where requests go, if a registries.conf mirror or location says so; host otherwise. */
  location: string;
  /** https only with verification (false), or https without it falling back to http (true). */
  insecure: boolean;
  /** Extra CA certificates (PEM) from certs.d for this host. */
  ca?: string[];
  /** A client certificate and key from certs.d, where present. */
  cert?: string;
  key?: string;
}

export interface Response {
  status: number;
  headers: Http.IncomingHttpHeaders;
  body: Http.IncomingMessage;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpMod = () => require('node:http') as typeof Http;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpsMod = () => require('node:https') as typeof Https;

export const isLoopback = (host: string) => /^(localhost|127(\.\d+){3}|\[::1\])(:\d+)?$/.test(host);

/** The challenge of a 401: scheme and its parameters. */
export function parseChallenge(header: string | undefined): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = (p[2] ?? p[3]).replace(/\\(.)/g, '$1');
  return { scheme: m[1].toLowerCase(), params };
}

interface Token {
  value: string;
  expires: number;
}

/** Requests to one registry, sharing its scheme, its tokens and its credentials. */
export class RegistryClient {
  private scheme: 'https' | 'http' | undefined;
  private readonly tokens = new Map<string, Token>();
  private learning?: Promise<string>;
  private basic = false;
  private agent?: Https.Agent;

  constructor(
    readonly endpoint: Endpoint,
    private readonly credentials: Credentials | undefined,
    readonly log: (line: string) => void = () => {},
  ) {}

  /** The registry's base URL; its scheme is learnt once, by the first caller (concurrent ones wait for it). */
  base(): Promise<string> {
    this.learning ??= this.learnScheme().catch((e) => {
      this.learning = undefined;
      throw e;
    });
    return this.learning;
  }

  private async learnScheme(): Promise<string> {
    if (!this.scheme) {
      try {
        const r = await this.raw('GET', `https://${this.endpoint.location}/v2/`, {});
        r.body.resume();
        this.scheme = 'https';
      } catch (e) {
        // A plain-HTTP registry answering a TLS handshake: allowed on loopback and for insecure registries.
        const code = (e as NodeJS.ErrnoException).code ?? '';
        const plain = code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test((e as Error).message);
        if (plain && (this.endpoint.insecure || isLoopback(this.endpoint.location))) this.scheme = 'http';
        else throw this.connectError(e);
      }
    }
    return `${this.scheme}://${this.endpoint.location}`;
  }

  private connectError(e: unknown): TsrunError {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ECONNREFUSED' ? 'connection refused (is the registry running?)' : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? 'the name does not resolve' : /certificate|self.signed|CERT_|UNABLE_TO_VERIFY/.test(`${err.code} ${err.message}`) ? `its TLS certificate is not trusted (${err.code ?? err.message}): add its CA under /etc/containers/certs.d/${this.endpoint.host}/ or use --tls-verify=false` : `${err.code ?? ''} ${err.message}`.trim();
    return new TsrunError(`registry ${this.endpoint.host}: ${why}`);
  }

  private tlsOptions(): Https.RequestOptions {
    if (!this.agent) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const tls = require('node:tls') as typeof import('node:tls');
      this.agent = new (httpsMod().Agent)({
        keepAlive: true,
        maxSockets: 8,
        ca: this.endpoint.ca?.length ? [...tls.rootCertificates, ...this.endpoint.ca] : undefined,
        cert: this.endpoint.cert,
        key: this.endpoint.key,
        rejectUnauthorized: !this.endpoint.insecure,
      });
    }
    return { agent: this.agent };
  }

  /** One request, no auth, no redirects. */
  private raw(method: string, url: string, headers: Record<string, string>, body?: Buffer | NodeJS.ReadableStream, length?: number, signal?: AbortSignal): Promise<Response> {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? httpsMod() : httpMod();
    const opts: Https.RequestOptions = { method, signal, headers: { 'User-Agent': 'tsrun', ...headers, ...(length !== undefined ? { 'Content-Length': String(length) } : {}) }, ...(u.protocol === 'https:' && u.host === this.endpoint.location ? this.tlsOptions() : {}) };
    return new Promise((resolve, reject) => {
      const req = mod.request(u, opts, (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
      // A registry gone silent (no reset, no bytes) is a broken connection too: a pull then asks for the rest.
      req.setTimeout(IDLE_MS, () => req.destroy(Object.assign(new Error(`no data for ${IDLE_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else (body as NodeJS.ReadableStream).pipe(req);
    });
  }

  private authFor(scope: string): string | undefined {
    const t = this.tokens.get(scope);
    if (t && t.expires > Date.now()) return `Bearer ${t.value}`;
    if (this.basic && this.credentials) return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
    return undefined;
  }

  /** Answers a 401's challenge; false if it cannot be answered better than it was. */
  private async authenticate(challenge: string | undefined, scope: string): Promise<boolean> {
    const c = parseChallenge(challenge);
    if (!c) return false;
    if (c.scheme === 'basic') {
      if (this.basic || !this.credentials) return false;
      this.basic = true;
      return true;
    }
    if (c.scheme !== 'bearer' || !c.params.realm) return false;
    const realm = new URL(c.params.realm);
    if (c.params.service) realm.searchParams.set('service', c.params.service);
    for (const s of (c.params.scope ?? scope).split(' ').filter(Boolean)) realm.searchParams.append('scope', s);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.credentials) headers.Authorization = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
    let r: Response;
    try {
      r = await this.raw('GET', realm.toString(), headers);
    } catch (e) {
      throw new TsrunError(`registry ${this.endpoint.host}: token server ${realm.host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const text = await readBody(r.body, 1 << 20);
    if (r.status === 401 || r.status === 403) throw new TsrunError(`registry ${this.endpoint.host}: ${this.credentials ? 'the user name or password was refused' : 'it needs credentials (tsrun login ' + this.endpoint.host + ')'} (token server ${realm.host}: ${r.status})`);
    if (r.status !== 200) throw new TsrunError(`registry ${this.endpoint.host}: token server ${realm.host} answered ${r.status}`);
    let tok: { token?: string; access_token?: string; expires_in?: number };
    try {
      tok = JSON.parse(text);
    } catch {
      throw new TsrunError(`registry ${this.endpoint.host}: token server ${realm.host} sent no JSON`);
    }
    const value = tok.token ?? tok.access_token;
    if (!value) throw new TsrunError(`registry ${this.endpoint.host}: token server ${realm.host} sent no token`);
    // Refreshed a little before it expires (60 s is the spec's default lifetime).
    this.tokens.set(scope, { value, expires: Date.now() + Math.max(10, (tok.expires_in ?? 60) - 5) * 1000 });
    return true;
  }

  /**
   * A request under the registry's auth: answers challenges, follows
   * redirects (the Authorization header goes to the registry only), and
   * retries 5xx answers and broken connections with back-off.
   */
  async request(method: string, pathOrUrl: string, opts: { scope: string; headers?: Record<string, string>; body?: () => Buffer | NodeJS.ReadableStream; length?: number; retries?: number; signal?: AbortSignal } = { scope: '' }): Promise<Response> {
    const base = await this.base();
    let url = pathOrUrl.startsWith('http') ? pathOrUrl : `${base}${pathOrUrl}`;
    let answered = false;
    for (let attempt = 0, redirects = 0; ; ) {
      const own = new URL(url).host === this.endpoint.location;
      const auth = own ? this.authFor(opts.scope) : undefined;
      let r: Response;
      try {
        r = await this.raw(method, url, { ...opts.headers, ...(auth ? { Authorization: auth } : {}) }, opts.body?.(), opts.length, opts.signal);
      } catch (e) {
        if (attempt++ < (opts.retries ?? 3) && retryable(e)) {
          await sleep(200 * 2 ** attempt);
          continue;
        }
        throw this.connectError(e);
      }
      if (r.status === 401 && own && !answered) {
        answered = true;
        let ok: boolean;
        try {
          ok = await this.authenticate(r.headers['www-authenticate'] as string | undefined, opts.scope);
        } catch (e) {
          r.body.resume();
          throw e;
        }
        if (ok) {
          r.body.resume();
          continue;
        }
        return r;
      }
      if ([301, 302, 303, 307, 308].includes(r.status) && r.headers.location && redirects++ < 10) {
        r.body.resume();
        url = new URL(r.headers.location, url).toString();
        this.log(`redirected to ${new URL(url).host}`);
        continue;
      }
      if (r.status >= 500 && attempt++ < (opts.retries ?? 3)) {
        r.body.resume();
        await sleep(200 * 2 ** attempt);
        continue;
      }
      return r;
    }
  }
}

/** How long a connection may stay silent (TSRUN_REGISTRY_IDLE_TIMEOUT seconds, default 60). */
const IDLE_MS = (Number(process.env.TSRUN_REGISTRY_IDLE_TIMEOUT) || 60) * 1000;

const retryable = (e: unknown) => ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN'].includes((e as NodeJS.ErrnoException).code ?? '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A response body as text, refused past max bytes. */
export async function readBody(body: NodeJS.ReadableStream, max: number): Promise<string> {
  return (await readBytes(body, max)).toString('utf8');
}

export async function readBytes(body: NodeJS.ReadableStream, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      (body as unknown as { destroy(): void }).destroy();
      throw new TsrunError(`a registry answer longer than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** The registry's own words for an error answer: {"errors":[{"code","message"}]}. */
export async function registryError(r: Response, what: string): Promise<TsrunError> {
  let detail = '';
  try {
    const j = JSON.parse(await readBody(r.body, 64 << 10)) as { errors?: { code?: string; message?: string }[] };
    const e = j.errors?.[0];
    if (e) detail = `${e.code ? `${e.code.toLowerCase().replace(/_/g, ' ')}` : ''}${e.message && e.message.toLowerCase() !== e.code?.toLowerCase().replace(/_/g, ' ') ? `: ${e.message}` : ''}`;
  } catch {
    /* no JSON */
  }
  const challenge = parseChallenge(r.headers['www-authenticate'] as string | undefined);
  if (challenge?.params.error === 'insufficient_scope') detail = `insufficient_scope: the credentials do not allow ${challenge.params.scope ?? 'this'}`;
  return new TsrunError(`${what}: ${r.status}${detail ? ` ${detail}` : ''}`);
}
