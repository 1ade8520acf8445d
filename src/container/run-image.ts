// run IMAGE [CMD...]: the image's layers (unpacked once, shared) under an
// overlay, a config.json made from the image and Docker's flags, then the
// same create/start/wait/delete path as any OCI bundle.
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { TsrunError } from '../errors';
import { progress } from '../image/progress';
import { commandLine, specFromImage, type ImageRunSettings } from '../image/runtime-config';
import { processStartTime } from './store';
import { resolveOciReference } from '../image/load';
import { ImageStore, type LayerInfo } from '../image/store';
import type { Image } from '../image/store';
import { readMergedFile, resolveUser } from '../image/user';
import type { OverlayMount } from '../plan/compile';
import { runContainer, type RunOptions } from './run';
import { checkName, Registry, type ContainerInfo, type RestartPolicy } from './registry';
import { startDetached } from './detached';
import { INIT_PATH, native } from '../native';
import { parseSignal } from '../process/signals';
import { healthConfigOf, scheduleHealthchecks, type HealthOptions } from './health';

/** Docker's json-file default is unbounded; a bound keeps /var/lib/tsrun from filling up. */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
import { resourcesFromFlags, type ResourceFlags } from '../cgroup/resources';
import { applySecurity, type SecurityFlags } from '../security/run-options';
import { applyUserns, type UsernsFlags } from '../security/userns';
import { pullImage, type RegistryOptions } from '../registry/pull';
import { deleteContainer } from './delete';
import { checkAlias, networkFromFlags, type NetworkFlags } from '../network/run-options';
import { connectNetworks, disconnectNetworks } from '../network/attach';
import { orderMounts, planMounts, prepareMounts, removeAnonymousVolumes, removeVolumes, type MountRecord } from '../volume/mounts';

export interface ImageRunOptions {
  image: string;
  /** The image itself, already read (a build's step): no lookup or pull by name. */
  resolved?: Image;
  args?: string[];
  /** A string is --entrypoint's one word ("" clears it); a list is an exec form. */
  entrypoint?: string | string[];
  env?: string[];
  envFiles?: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  name?: string;
  rm?: boolean;
  readOnly?: boolean;
  /** -v HOST:CTR[:opts], NAME:CTR[:opts], CTR. */
  volumes?: string[];
  /** --mount type=bind|volume|tmpfs,... */
  mounts?: string[];
  tmpfs?: string[];
  /** --volumes-from CONTAINER[:ro|rw] */
  volumesFrom?: string[];
  /** A replaced container's anonymous volumes, kept at their paths (Compose's recreate). */
  inheritVolumes?: MountRecord[];
  interactive?: boolean;
  network?: string;
  /** --publish, --network-alias, --ip, --dns and the rest of the network flags (network: as --network). */
  networking?: NetworkFlags;
  /** Image store (default /var/lib/tsrun or TSRUN_STORAGE). */
  storage?: string;
  /** --pull: missing (the default) pulls an image the store lacks, always pulls first, never does not. */
  pull?: 'missing' | 'always' | 'never';
  /** Credentials, certificates and TLS checks for such a pull. */
  registry?: RegistryOptions;
  /** Runtime state root (default /run/tsrun). */
  root?: string;
  trace?: (line: string) => void;
  forwardSignals?: boolean;
  /** -t: a terminal for the container. */
  tty?: boolean;
  /** --restart: no, on-failure[:N], always, unless-stopped. */
  restart?: string;
  /** --init: a small init as pid 1 that forwards signals and reaps orphans. */
  init?: boolean;
  /** Rotate the container's log past this size. */
  logMaxBytes?: number;
  /** --memory, --cpus, --pids-limit and the rest, in Docker's units. */
  resources?: ResourceFlags;
  /** --cap-add, --privileged, --security-opt, --device and the rest. */
  security?: SecurityFlags;
  /** --userns, --uidmap, --gidmap. */
  userns?: UsernsFlags;
  onExit?: RunOptions['onExit'];
  /** --label: the container's labels, over the image's. */
  labels?: Record<string, string>;
  /** --stop-signal: what stop sends first (default the image's STOPSIGNAL, else SIGTERM). */
  stopSignal?: string;
  /** --health-cmd and the rest, over the image's HEALTHCHECK; disable: none at all. */
  healthcheck?: HealthOptions;
}

