// The registries configuration podman, skopeo and buildah share:
// /etc/containers/registries.conf (or CONTAINERS_REGISTRIES_CONF) and the
// drop-ins of /etc/containers/registries.conf.d/, TOML, version 2:
// unqualified-search-registries, [aliases], and [[registry]] tables with
// prefix, location, insecure, blocked and mirrors. Certificates come from
// certs.d directories, as theirs and Docker's do.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { Endpoint } from './http';

export interface RegistryEntry {
  prefix: string;
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: { location: string; insecure: boolean }[];
}

export interface RegistriesConf {
  search: string[];
  aliases: Record<string, string>;
  registries: RegistryEntry[];
}

export const DEFAULT_CONF = '/etc/containers/registries.conf';
export const DROP_IN_DIR = '/etc/containers/registries.conf.d';

function parseToml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new TsrunError(`read ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('smol-toml') as typeof import('smol-toml')).parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new TsrunError(`${file}: not valid TOML (${(e as Error).message.split('\n')[0]})`);
  }
}

const strings = (v: unknown, where: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new TsrunError(`${where} must be a list of strings`);
  return v;
};

/** The files in the order they apply: the main one, then the drop-ins by name (later ones win). */
export function readRegistriesConf(main = process.env.CONTAINERS_REGISTRIES_CONF ?? DEFAULT_CONF, dropIns = DROP_IN_DIR): RegistriesConf {
  const files = [main];
  try {
    files.push(...fs.readdirSync(dropIns).filter((f) => f.endsWith('.conf')).sort().map((f) => path.join(dropIns, f)));
  } catch {
    /* no drop-ins */
  }
  const conf: RegistriesConf = { search: [], aliases: {}, registries: [] };
  for (const file of files) {
    const t = parseToml(file);
    if ('unqualified-search-registries' in t) conf.search = strings(t['unqualified-search-registries'], `${file}: unqualified-search-registries`);
    const aliases = t.aliases;
    if (aliases !== undefined) {
      if (typeof aliases !== 'object' || aliases === null) throw new TsrunError(`${file}: [aliases] must be a table`);
      for (const [k, v] of Object.entries(aliases)) if (typeof v === 'string') conf.aliases[k] = v;
    }
    const regs = t.registry;
    if (regs === undefined) continue;
    if (!Array.isArray(regs)) throw new TsrunError(`${file}: [[registry]] must be an array of tables`);
    for (const [i, r] of regs.entries()) {
      const where = `${file}: [[registry]] ${i + 1}`;
      if (typeof r !== 'object' || r === null) throw new TsrunError(`${where} must be a table`);
      const o = r as Record<string, unknown>;
      const location = typeof o.location === 'string' ? o.location : '';
      const prefix = typeof o.prefix === 'string' && o.prefix ? o.prefix : location;
      if (!prefix) throw new TsrunError(`${where} needs a prefix or a location`);
      const mirrors = o.mirror === undefined ? [] : Array.isArray(o.mirror) ? o.mirror : [];
      const entry: RegistryEntry = {
        prefix,
        location: location || prefix,
        insecure: o.insecure === true,
        blocked: o.blocked === true,
        mirrors: mirrors.filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>).location === 'string').map((m) => ({ location: m.location as string, insecure: m.insecure === true })),
      };
      // A later file's entry for the same prefix replaces the earlier one.
      conf.registries = [...conf.registries.filter((e) => e.prefix !== entry.prefix), entry];
    }
  }
  return conf;
}

/** The [[registry]] entry whose prefix matches a repository (host/path) best: the longest. */
export function entryFor(conf: RegistriesConf, repository: string): RegistryEntry | undefined {
  const matches = conf.registries.filter((e) => repository === e.prefix || repository.startsWith(`${e.prefix}/`) || (e.prefix.startsWith('*.') && repository.split('/')[0].endsWith(e.prefix.slice(1))));
  return matches.sort((a, b) => b.prefix.length - a.prefix.length)[0];
}

/** certs.d of a host: CA certificates (*.crt) and a client pair (*.cert, *.key). */
export function certsFor(host: string, certDir?: string): Pick<Endpoint, 'ca' | 'cert' | 'key'> {
  const dirs = certDir ? [certDir] : [`/etc/containers/certs.d/${host}`, `/etc/docker/certs.d/${host}`];
  const ca: string[] = [];
  let cert: string | undefined;
  let key: string | undefined;
  for (const dir of dirs) {
    let files: string[];
    try {
      files = fs.readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const f of files) {
      const p = path.join(dir, f);
      if (f.endsWith('.crt')) ca.push(fs.readFileSync(p, 'utf8'));
      else if (f.endsWith('.cert')) cert = fs.readFileSync(p, 'utf8');
      else if (f.endsWith('.key')) key = fs.readFileSync(p, 'utf8');
    }
  }
  return { ...(ca.length ? { ca } : {}), ...(cert && key ? { cert, key } : {}) };
}
