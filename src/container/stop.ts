// stop, kill and restart of image containers (Docker's verbs). A stop or a
// kill with the stop signal or SIGKILL counts as a manual stop: no restart
// policy brings the container back.
import { TsrunError } from '../errors';
import { parseSignal, signalName } from '../process/signals';
import { exitsWithin, signalProcess } from './kill';
import { isFrozen, thaw } from '../cgroup/ops';
import { monitorRecorded, startDetached, withExitClaim } from './detached';
import { containerExited } from './exited';
import { isAlive, processStartTime, type ContainerRecord } from './store';
import type { Registry } from './registry';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The live process of a container, if it has one. */
function liveProcess(registry: Registry, id: string): { pid: number; startTime: string; monitorPid?: number; monitorStartTime?: string; record: ContainerRecord } | undefined {
  const rt = registry.runtimeRecord(id);
  if (!rt || !rt.pid || !isAlive(rt.pid, rt.pidStartTime)) return undefined;
  return { pid: rt.pid, startTime: rt.pidStartTime, monitorPid: rt.monitorPid, monitorStartTime: rt.monitorStartTime, record: rt };
}

async function markManualStop(registry: Registry, id: string) {
  if (!registry.isManaged(id)) return;
  await registry.lock(id, () => {
    const info = registry.read(id);
    info.state.manuallyStopped = true;
    registry.write(info);
  });
}

/** Waits (bounded) for the monitor's clean-up, so what follows sees the exit recorded. */
async function settle(registry: Registry, id: string, monitorPid?: number, monitorStartTime?: string) {
  if (!monitorPid) return;
  const start = processStartTime(monitorPid);
  if (start !== monitorStartTime) return;
  await exitsWithin(monitorPid, monitorStartTime ?? '', 15_000);
}

function stopSignalOf(registry: Registry, id: string): number {
  if (!registry.isManaged(id)) return parseSignal('SIGTERM');
  return parseSignal(registry.read(id).config.stopSignal || 'SIGTERM');
}

/**
 * Docker's stop: the stop signal, then SIGKILL after timeoutSec; then the
 * clean-up after the exit, done here (the monitor is told not to start a
 * process for it). Returns false if it was not running. With cleanUp false
 * it returns once the process has gone and does no clean-up: for a caller
 * that holds the exit claim and removes the container next.
 */
export async function stopContainer(registry: Registry, id: string, timeoutSec = 10, signal?: number, opts: { cleanUp?: boolean } = {}): Promise<boolean> {
  await markManualStop(registry, id);
  const p = liveProcess(registry, id);
  if (!p) return false;
  const sig = signal ?? stopSignalOf(registry, id);
  const ends = async () => {
    signalProcess(p.pid, p.startTime, sig);
    // A paused container gets no signal until it thaws (as Docker does, stop thaws it).
    await thawIfFrozen(registry, id);
    if (!(await exitsWithin(p.pid, p.startTime, timeoutSec * 1000))) {
      signalProcess(p.pid, p.startTime, 9);
      await thawIfFrozen(registry, id);
      if (!(await exitsWithin(p.pid, p.startTime, 10_000))) throw new TsrunError(`stop ${id.slice(0, 12)}: pid ${p.pid} still runs 10 s after SIGKILL (uninterruptible sleep?)`);
    }
  };
  if (opts.cleanUp === false) {
    await ends();
    return true;
  }
  if (registry.isManaged(id)) {
    await withExitClaim(registry, id, async () => {
      await ends();
      await monitorRecorded(registry, id, p.record);
    });
    await containerExited(registry, id);
  } else await ends();
  await settle(registry, id, p.monitorPid, p.monitorStartTime);
  return true;
}

/** Thaws the container's cgroup if it is frozen: a frozen task takes no signal, not even SIGKILL (v1 freezer). */
export async function thawIfFrozen(registry: Registry, id: string) {
  const cg = registry.runtimeRecord(id)?.cgroup;
  if (cg && isFrozen(cg)) await thaw(cg);
}

/** Docker's kill: one signal (default SIGKILL), no waiting. */
export async function killManaged(registry: Registry, id: string, signal = 9): Promise<void> {
  const p = liveProcess(registry, id);
  if (!p) throw new TsrunError(`cannot kill container ${id.slice(0, 12)}: it is not running`);
  if (signal === 9 || signal === stopSignalOf(registry, id)) await markManualStop(registry, id);
  if (!signalProcess(p.pid, p.startTime, signal)) throw new TsrunError(`cannot kill container ${id.slice(0, 12)}: pid ${p.pid} exited before ${signalName(signal)} reached it`);
  if (signal === 9) await thawIfFrozen(registry, id);
}

/** Docker's start for an image container that is not running (with its writable layer as it was left). */
export async function startStopped(registry: Registry, id: string, opts: { trace?: (line: string) => void } = {}): Promise<void> {
  if (!registry.isManaged(id)) throw new TsrunError(`container ${id} was not made from an image: use \`tsrun start\` on a created container only`);
  await registry.lock(id, async () => {
    const info = registry.read(id);
    const live = registry.live(info);
    if (live.running) return; // already running: Docker's start is a no-op then
    await startDetached(registry, info, opts);
  });
}

export async function restartContainer(registry: Registry, id: string, timeoutSec = 10): Promise<void> {
  await stopContainer(registry, id, timeoutSec);
  await sleep(0);
  await startStopped(registry, id);
}