/** Reads a Docker --env-file: NAME=value lines, NAME alone, # comments. */
export function readEnvFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TsrunError(`read --env-file ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  return text
    .split('\n')
    .map((l) => l.replace(/^\s+/, '').replace(/\r$/, ''))
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** All layers of an image unpacked (once, whoever asks first), top first. */
export async function imageLayers(store: ImageStore, img: Image, trace?: (line: string) => void): Promise<LayerInfo[]> {
  const diffIDs = img.config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== img.manifest.layers.length) throw new TsrunError(`image ${img.record.id}: ${img.manifest.layers.length} layers in the manifest but ${diffIDs.length} diff_ids in the config`);
  if (!diffIDs.length) throw new TsrunError(`image ${img.record.id} has no layers`);
  const bar = progress();
  const layers: LayerInfo[] = [];
  try {
    for (let i = 0; i < diffIDs.length; i++) {
      const desc = img.manifest.layers[i];
      layers.push(
        await store.layer(
          desc,
          diffIDs[i],
          (bytes) => bar.update(`unpacking layer ${i + 1}/${diffIDs.length} ${desc.digest.slice(7, 19)}`, bytes, desc.size),
          (r) => trace?.(`unpacked layer ${diffIDs[i]}: ${r.entries} entries, ${r.size} bytes`),
        ),
      );
    }
  } finally {
    bar.done();
  }
  return layers.reverse();
}

/** Mount data of at most a page: past that, short names relative to the store. */
export function overlayFor(store: ImageStore, layers: LayerInfo[], dir: string): OverlayMount {
  const upperdir = path.join(dir, 'upper');
  const workdir = path.join(dir, 'work');
  const full = layers.map((l) => l.dir);
  if (full.join(':').length + upperdir.length + workdir.length + 80 < 4000) return { lowerdirs: full, upperdir, workdir };
  return { lowerdirs: layers.map((l) => `l/${l.link}`), upperdir, workdir, cwd: store.root };
}

/** Host id ranges the user namespaces of this registry's containers hold, running or not: their files are owned so. */
function takenIdRanges(registry: Registry): { start: number; count: number }[] {
  const out: { start: number; count: number }[] = [];
  for (const id of registry.ids()) {
    try {
      const u = registry.read(id).hostConfig.userns;
      for (const m of [...(u?.uidMappings ?? []), ...(u?.gidMappings ?? [])]) out.push({ start: m.hostID, count: m.size });
    } catch {
      /* removed meanwhile */
    }
  }
  return out;
}

/** The image to run by --pull's rule: what the store has, or what a pull just brought (by id: a short name may have come from a search registry). */
async function pullIfNeeded(store: ImageStore, opts: ImageRunOptions): Promise<string> {
  const policy = opts.pull ?? 'missing';
  if (!['missing', 'always', 'never'].includes(policy)) throw new TsrunError(`--pull ${policy}: use missing, always or never`);
  if (policy === 'never' || (policy === 'missing' && store.find(opts.image))) return opts.image;
  const log = opts.registry?.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  try {
    return (await pullImage(store, opts.image, { ...opts.registry, log })).record.id;
  } catch (e) {
    if (policy === 'always' || !(e instanceof TsrunError)) throw e;
    throw new TsrunError(`image "${opts.image}" not found in ${store.root}, and pulling it failed: ${e.message}`);
  }
}

/** Docker's --restart: no, on-failure[:N], always, unless-stopped. */
export function parseRestartPolicy(v: string | undefined): RestartPolicy {
  if (!v || v === 'no') return { name: 'no', maximumRetryCount: 0 };
  const m = /^(on-failure)(?::(\d+))?$|^(always|unless-stopped)$/.exec(v);
  if (!m) throw new TsrunError(`--restart ${v}: use no, on-failure[:N], always or unless-stopped`);
  return m[1] ? { name: 'on-failure', maximumRetryCount: Number(m[2] ?? 0) } : { name: m[3] as RestartPolicy['name'], maximumRetryCount: 0 };
}

/**
 * Makes a container from an image without starting it: its directory (the
 * bundle with its writable layer), config.json, container.json and its
 * name. `run` and `run -d` start it; `start` starts it again later.
 */
export async function createImageContainer(opts: ImageRunOptions): Promise<{ registry: Registry; info: ContainerInfo }> {
  const registry = new Registry(opts.storage, opts.root);
  const store = registry.images;
  const restartPolicy = parseRestartPolicy(opts.restart);
  if (restartPolicy.name !== 'no' && opts.rm) throw new TsrunError('--restart and --rm cannot be used together: a removed container cannot restart');
  if (opts.name !== undefined) checkName(opts.name);
  if (opts.stopSignal !== undefined) parseSignal(opts.stopSignal);
  for (const k of Object.keys(opts.labels ?? {})) if (!k) throw new TsrunError('a label needs a name: an empty key was given');
  const img = opts.resolved ?? store.get(opts.image.startsWith('oci:') ? await resolveOciReference(store, opts.image) : await pullIfNeeded(store, opts));
  const env = [...(opts.envFiles ?? []).flatMap(readEnvFile), ...(opts.env ?? [])];
  const layers = await imageLayers(store, img, opts.trace);
  const lowerTopFirst = layers.map((l) => l.dir);
  const user = resolveUser(opts.user ?? img.config.config?.User ?? '', readMergedFile(lowerTopFirst, '/etc/passwd'), readMergedFile(lowerTopFirst, '/etc/group'));

  const cfg = img.config.config ?? {};
  const healthcheck = healthConfigOf(cfg.Healthcheck, opts.healthcheck);
  const mounts = planMounts(registry, { volumes: opts.volumes, mounts: opts.mounts, tmpfs: opts.tmpfs, volumesFrom: opts.volumesFrom, inherit: opts.inheritVolumes }, Object.keys(cfg.Volumes ?? {}));

  const id = registry.newId();
  const name = opts.name ?? registry.generateName();
  const dir = registry.containerDir(id);
  const net = networkFromFlags(registry, id, { ...opts.networking, network: opts.network ?? opts.networking?.network, hostname: opts.hostname }, Object.keys(img.config.config?.ExposedPorts ?? {}));
  const network = net.namespace === 'host' ? 'host' : 'none';
  if (opts.hostname !== undefined) checkAlias(opts.hostname, '--hostname');
  const hostname = opts.hostname ?? (network === 'host' ? os.hostname() : id.slice(0, 12));
  // container:NAME shares the other's /etc/hosts and /etc/resolv.conf, as Docker does.
  const etcDir = net.shareEtcOf ? registry.containerDir(net.shareEtcOf) : dir;
  const etcFiles = { hosts: path.join(etcDir, 'hosts'), hostname: path.join(dir, 'hostname'), resolvConf: path.join(etcDir, 'resolv.conf') };
  const settings: ImageRunSettings = {
    args: opts.args ?? [],
    entrypoint: opts.entrypoint,
    env,
    workdir: opts.workdir,
    hostname,
    readOnly: !!opts.readOnly,
    network,
    netnsPath: typeof net.namespace === 'object' ? net.namespace.path : undefined,
    etcFiles,
    tty: !!opts.tty,
    init: opts.init ? INIT_PATH : undefined,
  };
  const spec = specFromImage(img.config, user, settings);
  spec.linux!.resources = resourcesFromFlags(opts.resources ?? {});
  const security = applySecurity(spec, opts.security ?? {}, { groupFile: readMergedFile(lowerTopFirst, '/etc/group') });
  // What the image says that the runtime config has no field for is kept as annotations:
  // the stop signal for `stop`, labels, exposed ports and volumes for `inspect`.
  spec.annotations = {
    'org.opencontainers.image.ref.name': img.record.names[0] ?? img.record.id,
    'tsrun.image.id': img.record.id,
    'tsrun.name': name,
    ...(opts.stopSignal ?? cfg.StopSignal ? { 'org.opencontainers.image.stopSignal': (opts.stopSignal ?? cfg.StopSignal)! } : {}),
    ...(cfg.ExposedPorts ? { 'tsrun.image.exposedPorts': Object.keys(cfg.ExposedPorts).join(',') } : {}),
    ...(cfg.Volumes ? { 'tsrun.image.volumes': Object.keys(cfg.Volumes).join(',') } : {}),
    ...Object.fromEntries(Object.entries({ ...cfg.Labels, ...opts.labels }).map(([k, v]) => [`tsrun.label.${k}`, v])),
  };
  const command = commandLine(cfg, opts.args ?? [], opts.entrypoint);
  const info: ContainerInfo = {
    id,
    name,
    created: new Date().toISOString(),
    image: opts.image,
    imageId: img.record.id,
    path: command[0],
    args: command.slice(1),
    config: {
      hostname,
      env: spec.process!.env ?? [],
      workingDir: spec.process!.cwd,
      user: opts.user ?? cfg.User ?? '',
      tty: !!opts.tty,
      openStdin: !!opts.interactive,
      entrypoint: opts.entrypoint !== undefined ? (Array.isArray(opts.entrypoint) ? opts.entrypoint : opts.entrypoint ? [opts.entrypoint] : null) : (cfg.Entrypoint ?? null),
      cmd: opts.args?.length ? opts.args : (cfg.Cmd ?? null),
      labels: { ...cfg.Labels, ...opts.labels },
      stopSignal: opts.stopSignal ?? cfg.StopSignal ?? 'SIGTERM',
      ...(healthcheck ? { healthcheck } : {}),
      ...(cfg.Shell?.length ? { shell: cfg.Shell } : {}),
    },
    hostConfig: {
      autoRemove: !!opts.rm,
      restartPolicy,
      logMaxBytes: opts.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES,
      readOnly: !!opts.readOnly,
      network: net.mode,
      ...(net.request ? { networking: net.request } : {}),
      binds: opts.volumes ?? [],
      tmpfs: opts.tmpfs ?? [],
      mounts,
      init: !!opts.init,
      security,
    },
    overlay: overlayFor(store, layers, dir),
    state: { startedAt: '', finishedAt: '', exitCode: 0, oomKilled: false, error: '', restartCount: 0, manuallyStopped: false, pid: 0, restarting: false, creatorPid: process.pid, creatorStartTime: processStartTime(process.pid) ?? '' },
  };
  // The record first, then the name: whatever a kill leaves behind is a
  // container that ps lists (as dead) and rm -f removes, never a stray name.
  fs.mkdirSync(registry.dir, { recursive: true, mode: 0o700 });
  // A user namespace's ids, chosen and recorded under one lock for --userns=auto.
  const record = () => {
    info.hostConfig.userns = applyUserns(spec, opts.userns ?? {}, () => takenIdRanges(registry));
    fs.mkdirSync(dir, { mode: 0o700 });
    registry.write(info);
  };
  if (opts.userns?.userns?.startsWith('auto')) store.locked(record, 'userns.lock');
  else record();
  let named = false;
  let madeVolumes: string[] = [];
  try {
    for (let tries = 0; ; tries++) {
      try {
        registry.claimName(info.name, id);
        break;
      } catch (e) {
        // A generated name that another run took a moment ago: take another.
        if (opts.name !== undefined || tries > 20) throw e;
        info.name = registry.generateName();
        spec.annotations['tsrun.name'] = info.name;
        registry.write(info);
      }
    }
    named = true;
    // The record names its volumes from here on: no prune can take one it is about to use.
    const prepared = await prepareMounts(registry, id, mounts, lowerTopFirst, spec.linux);
    madeVolumes = prepared.made;
    spec.mounts = orderMounts([...spec.mounts!, ...prepared.mounts]);
    for (const d of ['rootfs', 'upper', 'work']) fs.mkdirSync(path.join(dir, d), { mode: 0o755 });
    if (!net.shareEtcOf) {
      fs.writeFileSync(etcFiles.hosts, net.hosts);
      fs.writeFileSync(etcFiles.resolvConf, net.resolvConf);
    }
    fs.writeFileSync(etcFiles.hostname, hostname + '\n');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2) + '\n', { mode: 0o600 });
    if (info.hostConfig.userns) {
      // The container's root is an unprivileged host id that must reach its
      // rootfs and the files bound into it: the directories on the way may
      // be passed through (not listed) by others; what is in them keeps its
      // own mode (config.json, container.json, logs: owner only).
      for (const d of [store.root, path.dirname(dir), dir]) fs.chmodSync(d, 0o711);
      for (let d = path.dirname(store.root); d !== path.dirname(d); d = path.dirname(d)) {
        if ((fs.statSync(d).mode & 0o001) === 0) throw new TsrunError(`a user namespace container's root is an unprivileged host id, which cannot pass through ${d} (mode ${(fs.statSync(d).mode & 0o777).toString(8)}) to reach its root filesystem under ${store.root}: give others search permission (chmod o+x ${d})`);
      }
    }
    return { registry, info };
  } catch (e) {
    // A container that was never made complete is not kept.
    if (named) registry.releaseName(info.name, id);
    removeContainerDir(dir);
    await removeVolumes(registry, madeVolumes).catch(() => undefined);
    throw e;
  }
}

