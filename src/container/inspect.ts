// inspect and ps: what a container is and how it is doing, in Docker's
// shapes, with every state checked against the live processes.
import { networkSettings, readNetworkState } from '../network/attach';
import { formatBinding, portBindings } from '../network/ports';
import fs = require('node:fs');
import path = require('node:path');
import type { Spec } from '../spec/types';
import type { ContainerInfo, LiveState, Registry } from './registry';
import { healthSuffix, readHealth, type HealthStatus } from './health';
import { inspectMounts } from '../volume/mounts';

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  command: string;
  created: string;
  status: LiveState['status'];
  /** A running container's health, when it has a check. */
  health?: HealthStatus;
  /** Docker's STATUS column: "Up 5 seconds", "Exited (0) 3 minutes ago". */
  statusText: string;
  exitCode: number;
  pid: number;
  error: string;
  /** Docker's PORTS column: 127.0.0.1:8080->80/tcp, ... */
  ports: string;
}

/** "5 seconds", "3 minutes", "2 hours", "4 days" (Docker's rounding, roughly). */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? 'About a minute' : `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h < 48) return h === 1 ? 'About an hour' : `${h} hours`;
  return `${Math.round(s / 86400)} days`;
}

export function statusText(live: LiveState, now = Date.now()): string {
  const since = (t: string) => humanDuration(now - Date.parse(t));
  const flag = live.error && live.running ? ' (monitor gone)' : '';
  switch (live.status) {
    case 'running':
      return `Up ${since(live.startedAt)}${flag}`;
    case 'paused':
      return `Up ${since(live.startedAt)} (Paused)${flag}`;
    case 'restarting':
      return `Restarting (${live.exitCode}) ${live.finishedAt ? since(live.finishedAt) + ' ago' : ''}`.trim();
    case 'exited':
      return live.finishedAt ? `Exited (${live.exitCode}) ${since(live.finishedAt)} ago` : `Exited (${live.exitCode})`;
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}

function commandOf(info: ContainerInfo): string {
  return [info.path, ...info.args].map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

function healthOf(registry: Registry, info: ContainerInfo, live: LiveState) {
  const h = readHealth(registry, info);
  // Docker's rule: a container that does not run is not healthy, whatever its last probe said.
  return h ? { Health: { Status: live.running || live.paused ? h.Status : 'unhealthy', FailingStreak: h.FailingStreak, Log: h.Log } } : {};
}

export function summarize(registry: Registry, info: ContainerInfo): ContainerSummary {
  const live = registry.live(info);
  const health = live.running ? readHealth(registry, info) : undefined;
  return { id: info.id, name: info.name, image: info.image, command: commandOf(info), created: info.created, status: live.status, statusText: statusText(live) + healthSuffix(health), health: health?.Status, exitCode: live.exitCode, pid: live.pid, error: live.error, ports: live.running ? (readNetworkState(registry, info.id)?.ports ?? []).map(formatBinding).join(', ') : '' };
}

export interface PsFilter {
  name?: string[];
  status?: string[];
  id?: string[];
  /** starting, healthy, unhealthy or none. */
  health?: string[];
}

/** Docker's --filter key=value (name, status, id, health); the same key given twice means either. */
export function parseFilters(list: string[]): PsFilter {
  const f: PsFilter = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    const key = item.slice(0, eq) as keyof PsFilter;
    if (eq < 0 || !['name', 'status', 'id', 'health'].includes(key)) throw new Error(`--filter ${item}: use name=..., status=..., id=... or health=...`);
    (f[key] ??= []).push(item.slice(eq + 1));
  }
  return f;
}

export function listManaged(registry: Registry, opts: { all?: boolean; filter?: PsFilter } = {}): ContainerSummary[] {
  const out: ContainerSummary[] = [];
  for (const id of registry.ids()) {
    let info: ContainerInfo;
    try {
      info = registry.read(id);
    } catch {
      continue; // removed meanwhile
    }
    const s = summarize(registry, info);
    const f = opts.filter ?? {};
    if (!opts.all && !f.status && s.status !== 'running' && s.status !== 'paused' && s.status !== 'restarting') continue;
    if (f.status && !f.status.includes(s.status)) continue;
    if (f.name && !f.name.some((n) => s.name.includes(n))) continue;
    if (f.id && !f.id.some((p) => s.id.startsWith(p))) continue;
    if (f.health && !f.health.includes(s.health ?? 'none')) continue;
    out.push(s);
  }
  return out.sort((a, b) => b.created.localeCompare(a.created));
}

/** Docker's inspect document, for the fields tsrun has. */
export function inspectContainer(registry: Registry, id: string) {
  const info = registry.read(id);
  const live = registry.live(info);
  let spec: Spec | undefined;
  try {
    spec = JSON.parse(fs.readFileSync(registry.file(id, 'config.json'), 'utf8')) as Spec;
  } catch {
    /* gone meanwhile */
  }
  const rt = registry.runtimeRecord(id);
  return {
    Id: info.id,
    Created: info.created,
    Path: info.path,
    Args: info.args,
    State: {
      Status: live.status,
      Running: live.running,
      Paused: live.paused,
      Restarting: live.status === 'restarting',
      OOMKilled: live.oomKilled,
      Dead: live.status === 'dead',
      Pid: live.pid,
      ExitCode: live.exitCode,
      Error: live.error,
      StartedAt: live.startedAt || '0001-01-01T00:00:00Z',
      FinishedAt: live.finishedAt || '0001-01-01T00:00:00Z',
      MonitorPid: live.monitorPid,
      ...healthOf(registry, info, live),
    },
    Image: info.imageId,
    LogPath: registry.file(id, 'container.log'),
    Name: '/' + info.name,
    RestartCount: info.state.restartCount,
    HostConfig: {
      AutoRemove: info.hostConfig.autoRemove,
      RestartPolicy: { Name: info.hostConfig.restartPolicy.name, MaximumRetryCount: info.hostConfig.restartPolicy.maximumRetryCount },
      ReadonlyRootfs: info.hostConfig.readOnly,
      NetworkMode: info.hostConfig.network,
      PortBindings: portBindings(info.hostConfig.networking?.ports ?? []),
      Binds: info.hostConfig.binds,
      Tmpfs: info.hostConfig.tmpfs,
      Mounts: (info.hostConfig.mounts ?? []).map((m) => ({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: m.readonly })),
      Init: info.hostConfig.init,
      Privileged: info.hostConfig.security?.privileged ?? false,
      CapAdd: info.hostConfig.security?.capAdd ?? [],
      CapDrop: info.hostConfig.security?.capDrop ?? [],
      SecurityOpt: info.hostConfig.security?.securityOpt ?? [],
      Devices: (info.hostConfig.security?.devices ?? []).map((d) => {
        const [host, ctr, perms] = d.split(':');
        return { PathOnHost: host, PathInContainer: ctr && !/^[rwm]+$/.test(ctr) ? ctr : host, CgroupPermissions: perms ?? (ctr && /^[rwm]+$/.test(ctr) ? ctr : 'rwm') };
      }),
      GroupAdd: info.hostConfig.security?.groupAdd ?? [],
      LogConfig: { Type: 'cri', Config: { 'max-size': String(info.hostConfig.logMaxBytes) } },
      Resources: spec?.linux?.resources ?? {},
    },
    NetworkSettings: networkSettings(registry, info),
    GraphDriver: { Name: 'overlay', Data: { LowerDir: info.overlay.lowerdirs.map((l) => (path.isAbsolute(l) ? l : path.join(registry.images.root, l))).join(':'), UpperDir: info.overlay.upperdir, WorkDir: info.overlay.workdir } },
    Mounts: inspectMounts(registry, info, spec?.mounts ?? []),
    Config: {
      Hostname: info.config.hostname,
      User: info.config.user,
      Tty: info.config.tty,
      OpenStdin: info.config.openStdin,
      Env: info.config.env,
      Cmd: info.config.cmd,
      Entrypoint: info.config.entrypoint,
      Image: info.image,
      WorkingDir: info.config.workingDir,
      Labels: info.config.labels,
      StopSignal: info.config.stopSignal,
      ...(info.config.healthcheck ? { Healthcheck: info.config.healthcheck } : {}),
      ...(info.config.shell ? { Shell: info.config.shell } : {}),
    },
    Runtime: rt ? { Root: registry.runtime.root, Bundle: rt.bundle, CgroupPath: rt.cgroupPath } : undefined,
  };
}
