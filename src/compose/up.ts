// compose up: the project's networks and volumes made if missing, images
// built or pulled, then each service's containers brought to what the model
// says, dependencies first: an unchanged running container is left alone, a
// changed one recreated, missing replicas made, extra ones removed.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import type { Registry } from '../container/registry';
import { runImageDetached, type ImageRunOptions } from '../container/run-image';
import { startStopped, stopContainer } from '../container/stop';
import { removeContainer } from '../container/remove';
import { createNetwork } from '../network/manage';
import { networksOf, setHidden } from '../network/attach';
import { renameContainer } from '../container/rename';
import { mountsOf } from '../volume/mounts';
import { createVolume, volumesOf } from '../volume/manage';
import { buildImage } from '../build/build';
import { pullImage } from '../registry/pull';
import { readHealth, type HealthOptions } from '../container/health';
import { parseDuration, replicasOf, startOrder, type Project, type ServiceConfig } from './model';
import { configHash, containerName, LABEL, projectContainers, type ProjectContainer } from './project';

export interface ComposeContext {
  project: Project;
  registry: Registry;
  /** Progress lines (" Container p-web-1  Started"). */
  log: (line: string) => void;
  /** A build's output. */
  buildOutput?: (chunk: Buffer) => void;
}

export interface UpOptions {
  services?: string[];
  build?: boolean;
  noBuild?: boolean;
  forceRecreate?: boolean;
  noRecreate?: boolean;
  noDeps?: boolean;
  scale?: Record<string, number>;
  removeOrphans?: boolean;
  pull?: 'always' | 'missing' | 'never';
}

const say = (ctx: ComposeContext, kind: string, name: string, what: string) => ctx.log(` ${kind} ${name}  ${what}`);

/** The image a service runs: its image:, or PROJECT-SERVICE for a build without one (Docker Compose's name). */
export function imageName(project: Project, s: ServiceConfig): string {
  return s.image ?? `${project.name}-${s.name}`;
}

export async function ensureNetworks(ctx: ComposeContext, names: string[]) {
  const nets = networksOf(ctx.registry);
  for (const key of names) {
    const n = ctx.project.networks[key];
    const have = nets.find(n.name);
    if (n.external) {
      if (!have) throw new TsrunError(`network ${n.name} is declared external but does not exist: make it with \`tsrun network create ${n.name}\``);
      continue;
    }
    if (have) {
      if (have.labels[LABEL.project] !== undefined && have.labels[LABEL.project] !== ctx.project.name) throw new TsrunError(`network ${n.name} belongs to project ${have.labels[LABEL.project]}, not ${ctx.project.name}`);
      continue;
    }
    await createNetwork(ctx.registry, n.name, { labels: { ...n.labels, [LABEL.project]: ctx.project.name, [LABEL.network]: key }, internal: n.internal, subnet: n.ipam?.subnet, gateway: n.ipam?.gateway });
    say(ctx, 'Network', n.name, 'Created');
  }
}

export async function ensureVolumes(ctx: ComposeContext, keys: string[]) {
  const vols = volumesOf(ctx.registry);
  for (const key of keys) {
    const v = ctx.project.volumes[key];
    if (vols.find(v.name)) continue;
    if (v.external) throw new TsrunError(`volume ${v.name} is declared external but does not exist: make it with \`tsrun volume create ${v.name}\``);
    await createVolume(ctx.registry, v.name, { labels: { ...v.labels, [LABEL.project]: ctx.project.name, [LABEL.volume]: key }, options: v.driver_opts });
    say(ctx, 'Volume', v.name, 'Created');
  }
}

/** Builds the services that build (always with --build, else when their image is missing) and pulls the rest that lack theirs. */
export async function ensureImages(ctx: ComposeContext, services: ServiceConfig[], opts: { build?: boolean; noBuild?: boolean; pull?: 'always' | 'missing' | 'never' }) {
  const store = ctx.registry.images;
  for (const s of services) {
    const name = imageName(ctx.project, s);
    const policy = s.pull_policy === 'if_not_present' ? 'missing' : s.pull_policy;
    const have = !!store.find(name);
    if (s.build && !opts.noBuild && (opts.build || policy === 'build' || !have)) {
      await buildService(ctx, s);
      continue;
    }
    const pull = opts.pull ?? (policy === 'build' ? 'missing' : policy) ?? 'missing';
    if (pull === 'always' || (!have && pull === 'missing')) {
      if (!s.image) throw new TsrunError(`service ${s.name}: image ${name} is not in the store and --no-build was given`);
      ctx.log(` ${s.name} Pulling`);
      await pullImage(store, s.image, { log: ctx.log });
      ctx.log(` ${s.name} Pulled`);
    } else if (!have) throw new TsrunError(`service ${s.name}: image ${name} is not in the store${s.build ? ' (it is built without --no-build)' : ' (pull_policy never)'}`);
  }
}

