// Image names as Docker normalizes them: "alpine" is
// docker.io/library/alpine:latest, "name@sha256:..." pins a digest, and
// "oci:PATH[:TAG]" names an OCI image layout directory.
import { TsrunError } from '../errors';

export interface ImageRef {
  /** docker.io/library/alpine */
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function parseReference(text: string): ImageRef {
  const fail = (why: string): never => {
    throw new TsrunError(`invalid image name "${text}": ${why}`);
  };
  if (!text) fail('empty');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail('the digest must be sha256: and 64 lowercase hex digits');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`"${tag}" is not a valid tag`);
  }
  const parts = rest.split('/');
  let domain = 'docker.io';
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) domain = parts.shift()!;
  if (domain === 'docker.io' && parts.length === 1) parts.unshift('library');
  if (domain === 'index.docker.io') domain = 'docker.io';
  for (const p of parts) if (!COMPONENT.test(p)) fail(`"${p}" is not a valid name component (lowercase letters, digits, . _ -)`);
  if (!digest && !tag) tag = 'latest';
  return { repository: `${domain}/${parts.join('/')}`, tag, digest };
}

/** The full name: docker.io/library/alpine:latest, or ...@sha256:... */
export function formatReference(ref: ImageRef): string {
  return ref.repository + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

export function normalizeName(text: string): string {
  return formatReference(parseReference(text));
}

/** How Docker shows a name: familiar form without docker.io/library/. */
export function familiarName(full: string): string {
  return full.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}