/** `run` in the foreground: stdio passed through, the exit status returned. */
export async function runImage(opts: ImageRunOptions): Promise<number> {
  const { registry, info } = await createImageContainer(opts);
  const id = info.id;
  let started = false;
  let failure: unknown;
  let stopProbes = () => {};
  const gone = () => !fs.existsSync(registry.containerDir(id));
  // An rm -f from elsewhere may remove the container while it runs: the run then ends as killed, saying nothing.
  const record = () => {
    try {
      registry.write(info);
    } catch (e) {
      if (!gone()) throw e;
    }
  };
  try {
    await connectNetworks(registry, info);
    const exitCode = await runContainer({
      id,
      bundle: registry.containerDir(id),
      root: opts.root,
      trace: opts.trace,
      forwardSignals: opts.forwardSignals,
      overlay: info.overlay,
      stdinNull: !opts.interactive,
      terminal: opts.tty ? { stdin: !!opts.interactive } : undefined,
      onStart: (pid) => {
        started = true;
        info.state = { ...info.state, pid, startedAt: new Date().toISOString(), finishedAt: '' };
        record();
        if (info.config.healthcheck) stopProbes = scheduleHealthchecks(registry, id, info.config.healthcheck, Date.now());
      },
      onExit: (r) => {
        stopProbes();
        info.state = { ...info.state, exitCode: r.exitCode, oomKilled: r.oomKilled, finishedAt: new Date().toISOString() };
        record();
        opts.onExit?.(r);
      },
    });
    return exitCode;
  } catch (e) {
    failure = e;
    throw e;
  } finally {
    stopProbes();
    // Its processes are gone (runContainer has deleted it): its networks go, then --rm, or a container that never ran, is not kept.
    // A failed undo keeps the container (rm -f tries again), and never hides the error that ended the run.
    // Under the container's lock, as rm's: an rm -f that ended the run has removed it all by then.
    try {
      if (!gone())
        await registry.lock(id, async () => {
          if (gone()) return;
          await disconnectNetworks(registry, id);
          if (opts.rm || !started) {
            removeContainerFiles(registry, info);
            await removeAnonymousVolumes(registry, info);
          }
        });
    } catch (e) {
      if (failure === undefined && !gone()) throw e;
    }
  }
}