export async function buildService(ctx: ComposeContext, s: ServiceConfig) {
  const b = s.build!;
  const name = imageName(ctx.project, s);
  ctx.log(` ${s.name} Building`);
  await buildImage({
    context: b.context,
    ...(b.dockerfile_inline !== undefined ? { text: b.dockerfile_inline } : b.dockerfile ? { file: path.resolve(b.context, b.dockerfile) } : {}),
    tags: [name],
    buildArgs: new Map(Object.entries(b.args)),
    target: b.target,
    noCache: b.no_cache,
    pull: b.pull,
    network: b.network,
    labels: { ...b.labels, [LABEL.project]: ctx.project.name, [LABEL.service]: s.name },
    storage: ctx.registry.images.root,
    root: ctx.registry.runtime.root,
    log: ctx.log,
    output: ctx.buildOutput,
  });
  ctx.log(` ${s.name} Built`);
}

/** Where the secrets and configs that have no file of their own are written: a tmpfs under the state root, never the store. */
function secretsDir(ctx: ComposeContext) {
  return path.join(ctx.registry.runtime.root, 'compose', ctx.project.name);
}

function refMounts(ctx: ComposeContext, s: ServiceConfig): string[] {
  const out: string[] = [];
  for (const kind of ['secrets', 'configs'] as const) {
    for (const ref of s[kind]) {
      const def = ctx.project[kind][ref.source];
      let file = def.file;
      if (!file) {
        const dir = path.join(secretsDir(ctx), kind);
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        file = path.join(dir, ref.source);
        const value = def.environment !== undefined ? (process.env[def.environment] ?? '') : (def.content ?? '');
        fs.writeFileSync(file, value, { mode: ref.mode ?? 0o444 });
        fs.chmodSync(file, ref.mode ?? 0o444);
      } else if (!fs.existsSync(file)) throw new TsrunError(`service ${s.name}: ${kind.slice(0, -1)} ${ref.source}: ${file} does not exist`);
      out.push(`type=bind,source=${file},target=${ref.target},readonly`);
    }
  }
  return out;
}

function portString(p: ServiceConfig['ports'][number]): string {
  const ctr = p.target_end ? `${p.target}-${p.target_end}` : `${p.target}`;
  const host = p.host_ip ? `${p.host_ip}:${p.published ?? ''}:` : p.published ? `${p.published}:` : '';
  return `${host}${ctr}/${p.protocol}`;
}

function mountString(v: ServiceConfig['volumes'][number], project: Project): string {
  const f = [`type=${v.type}`, `target=${v.target}`];
  if (v.type === 'volume' && v.source) f.push(`source=${project.volumes[v.source].name}`);
  if (v.type === 'bind') f.push(`source=${v.source}`);
  if (v.read_only) f.push('readonly');
  if (v.bind?.propagation) f.push(`bind-propagation=${v.bind.propagation}`);
  if (v.volume?.nocopy) f.push('volume-nocopy');
  if (v.tmpfs?.size) f.push(`tmpfs-size=${v.tmpfs.size}`);
  if (v.tmpfs?.mode !== undefined) f.push(`tmpfs-mode=${v.tmpfs.mode.toString(8)}`);
  // Commas would split the field list: a path with one is refused rather than mangled.
  if (f.some((x) => x.split('=').slice(1).join('=').includes(','))) throw new TsrunError(`mount ${v.source ?? ''}:${v.target}: a path with a comma is not supported`);
  return f.join(',');
}

function restartOf(s: ServiceConfig): string | undefined {
  const p = s.deploy?.restart_policy;
  if (s.restart || !p) return s.restart;
  if (p.condition === 'none') return 'no';
  if (p.condition === 'on-failure') return `on-failure${p.max_attempts ? `:${p.max_attempts}` : ''}`;
  return 'always';
}

