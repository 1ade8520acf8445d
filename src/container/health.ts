// Health checks as Docker runs them: a command exec'd in the container on a
// schedule, its exit status deciding starting -> healthy | unhealthy. No
// daemon keeps the schedule: a detached container's monitor starts
// `tsrun healthcheck run ID` at each interval (native/monitor.cc), a
// foreground run's own process does. Each probe's result is kept in the
// container's health.json, which inspect, ps and events read.
import fs = require('node:fs');
import net = require('node:net');
import { durationNs, formatNs } from '../duration';
import { TsrunError } from '../errors';
import { withFileLock } from '../file-lock';
import type { ImageConfig } from '../image/types';
import { native } from '../native';
import { execInContainer } from './exec';
import type { ContainerInfo, Registry } from './registry';

/** Docker's Config.Healthcheck: durations in nanoseconds, 0 meaning the default. */
export type HealthConfig = NonNullable<NonNullable<ImageConfig['config']>['Healthcheck']>;

/** What run's --health-* flags and Compose's healthcheck give (durations as Go writes them: 30s, 1m30s). */
export interface HealthOptions {
  /** ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]; --health-cmd X is ["CMD-SHELL", X]. */
  test?: string[];
  interval?: string;
  timeout?: string;
  startPeriod?: string;
  startInterval?: string;
  retries?: number;
  /** --no-healthcheck: none, not even the image's. */
  disable?: boolean;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** Docker's State.Health. */
export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthResult[];
  /** The run these results belong to (the container's pid at that start). */
  pid?: number;
}

export const HEALTH_DEFAULTS = { interval: 30e9, timeout: 30e9, startPeriod: 0, startInterval: 5e9, retries: 3 };
/** Docker keeps the last five results and 4 KiB of each one's output. */
const KEEP_RESULTS = 5;
const MAX_OUTPUT = 4096;
const MIN_DURATION = 1e6;

/** The container's health check: the image's, with the flags' fields over it; undefined when there is none. */
export function healthConfigOf(image: HealthConfig | undefined, opts: HealthOptions | undefined): HealthConfig | undefined {
  const o = opts ?? {};
  const given = (['test', 'interval', 'timeout', 'startPeriod', 'startInterval', 'retries'] as const).filter((k) => o[k] !== undefined);
  if (o.disable) {
    if (given.length && !(given.length === 1 && o.test?.[0] === 'NONE')) throw new TsrunError(`--no-healthcheck conflicts with the other health options (${given.join(', ')})`);
    return undefined;
  }
  const test = o.test ?? image?.Test;
  // The image's check is held to the same rules as the flags: it is input too.
  if (test) checkTest(test);
  if (!test || test[0] === 'NONE') {
    if (given.length && test?.[0] !== 'NONE') throw new TsrunError(`a health option (${given.join(', ')}) needs a health check: give --health-cmd, or use an image with a HEALTHCHECK`);
    return undefined;
  }
  const ns = (v: string | undefined, flag: string, fallback: number | undefined) => {
    if (v === undefined) return fallback;
    const n = durationNs(v, flag);
    if (n !== 0 && n < MIN_DURATION) throw new TsrunError(`${flag} ${v}: must be at least 1ms`);
    return n;
  };
  const retries = o.retries ?? image?.Retries;
  if (retries !== undefined && (!Number.isInteger(retries) || retries < 0)) throw new TsrunError(`--health-retries ${retries}: expected a whole number, 0 or more`);
  const out: HealthConfig = { Test: test };
  const fields = {
    Interval: ns(o.interval, '--health-interval', image?.Interval),
    Timeout: ns(o.timeout, '--health-timeout', image?.Timeout),
    StartPeriod: ns(o.startPeriod, '--health-start-period', image?.StartPeriod),
    StartInterval: ns(o.startInterval, '--health-start-interval', image?.StartInterval),
    Retries: retries,
  };
  for (const [k, v] of Object.entries(fields)) {
    if (k !== 'Retries' && v !== undefined && (!Number.isSafeInteger(v) || v < 0 || (v !== 0 && v < MIN_DURATION))) throw new TsrunError(`the image's HEALTHCHECK ${k} is ${v} ns: a duration must be 0 (the default) or at least 1ms`);
  }
  for (const [k, v] of Object.entries(fields)) if (v) (out as Record<string, unknown>)[k] = v;
  return out;
}

function checkTest(test: string[]) {
  const kind = test[0];
  if (kind === 'NONE') return;
  if ((kind !== 'CMD' && kind !== 'CMD-SHELL') || test.length < 2 || (kind === 'CMD-SHELL' && test.length !== 2) || !test[1]) {
    throw new TsrunError(`health check test ${JSON.stringify(test)}: expected ["CMD", program, args...], ["CMD-SHELL", command] or ["NONE"]`);
  }
}

/** The schedule with defaults filled in, in milliseconds. */
export function healthTimes(hc: HealthConfig) {
  const ms = (v: number | undefined, d: number) => Math.max(1, Math.round((v || d) / 1e6));
  return {
    intervalMs: ms(hc.Interval, HEALTH_DEFAULTS.interval),
    timeoutMs: ms(hc.Timeout, HEALTH_DEFAULTS.timeout),
    startPeriodMs: Math.round((hc.StartPeriod ?? 0) / 1e6),
    startIntervalMs: ms(hc.StartInterval, HEALTH_DEFAULTS.startInterval),
    retries: hc.Retries || HEALTH_DEFAULTS.retries,
  };
}

