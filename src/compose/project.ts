// A project's part of the store: its containers, networks and volumes are
// the ones carrying Docker Compose's labels, so `docker compose`-style
// tools and `ps --filter label=` find them as Docker Compose's own.
import crypto = require('node:crypto');
import type { ContainerInfo, Registry } from '../container/registry';
import type { Project, ServiceConfig } from './model';

export const LABEL = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  number: 'com.docker.compose.container-number',
  oneoff: 'com.docker.compose.oneoff',
  hash: 'com.docker.compose.config-hash',
  workingDir: 'com.docker.compose.project.working_dir',
  configFiles: 'com.docker.compose.project.config_files',
  image: 'com.docker.compose.image',
  dependsOn: 'com.docker.compose.depends_on',
  network: 'com.docker.compose.network',
  volume: 'com.docker.compose.volume',
  version: 'com.docker.compose.version',
} as const;

export interface ProjectContainer {
  info: ContainerInfo;
  service: string;
  number: number;
  oneoff: boolean;
}

/** The project's containers, by service and number (one-off `run` containers only when asked). */
export function projectContainers(registry: Registry, project: string, opts: { oneoff?: boolean; services?: string[] } = {}): ProjectContainer[] {
  const out: ProjectContainer[] = [];
  for (const info of registry.records()) {
    const l = info.config.labels ?? {};
    if (l[LABEL.project] !== project) continue;
    const oneoff = l[LABEL.oneoff] === 'True';
    if (oneoff && !opts.oneoff) continue;
    const service = l[LABEL.service] ?? '';
    if (opts.services?.length && !opts.services.includes(service)) continue;
    out.push({ info, service, number: Number(l[LABEL.number] ?? 0), oneoff });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.number - b.number);
}

/** JSON with sorted keys: the same model always hashes the same. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * What decides whether a running container still is its service: the
 * service's model (its replica count aside: scaling keeps the others), the
 * image it runs and the secrets' and configs' definitions. A changed hash
 * means the container is recreated.
 */
export function configHash(project: Project, s: ServiceConfig, imageId: string): string {
  const { deploy, scale: _scale, ...rest } = s;
  const { replicas: _replicas, ...deployRest } = deploy ?? {};
  const refs = [...s.secrets.map((r) => project.secrets[r.source]), ...s.configs.map((r) => project.configs[r.source])];
  const networks = Object.keys(s.networks).map((n) => project.networks[n]?.name);
  return crypto.createHash('sha256').update(stable({ service: rest, deploy: deployRest, imageId, refs, networks })).digest('hex');
}

export function containerName(project: Project, s: ServiceConfig, number: number): string {
  return s.container_name ?? `${project.name}-${s.name}-${number}`;
}