/** Compose's healthcheck as run's health options (a bare number of seconds is Compose's too). */
function healthOptionsOf(h: NonNullable<ServiceConfig['healthcheck']>): HealthOptions {
  const d = (v: string | undefined) => (v !== undefined && /^\d+(\.\d+)?$/.test(v) ? `${v}s` : v);
  return { test: h.test, interval: d(h.interval), timeout: d(h.timeout), startPeriod: d(h.start_period), startInterval: d(h.start_interval), retries: h.retries, disable: h.disable || h.test?.[0] === 'NONE' };
}

/** The run options of a service's container number N. */
export function runOptionsOf(ctx: ComposeContext, s: ServiceConfig, number: number, hash: string, extra: Partial<ImageRunOptions> = {}): ImageRunOptions {
  const project = ctx.project;
  if (s.userns_mode && !/^(host|auto(:.*)?)$/.test(s.userns_mode)) throw new TsrunError(`service ${s.name}: userns_mode ${s.userns_mode}: use host or auto`);
  const nets = Object.entries(s.networks).map(([key, n]) => ({ name: project.networks[key].name, aliases: [s.name, ...(n?.aliases ?? [])], ...(n?.ipv4_address ? { ip: n.ipv4_address } : {}) }));
  let network: string | undefined = nets[0]?.name;
  const mode = s.network_mode;
  if (mode) {
    const svc = /^service:(.+)$/.exec(mode)?.[1];
    if (svc) {
      const first = projectContainers(ctx.registry, project.name, { services: [svc] })[0];
      if (!first) throw new TsrunError(`service ${s.name}: network_mode ${mode}: service ${svc} has no container`);
      network = `container:${first.info.id}`;
    } else network = mode;
  }
  const limits = s.deploy?.resources?.limits;
  const name = containerName(project, s, number);
  return {
    image: imageName(project, s),
    name,
    ...(s.command !== undefined ? { args: s.command ?? [] } : {}),
    ...(s.entrypoint !== undefined ? { entrypoint: s.entrypoint ?? [] } : {}),
    env: Object.entries(s.environment).map(([k, v]) => `${k}=${v ?? ''}`),
    workdir: s.working_dir,
    user: s.user,
    hostname: s.hostname,
    readOnly: s.read_only,
    tty: s.tty,
    interactive: s.stdin_open,
    init: s.init,
    restart: restartOf(s),
    stopSignal: s.stop_signal,
    ...(s.healthcheck ? { healthcheck: healthOptionsOf(s.healthcheck) } : {}),
    labels: {
      ...s.labels,
      ...s.deploy?.labels,
      [LABEL.project]: project.name,
      [LABEL.service]: s.name,
      [LABEL.number]: String(number),
      [LABEL.oneoff]: 'False',
      [LABEL.hash]: hash,
      [LABEL.workingDir]: project.workingDir,
      [LABEL.configFiles]: project.files.join(','),
      [LABEL.dependsOn]: Object.entries(s.depends_on).map(([d, x]) => `${d}:${x.condition}:${x.restart}`).join(','),
    },
    network,
    networking: {
      network,
      publish: s.ports.map(portString),
      networkAlias: mode ? [] : nets[0]?.aliases,
      ip: nets[0]?.ip,
      macAddress: s.mac_address,
      dns: s.dns,
      dnsSearch: s.dns_search,
      dnsOption: s.dns_opt,
      addHost: s.extra_hosts,
      moreNetworks: nets.slice(1),
    },
    mounts: [...s.volumes.map((v) => mountString(v, project)), ...refMounts(ctx, s)],
    tmpfs: s.tmpfs,
    resources: {
      memory: limits?.memory ?? s.mem_limit,
      memorySwap: s.memswap_limit,
      memoryReservation: s.deploy?.resources?.reservations?.memory ?? s.mem_reservation,
      cpus: limits?.cpus ?? s.cpus,
      cpuShares: s.cpu_shares,
      cpusetCpus: s.cpuset,
      pidsLimit: limits?.pids !== undefined ? String(limits.pids) : s.pids_limit,
    },
    security: {
      capAdd: s.cap_add,
      capDrop: s.cap_drop,
      privileged: s.privileged,
      securityOpt: s.security_opt,
      devices: s.devices,
      groupAdd: s.group_add,
      ulimits: Object.entries(s.ulimits).map(([k, u]) => `${k}=${u.soft}:${u.hard}`),
      sysctls: Object.entries(s.sysctls).map(([k, v]) => `${k}=${v}`),
      shmSize: s.shm_size,
    },
    ...(s.userns_mode && s.userns_mode !== 'host' ? { userns: { userns: s.userns_mode } } : {}),
    storage: ctx.registry.images.root,
    root: ctx.registry.runtime.root,
    pull: 'never',
    ...extra,
  };
}