export function healthFile(registry: Registry, id: string) {
  return registry.file(id, 'health.json');
}

/** The current run's health, or undefined when the container has no check (or has not started). */
export function readHealth(registry: Registry, info: ContainerInfo): HealthState | undefined {
  if (!info.config.healthcheck) return undefined;
  try {
    const h = JSON.parse(fs.readFileSync(healthFile(registry, info.id), 'utf8')) as HealthState;
    if (h.pid === info.state.pid) return h;
  } catch {
    /* no probe has ended in this run yet */
  }
  return info.state.startedAt ? { Status: 'starting', FailingStreak: 0, Log: [], pid: info.state.pid } : undefined;
}

/** " (healthy)" and the rest, as docker ps shows them after Up …. */
export function healthSuffix(h: HealthState | undefined): string {
  if (!h) return '';
  return h.Status === 'starting' ? ' (health: starting)' : ` (${h.Status})`;
}

/**
 * One probe: the test exec'd in the container as its own process (user,
 * environment, working directory), killed at the timeout; the result
 * recorded. Returns the health after it.
 */
export async function runHealthcheck(registry: Registry, id: string): Promise<HealthState> {
  const info = registry.read(id);
  const hc = info.config.healthcheck;
  if (!hc) throw new TsrunError(`healthcheck ${info.name}: the container has no health check`);
  const live = registry.live(info);
  if (!live.running) throw new TsrunError(`healthcheck ${info.name}: the container is ${live.status}, not running`);
  const times = healthTimes(hc);
  // CMD-SHELL runs in the image's SHELL, as Docker runs it.
  const args = hc.Test[0] === 'CMD-SHELL' ? [...(info.config.shell ?? ['/bin/sh', '-c']), hc.Test[1]] : hc.Test.slice(1);
  const start = new Date();
  const result = await probe(registry, id, args, times.timeoutMs);
  const end = new Date();
  const entry: HealthResult = { Start: start.toISOString(), End: end.toISOString(), ExitCode: result.exitCode, Output: result.output };
  return withFileLock(registry.file(id, 'health.lock'), () => {
    const now = registry.read(id);
    // A probe that outlived its run (the container restarted meanwhile) says nothing of the new one.
    if (now.state.pid !== info.state.pid) return readHealth(registry, now)!;
    const h = readHealth(registry, now)!;
    h.Log = [...h.Log, entry].slice(-KEEP_RESULTS);
    if (entry.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = 'healthy';
    } else if (!(h.Status === 'starting' && start.getTime() - Date.parse(now.state.startedAt) < times.startPeriodMs)) {
      // Failures in the start period count only once the container has been healthy.
      h.FailingStreak++;
      if (h.FailingStreak >= times.retries) h.Status = 'unhealthy';
    }
    const file = healthFile(registry, id);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(h) + '\n');
    fs.renameSync(`${file}.tmp`, file);
    return h;
  });
}

async function probe(registry: Registry, id: string, args: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
  const [r, w] = native().pipe();
  const devNull = fs.openSync('/dev/null', 'r');
  const chunks: Buffer[] = [];
  let size = 0;
  // Read as it comes (a chatty probe must not block on a full pipe), kept to the first 4 KiB.
  const stream = new net.Socket({ fd: r, readable: true, writable: false });
  const reading = new Promise<void>((resolve) => {
    stream.on('data', (b) => {
      const buf = b as Buffer;
      if (size < MAX_OUTPUT) chunks.push(buf.subarray(0, MAX_OUTPUT - size));
      size += buf.length;
    });
    stream.on('close', resolve);
    stream.on('error', () => resolve());
  });
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, timeoutMs);
  let exitCode: number;
  let error = '';
  try {
    exitCode = await execInContainer({ id, root: registry.runtime.root, args, stdio: [devNull, w, w], signal: abort.signal });
  } catch (e) {
    exitCode = -1;
    error = (e as Error).message;
  } finally {
    clearTimeout(timer);
    fs.closeSync(w);
    fs.closeSync(devNull);
  }
  // Whatever the probe left running in the container may hold the pipe: read no longer than a moment.
  let wait: NodeJS.Timeout | undefined;
  await Promise.race([reading, new Promise((res) => (wait = setTimeout(res, 200)))]);
  clearTimeout(wait);
  stream.destroy();
  // A character the 4 KiB cut split is dropped, not shown as U+FFFD.
  let output = Buffer.concat(chunks).toString('utf8');
  if (size > MAX_OUTPUT) output = output.replace(/\uFFFD$/, '');
  if (timedOut) return { exitCode: -1, output: `Health check exceeded timeout (${formatNs(timeoutMs * 1e6)})` };
  return { exitCode, output: error || output };
}

/**
 * Probes on the schedule for a container this process holds (a foreground
 * run); the monitor does the same for a detached one. Returns a stop.
 */
export function scheduleHealthchecks(registry: Registry, id: string, hc: HealthConfig, startedAt: number): () => void {
  const t = healthTimes(hc);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let passed = false;
  const next = () => {
    if (stopped) return;
    // Docker's rule: in the start period, until healthy, probes come every start interval.
    const early = !passed && Date.now() - startedAt < t.startPeriodMs;
    timer = setTimeout(async () => {
      try {
        const h = await runHealthcheck(registry, id);
        passed ||= h.Log[h.Log.length - 1]?.ExitCode === 0;
      } catch {
        /* the container is ending */
      }
      next();
    }, early ? t.startIntervalMs : t.intervalMs);
  };
  next();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