/** `run -d`: the container runs on under its monitor; returns its id. */
export async function runImageDetached(opts: ImageRunOptions): Promise<string> {
  const { registry, info } = await createImageContainer(opts);
  await registry.lock(info.id, async () => {
    try {
      await startDetached(registry, info, { trace: opts.trace });
    } catch (e) {
      // A run -d that failed leaves nothing. Its runtime state goes first (startDetached
      // removes it, unless that failed too): the record is dropped only once nothing of
      // the run is left that only it could find, else rm -f finds and removes both.
      try {
        if (registry.runtime.exists(info.id)) await deleteContainer(info.id, { root: registry.runtime.root, force: true });
        await disconnectNetworks(registry, info.id);
        removeContainerFiles(registry, info);
        await removeAnonymousVolumes(registry, info);
      } catch {
        /* kept for rm -f: the first error is the one to report */
      }
      throw e;
    }
  });
  return info.id;
}

/**
 * A container's directory, writable layer included: the container made that
 * tree, so it may be deeper than PATH_MAX or hold links anywhere. A file
 * that appears meanwhile (a monitor's last write) is removed on a retry.
 */
export function removeContainerDir(dir: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      native().removeTree(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt >= 5 || (code !== 'ENOTEMPTY' && code !== 'EBUSY')) throw new TsrunError(`remove container directory ${dir}: ${(e as Error).message}`);
    }
  }
}

/** The container's directory and name; its runtime state must be gone already. */
export function removeContainerFiles(registry: Registry, info: ContainerInfo) {
  // The record first (it is then gone from ps), the name whatever happens;
  // a name left by a kill part way is taken over by the next claim.
  try {
    fs.rmSync(registry.file(info.id, 'container.json'), { force: true });
    removeContainerDir(registry.containerDir(info.id));
  } finally {
    registry.releaseName(info.name, info.id);
  }
}