/** Makes and starts one container (runImageDetached: nothing stays of one that failed). */
export async function startNew(ctx: ComposeContext, opts: ImageRunOptions, bindSources: string[]): Promise<string> {
  for (const src of bindSources) fs.mkdirSync(src, { recursive: true });
  const id = await runImageDetached(opts);
  say(ctx, 'Container', opts.name!, 'Started');
  return id;
}

export function stopGrace(s: ServiceConfig | undefined): number {
  const ms = s?.stop_grace_period ? parseDuration(s.stop_grace_period) : undefined;
  return ms !== undefined ? Math.ceil(ms / 1000) : 10;
}

export async function removeOne(ctx: ComposeContext, c: ProjectContainer, opts: { volumes?: boolean; timeout?: number; stopped?: boolean } = {}) {
  if (!opts.stopped) await stopContainer(ctx.registry, c.info.id, opts.timeout ?? stopGrace(ctx.project.services[c.service]));
  await removeContainer(ctx.registry, c.info.id, { force: true, volumes: opts.volumes });
  say(ctx, 'Container', c.info.name, 'Removed');
}

/**
 * Waits until a container runs and, when it has a health check, is healthy
 * (service_healthy, up --wait); an exit or an unhealthy check is an error.
 */
export async function waitReady(ctx: ComposeContext, c: ProjectContainer, why: string, opts: { needCheck?: boolean; deadline?: number } = {}): Promise<void> {
  for (;;) {
    const info = ctx.registry.read(c.info.id);
    const live = ctx.registry.live(info);
    if (!live.running && live.status !== 'restarting' && live.status !== 'created') throw new TsrunError(`${why}, but ${c.info.name} is ${live.status} (exit code ${live.exitCode})`);
    if (live.running) {
      if (!info.config.healthcheck) {
        if (opts.needCheck) throw new TsrunError(`${why}, but ${c.info.name} has no health check`);
        return;
      }
      const h = readHealth(ctx.registry, info);
      if (h?.Status === 'healthy') return;
      if (h?.Status === 'unhealthy') {
        // The last probe's first line of output, or its exit code: the error stays one line.
        const last = h.Log[h.Log.length - 1];
        // eslint-disable-next-line no-control-regex
        const said = last?.Output.trim().split('\n')[0].replace(/[\x00-\x1f\x7f]/g, '').slice(0, 200);
        throw new TsrunError(`${why}, but ${c.info.name} is unhealthy (last check: ${said ? `"${said}", ` : ''}exit code ${last?.ExitCode})`);
      }
    }
    if (Date.now() > (opts.deadline ?? Infinity)) throw new TsrunError(`${why}: ${c.info.name} was not ready in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for what a service's depends_on asks of each dependency. */
async function waitForDependencies(ctx: ComposeContext, s: ServiceConfig) {
  for (const [dep, want] of Object.entries(s.depends_on)) {
    if (!ctx.project.services[dep]) continue; // not required, and not enabled
    if (want.condition === 'service_healthy') {
      for (const c of projectContainers(ctx.registry, ctx.project.name, { services: [dep] })) await waitReady(ctx, c, `service ${s.name} depends on ${dep} being healthy`, { needCheck: true });
      continue;
    }
    if (want.condition !== 'service_completed_successfully') continue;
    for (const c of projectContainers(ctx.registry, ctx.project.name, { services: [dep] })) {
      for (;;) {
        const live = ctx.registry.live(ctx.registry.read(c.info.id));
        if (!live.running && live.status !== 'restarting' && live.status !== 'created') {
          if (live.exitCode !== 0) throw new TsrunError(`service ${s.name} depends on ${dep} completing successfully, but ${c.info.name} exited with ${live.exitCode}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/**
 * How long a new replica may take to be ready: its start period and every
 * retry of its check, with a margin; without a check, being up.
 */
function readyWithin(s: ServiceConfig): number {
  const h = s.healthcheck;
  if (!h || h.disable) return 60_000;
  const ms = (v: string | undefined, d: number) => (v !== undefined ? (parseDuration(v) ?? d) : d);
  return ms(h.start_period, 0) + ((h.retries ?? 3) + 1) * (ms(h.interval, 30_000) + ms(h.timeout, 30_000)) + 30_000;
}

/** How long a replaced replica, gone from its peers' /etc/hosts, keeps serving requests already under way. */
const DRAIN_MS = 1000;

/**
 * Replaces changed replicas in batches of update_config.parallelism (1 by
 * default), with update_config.delay between batches. stop-first (the
 * default): the old one stops, then the new one starts. start-first: the old
 * one steps aside under a temporary name, the new one starts under the
 * service's name and number and must run (and be healthy, with a check)
 * before the old one leaves its peers' /etc/hosts, drains and stops: the
 * service keeps answering throughout. A new replica that fails leaves the
 * old one in place, under its own name again.
 */
async function recreate(ctx: ComposeContext, s: ServiceConfig, stale: ProjectContainer[], hash: string, binds: string[]): Promise<string[]> {
  const u = s.deploy?.update_config;
  const size = u?.parallelism ?? 1;
  const delay = u?.delay ? (parseDuration(u.delay) ?? 0) : 0;
  const ids: string[] = [];
  for (let i = 0; i < stale.length; i += size) {
    if (i > 0 && delay) await new Promise((r) => setTimeout(r, delay));
    const batch = stale.slice(i, i + size);
    // Every replacement of the batch is carried to its end (or its undo) before a failure is reported; later batches do not start.
    const done = await Promise.allSettled(batch.map((c) => (u?.order === 'start-first' ? replaceStartFirst(ctx, s, c, hash, binds) : replaceStopFirst(ctx, s, c, hash, binds))));
    for (const r of done) if (r.status === 'fulfilled') ids.push(r.value);
    const failed = done.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
  return ids;
}

async function replaceStopFirst(ctx: ComposeContext, s: ServiceConfig, c: ProjectContainer, hash: string, binds: string[]): Promise<string> {
  say(ctx, 'Container', c.info.name, 'Recreate');
  await removeOne(ctx, c);
  return startNew(ctx, runOptionsOf(ctx, s, c.number, hash, { inheritVolumes: mountsOf(c.info) }), binds);
}

async function replaceStartFirst(ctx: ComposeContext, s: ServiceConfig, c: ProjectContainer, hash: string, binds: string[]): Promise<string> {
  const name = c.info.name;
  say(ctx, 'Container', name, 'Recreate (start-first)');
  await renameContainer(ctx.registry, c.info.id, `${c.info.id.slice(0, 12)}_${name}`);
  const putBack = async (why: string): Promise<never> => {
    try {
      await renameContainer(ctx.registry, c.info.id, name);
    } catch (e) {
      throw new TsrunError(`${why}; the old container keeps running as ${c.info.id.slice(0, 12)}_${name}: renaming it back failed: ${(e as Error).message}`);
    }
    throw new TsrunError(`${why}; the old container keeps running`);
  };
  let id: string;
  try {
    // Out of its peers' /etc/hosts until it is ready: no request reaches a server not yet listening.
    const opts = runOptionsOf(ctx, s, c.number, hash, { inheritVolumes: mountsOf(c.info) });
    id = await startNew(ctx, { ...opts, networking: { ...opts.networking, hidden: true } }, binds);
  } catch (e) {
    return putBack(`start-first update of ${name}: the new container could not start beside the old one: ${(e as Error).message}`);
  }
  try {
    await waitReady(ctx, { ...c, info: ctx.registry.read(id) }, `start-first update of ${name}`, { deadline: Date.now() + readyWithin(s) });
  } catch (e) {
    try {
      await removeOne(ctx, { ...c, info: ctx.registry.read(id) }, { timeout: 1 });
    } finally {
      await putBack((e as Error).message);
    }
  }
  await setHidden(ctx.registry, id, false);
  await setHidden(ctx.registry, c.info.id, true);
  await new Promise((r) => setTimeout(r, DRAIN_MS));
  await removeOne(ctx, { ...c, info: ctx.registry.read(c.info.id) });
  return id;
}

/** The services up takes: those named and (without --no-deps) what they depend on, in start order. */
export function selected(project: Project, names: string[] | undefined, noDeps?: boolean): string[] {
  for (const n of names ?? []) if (!project.services[n]) throw new TsrunError(project.disabled[n] ? `service ${n} is in profiles that are not enabled (${project.disabled[n].profiles.join(', ')}): use --profile` : `no such service: ${n}`);
  if (!names?.length) return startOrder(project);
  return noDeps ? startOrder(project, names).filter((n) => names.includes(n)) : startOrder(project, names);
}

export async function up(ctx: ComposeContext, opts: UpOptions = {}): Promise<string[]> {
  const project = ctx.project;
  const order = selected(project, opts.services, opts.noDeps);
  for (const [n, count] of Object.entries(opts.scale ?? {})) {
    if (!project.services[n]) throw new TsrunError(`--scale ${n}=${count}: no such service`);
    if (project.services[n].container_name && count > 1) throw new TsrunError(`--scale ${n}=${count}: service ${n} has a container_name, so it cannot have more than one container`);
  }
  const services = order.map((n) => project.services[n]);
  // Refused before anything is made: what a container of each service cannot honour.
  for (const s of services) runOptionsOf(ctx, s, 1, '', { networking: {}, mounts: [] });

  await ensureNetworks(ctx, [...new Set(services.flatMap((s) => Object.keys(s.networks)))]);
  await ensureVolumes(ctx, [...new Set(services.flatMap((s) => s.volumes.filter((v) => v.type === 'volume' && v.source).map((v) => v.source!)))]);
  await ensureImages(ctx, services, opts);

  if (opts.removeOrphans) {
    for (const c of projectContainers(ctx.registry, project.name)) if (!project.services[c.service] && !project.disabled[c.service]) await removeOne(ctx, c);
  } else {
    const orphans = [...new Set(projectContainers(ctx.registry, project.name).filter((c) => !project.services[c.service] && !project.disabled[c.service]).map((c) => c.service))];
    if (orphans.length) ctx.log(`WARN: found orphan containers of services ${orphans.join(', ')}: run with --remove-orphans to remove them`);
  }

  const ids: string[] = [];
  for (const s of services) {
    await waitForDependencies(ctx, s);
    const image = ctx.registry.images.get(imageName(project, s));
    const hash = configHash(project, s, image.record.id);
    const want = opts.scale?.[s.name] ?? replicasOf(s);
    const existing = projectContainers(ctx.registry, project.name, { services: [s.name] });
    // Scaling down takes the highest numbers first, as Docker Compose does; an old
    // replica an interrupted rolling update left under its temporary name goes too.
    for (const c of existing.filter((c) => c.number > want || c.number < 1 || c.info.name !== containerName(project, s, c.number))) await removeOne(ctx, c);
    const binds = s.volumes.filter((v) => v.type === 'bind' && v.bind?.create_host_path !== false).map((v) => v.source!);
    const stale: ProjectContainer[] = [];
    for (let n = 1; n <= want; n++) {
      const c = existing.find((x) => x.number === n && x.info.name === containerName(project, s, n));
      if (c) {
        const changed = c.info.config.labels[LABEL.hash] !== hash;
        if ((changed && !opts.noRecreate) || opts.forceRecreate) {
          stale.push(c);
          continue;
        }
        const live = ctx.registry.live(c.info);
        if (!live.running) {
          await startStopped(ctx.registry, c.info.id);
          say(ctx, 'Container', c.info.name, 'Started');
        } else say(ctx, 'Container', c.info.name, 'Running');
        if (c.info.hostConfig.networking?.hidden) {
          // A start-first update was cut short before this replica was shown: it is, once ready.
          await waitReady(ctx, c, `service ${s.name}: the replica ${c.info.name} of an interrupted update`, { deadline: Date.now() + readyWithin(s) });
          await setHidden(ctx.registry, c.info.id, false);
        }
        ids.push(c.info.id);
        continue;
      }
      ids.push(await startNew(ctx, runOptionsOf(ctx, s, n, hash), binds));
    }
    ids.push(...(await recreate(ctx, s, stale, hash, binds)));
  }
  return ids;
}
